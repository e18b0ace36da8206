"""Tiny learnable datasets for training tests: a pneumonia image has a bright blob, a normal one has none."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pedclip.store import Store
from pedclip.store.cases import CaseRow, replace_cases, upsert_dataset

SPLITS = {"train": 16, "val": 8, "test": 8}  # cases per split; half of each split positive
REPORTS = ("lungs are clear. no consolidation.", "right lower lobe consolidation consistent with pneumonia.")


def draw(seed: int, label: int, size: int = 64) -> Image.Image:
    """Noise on a gray thorax; positives add a bright blob at a seeded place."""
    rng = np.random.default_rng(seed)
    pixels = rng.normal(80, 25, size=(size, size))
    if label:
        cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
        yy, xx = np.mgrid[:size, :size]
        pixels += 120 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size / 8) ** 2))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")


def add_dataset(
    store: Store, folder: Path, name: str, seed: int, splits: dict[str, int] = SPLITS
) -> list[CaseRow]:
    """Write PNGs and insert them as dataset `name` with train/val/test splits and reports."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for split, n in splits.items():
        for i in range(n):
            label = i % 2
            path = folder / f"{split}_{i:03d}.png"
            draw(seed * 1000 + len(rows), label).save(path)
            rows.append(CaseRow(case_id=path.name, path=str(path), width=64, height=64, mode="L", label=label,
                                image_sha256=hashlib.sha256(path.read_bytes()).hexdigest(), split=split,
                                report=REPORTS[label]))  # fmt: skip
    upsert_dataset(store, name, "synth", str(folder), ["normal", "pneumonia"])
    replace_cases(store, name, rows)
    return rows


@pytest.fixture
def site(store: Store, tmp_path: Path) -> str:
    """A store holding one tiny learnable dataset, "site-a"."""
    add_dataset(store, tmp_path / "site-a", "site-a", seed=1)
    return "site-a"


@pytest.fixture(scope="session")
def tiny():
    """The tiny random CLIP (loaded once; tests that train load their own copy with `fresh_tiny`)."""
    from pedclip.models import load_encoder

    return load_encoder("openclip:pedclip-tiny")


def fresh_tiny():
    from pedclip.models import load_encoder

    return load_encoder("openclip:pedclip-tiny")
