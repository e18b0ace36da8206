"""Ingest speed: hashing + full decoding of JPEG folders (one process vs a pool, draft vs full decode) and npz.

Run: .venv/bin/python bench/data_ingest.py [--n 300] [--size 1500x1200]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pedclip.data.imaging import load_image
from pedclip.data.readers import inspect_items, open_source
from pedclip.data.readers_tree import SourceItem

SHARED_NPZ = Path(__file__).resolve().parents[2] / "shared" / "data" / "pneumoniamnist.npz"


def write_jpegs(folder: Path, n: int, width: int, height: int) -> list[SourceItem]:
    rng = np.random.default_rng(0)
    base = np.add.outer(np.linspace(0, 180, height), np.linspace(0, 60, width))
    items = []
    for i in range(n):
        pixels = np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"{i:05d}.jpeg"
        Image.fromarray(pixels, mode="L").save(path, "JPEG", quality=90)
        items.append(SourceItem(path, path.name, 0))
    return items


def naive(items: list[SourceItem]) -> None:
    """The reference: read, hash, full decode with load_image, one process."""
    for item in items:
        hashlib.sha256(item.path.read_bytes()).hexdigest()
        load_image(item.path)


def timed(label: str, n: int, run) -> None:
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    print(f"{label:<44} {seconds:7.2f} s  {n / seconds:8.1f} img/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--size", default="1500x1200")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        items = write_jpegs(Path(tmp), args.n, width, height)
        print(f"{args.n} grayscale JPEGs {width}x{height}, quality 90")
        timed("naive: sha256 + load_image, 1 process", args.n, lambda: naive(items))
        timed("inspect (draft decode), 1 process", args.n, lambda: list(inspect_items(items, workers=1)))
        timed(
            "inspect (draft decode), pool of all cores",
            args.n,
            lambda: list(inspect_items(items, workers=None)),
        )
    if SHARED_NPZ.exists():
        source = open_source(SHARED_NPZ)
        timed(
            f"npz {SHARED_NPZ.name}: {source.total} members hashed",
            source.total,
            lambda: list(source.records),
        )


if __name__ == "__main__":
    main()
