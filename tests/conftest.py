"""Shared fixtures: a fresh store per test and the shared real samples when present."""

from __future__ import annotations

import os
from pathlib import Path

# `make test` runs two pytest-xdist workers on these 2-core machines: one torch thread each, or four threads
# would contend for two cores (set before anything imports torch; tests that need more set it themselves).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
from tiny_medclip import TinyMedCLIP, build_tiny  # noqa: E402

from pedclip.config import RUNTIME_ENV  # noqa: E402
from pedclip.store import Store  # noqa: E402

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


# Tests that must share one xdist worker: the quick demo is a session fixture of minutes (a second worker
# would build it again), and each Ray test starts a local cluster (two at once fight over 2 cores). Grouped
# where the controller schedules, by node id: under pytest 9, xdist's own `xdist_group` marks no longer
# group anything (it renames node ids, which pytest 9 does not let it do).
WORKER_GROUPS = {
    "tests/demo/test_demo.py::test_quick_demo": "quick-demo",
    "tests/dashboard/test_browser_demo.py::": "quick-demo",
    "tests/embed/test_ray_engine.py::": "ray",
}


def worker_group(nodeid: str) -> str | None:
    return next((group for prefix, group in WORKER_GROUPS.items() if nodeid.startswith(prefix)), None)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` (make test's) with WORKER_GROUPS as groups."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class Grouped(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid) or super()._split_scope(nodeid)

    return Grouped(config, log)


def pytest_collection_modifyitems(items) -> None:
    """A new test on the quick demo must join its group, or it would build the demo a second time."""
    strays = [
        item.nodeid
        for item in items
        if "quick_demo_home" in getattr(item, "fixturenames", ())
        and worker_group(item.nodeid) != "quick-demo"
    ]
    if strays:
        raise pytest.UsageError(f"add {strays} to WORKER_GROUPS in tests/conftest.py (the quick-demo group)")
