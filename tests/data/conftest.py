"""Fixtures of the data tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from data_builders import KERMANY_FIXTURE


@pytest.fixture
def kermany_copy(tmp_path: Path) -> Path:
    """A writable copy of the Kermany fixture (the folder holding chest_xray/)."""
    target = tmp_path / "kermany"
    shutil.copytree(KERMANY_FIXTURE, target)
    return target
