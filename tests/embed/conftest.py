"""Small image datasets drawn with PIL and inserted straight into the store (no ingest needed)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pedclip.store.cases import CaseRow, replace_cases, upsert_dataset


def draw_image(seed: int, size: tuple[int, int], mode: str) -> Image.Image:
    """A seeded noisy image with an ellipse, so every seed gives different pixels."""
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    noise = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    img = Image.fromarray(noise[..., 0] if channels == 1 else noise, mode=mode)
    box = [int(v) for v in rng.integers(0, min(size) // 2, 4)]
    ImageDraw.Draw(img).ellipse([box[0], box[1], box[0] + min(size) // 2, box[1] + min(size) // 2], fill=200)
    return img


def write_images(
    folder: Path, n: int, size: tuple[int, int] = (80, 64), fmt: str = "PNG", start: int = 0
) -> list[Path]:
    """n image files (alternating gray and RGB, varying aspect) named img_XXXX.<ext>."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        mode = "L" if i % 2 == 0 else "RGB"
        shape = (size[0] + (i % 3) * 8, size[1] + (i % 5) * 4)
        path = folder / f"img_{i:04d}.{fmt.lower().replace('jpeg', 'jpg')}"
        draw_image(i, shape, mode).save(path, format=fmt)
        paths.append(path)
    return paths


def case_row(path: Path, case_id: str | None = None, label: int = 0, split: str = "train") -> CaseRow:
    data = path.read_bytes()
    with Image.open(path) as img:
        width, height, mode = img.width, img.height, img.mode
    return CaseRow(case_id=case_id or path.name, path=str(path), image_sha256=hashlib.sha256(data).hexdigest(),
                   width=width, height=height, mode=mode, label=label, split=split)  # fmt: skip


def insert_dataset(store, name: str, paths: list[Path]) -> list[CaseRow]:
    rows = [case_row(p, label=i % 2, split=("train", "val", "test")[i % 3]) for i, p in enumerate(paths)]
    upsert_dataset(store, name, "folders", str(paths[0].parent), ["normal", "pneumonia"])
    replace_cases(store, name, rows)
    return rows


@pytest.fixture(scope="session")
def tiny_encoder_seed1():
    """Same architecture and preprocess, other weights: another fingerprint, same pixel-cache key."""
    from pedclip.models import load_encoder

    return load_encoder("openclip:pedclip-tiny", seed=1)


@pytest.fixture(scope="session")
def ray_address():
    """One local Ray instance (2 CPUs) for the whole test session: starting one costs seconds (~6 s on a
    quiet 2-core machine), so every Ray test shares it; its address lets a CLI subprocess join it."""
    import logging

    import ray

    context = ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
    )
    yield context.address_info["address"]
    ray.shutdown()
