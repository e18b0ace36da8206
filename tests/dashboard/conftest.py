"""Dashboard fixtures: the tiny encoder and one fixture store per session, and an AppTest factory."""

from __future__ import annotations

import shutil

import pytest
from browser_helpers import chromium, dashboard_server
from dashboard_store import APP, TINY_SPEC, FixtureInfo, build_fixture_store


@pytest.fixture(scope="session")
def tiny_encoder():
    from pedclip.models import load_encoder

    return load_encoder(TINY_SPEC)


@pytest.fixture(scope="session")
def fixture_store(tmp_path_factory, tiny_encoder) -> FixtureInfo:
    """Built once; tests that write to a store copy it first."""
    home = tmp_path_factory.mktemp("dash") / "home"
    home.mkdir()
    return build_fixture_store(home, tiny_encoder)


@pytest.fixture
def app(fixture_store, monkeypatch):
    """An AppTest of the dashboard on the fixture store, not yet run."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PEDCLIP_HOME", str(fixture_store.home))
    return AppTest.from_file(str(APP), default_timeout=60)


@pytest.fixture
def browser():
    """Debian's Chromium driven by Playwright (the real-browser tests)."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def server(fixture_store, tmp_path):
    """`pedclip dashboard` on a copy of the fixture store; its URL."""
    home = tmp_path / "home"
    shutil.copytree(fixture_store.home, home)
    with dashboard_server(home, tmp_path / "server.log") as url:
        yield url
