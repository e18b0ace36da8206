"""Shared fixtures: a fresh store per test and the shared real samples when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tiny_medclip import TinyMedCLIP, build_tiny

from pedclip.config import RUNTIME_ENV
from pedclip.store import Store

# Commands and the dashboard default to --runtime auto (ONNX Runtime on a CPU), so every test with a fresh home
# would export its tiny graphs again (seconds each); tests/models/test_onnx_runtime.py covers that path.
os.environ.setdefault(RUNTIME_ENV, "torch")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty PEDCLIP_HOME."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def store(home: Path) -> Store:
    """A migrated, empty store in a temporary PEDCLIP_HOME."""
    return Store.open(home)


@pytest.fixture(scope="session")
def tiny_encoder():
    """The tiny random open_clip model (loaded once per session; do not train it in place)."""
    from pedclip.models import load_encoder

    return load_encoder("openclip:pedclip-tiny")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data when this checkout has it (tests over the whole real sample skip without it)."""
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not beside this checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_medclip_vit(tmp_path_factory) -> TinyMedCLIP:
    """A tiny Swin + BERT MedCLIP saved in the released layout (pytorch_model.bin, vision/, text/)."""
    return build_tiny("vit", tmp_path_factory.mktemp("medclip") / "vit")


@pytest.fixture(scope="session")
def tiny_medclip_resnet(tmp_path_factory) -> TinyMedCLIP:
    return build_tiny("resnet", tmp_path_factory.mktemp("medclip") / "resnet")


@pytest.fixture
def tiny_medclip(tiny_medclip_vit: TinyMedCLIP):
    """That tiny MedCLIP loaded through the registry, as an Encoder."""
    from pedclip.models import load_encoder

    return load_encoder("medclip:vit", weights=str(tiny_medclip_vit.folder))


@pytest.fixture(scope="session")
def quick_demo_home(tmp_path_factory) -> Path:
    """`pedclip demo --quick` run once per session (minutes); tests that write to it copy it first."""
    from pedclip.cli import main

    home = tmp_path_factory.mktemp("demo") / "home"
    assert main(["--home", str(home), "demo", "--quick", "--json"]) == 0
    return home
