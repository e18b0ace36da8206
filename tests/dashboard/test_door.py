"""Issue 11, defect 8: off loopback the dashboard needs a token, checked before any page renders (so no upload
widget or save button exists without it); --read-only serves browsing only."""

from __future__ import annotations

import pytest
from dashboard_store import open_page

from pedclip.config import Paths
from pedclip.dashboard import door
from pedclip.dashboard.launch import dashboard_env, streamlit_command
from pedclip.errors import PedclipError


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.3.4.5", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("::", False), ("192.168.1.20", False), ("myhost.example", False)],
)  # fmt: skip
def test_only_loopback_goes_without_a_token(host: str, loopback: bool) -> None:
    assert door.is_loopback(host) is loopback
    token = door.door_token(host, None)
    assert (token is None) is loopback
    assert token is None or len(token) >= 24
    assert door.door_token(host, "given") == "given"  # an explicit --token is required even on loopback
    assert door.door_token("0.0.0.0", None) != door.door_token("0.0.0.0", None)


def test_admits_only_the_token() -> None:
    assert door.admits(None, None) and door.admits("s3cret", "s3cret")
    assert (
        not door.admits("s3cret", None)
        and not door.admits("s3cret", "")
        and not door.admits("s3cret", "s3cre")
    )
    assert not door.admits("s3cret", ["s3cret"])


def test_token_travels_in_the_environment_not_argv(tmp_path) -> None:
    env = dashboard_env(Paths.at(tmp_path), token="tok-123", read_only=True)
    assert env[door.TOKEN_ENV] == "tok-123" and env[door.READ_ONLY_ENV] == "1"
    assert "tok-123" not in " ".join(streamlit_command(8501, "0.0.0.0"))
    assert door.TOKEN_ENV not in dashboard_env(Paths.at(tmp_path))


def test_without_the_token_nothing_renders(app, monkeypatch) -> None:
    monkeypatch.setenv(door.TOKEN_ENV, "s3cret")
    at = app.run()
    assert not at.exception
    assert any("access token" in e.value for e in at.error)
    assert not at.sidebar.caption and not at.dataframe and not at.button and not at.selectbox
    at.query_params["token"] = "wrong"
    at.run()
    assert any("access token" in e.value for e in at.error) and not at.dataframe


def test_with_the_token_the_pages_render(app, monkeypatch) -> None:
    monkeypatch.setenv(door.TOKEN_ENV, "s3cret")
    app.query_params["token"] = "s3cret"
    at = open_page(app, "runs")
    assert not at.error and at.dataframe


def test_read_only_has_no_save_and_no_upload(app, monkeypatch) -> None:
    monkeypatch.setenv(door.READ_ONLY_ENV, "1")
    at = open_page(app, "prompt_lab")
    assert not any(b.label == "Save as a run" for b in at.button)
    assert any("Read-only" in c.value for c in at.caption)
    with pytest.raises(PedclipError, match="read-only"):
        from pedclip.dashboard import access

        access.save_rescore(None, None, None, "x")
