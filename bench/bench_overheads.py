"""What a fine-tuning step and a query cost besides the model's own arithmetic, before and after issue 10's
demo-speed work: opening the DuckDB file per query vs a cursor on a held connection, 8-bit normalisation by
arithmetic vs by table, Adam per tensor vs fused, a ResNet tower's step in standard vs channels-last layout.

Each pair is alternated (a, b, a, b, ...) so both see the same machine load; prints medians and ratios.

    python bench/bench_overheads.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pedclip.demo.models import untrained_clip, untrained_medclip  # noqa: E402
from pedclip.models.base import normalize  # noqa: E402
from pedclip.store import Store  # noqa: E402
from pedclip.store.cases import get_dataset, upsert_dataset  # noqa: E402


def alternate(a: Callable[[], float], b: Callable[[], float], repeats: int) -> tuple[float, float]:
    a(), b()  # warm-up
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        times[0].append(a())
        times[1].append(b())
    return statistics.median(times[0]), statistics.median(times[1])


def timed(fn: Callable[[], object], n: int = 1) -> Callable[[], float]:
    def run() -> float:
        tick = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - tick) / n

    return run


def report(what: str, before: str, after: str, medians: tuple[float, float], unit: str = "ms") -> None:
    scale = 1000 if unit == "ms" else 1
    a, b = medians
    print(f"{what}: {before} {a * scale:.1f} {unit}, {after} {b * scale:.1f} {unit} ({a / b:.1f}x)")


def store_queries(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as home:
        store = Store.open(home)
        upsert_dataset(store, "d", "csv", "/x", ["normal", "pneumonia"])

        def held() -> float:
            with store.hold():
                return timed(lambda: get_dataset(store, "d"), 20)()

        report("one small query", "opening the file", "a cursor on a held connection",
               alternate(timed(lambda: get_dataset(store, "d"), 20), held, repeats))  # fmt: skip


def direct_normalize(batch: list[np.ndarray], mean, std) -> torch.Tensor:
    """The arithmetic `normalize` did before its table: channel repeat, float copy, transpose, /255, standardise."""
    stacked = np.stack([np.repeat(a[..., None], 3, axis=2) for a in batch]).astype(np.float32)
    unit = torch.from_numpy(stacked).permute(0, 3, 1, 2) / 255.0
    view = (1, -1, 1, 1)
    return ((unit - torch.tensor(mean).view(view)) / torch.tensor(std).view(view)).contiguous()


def normalisation(repeats: int) -> None:
    config = untrained_clip(seed=0).preprocess_config
    batch = list(np.random.default_rng(0).integers(0, 256, (32, config.size, config.size), dtype=np.uint8))
    assert torch.equal(normalize(batch, config), direct_normalize(batch, config.mean, config.std))
    report(f"normalising 32 8-bit films at {config.size} px", "arithmetic", "table",
           alternate(timed(lambda: direct_normalize(batch, config.mean, config.std)),
                     timed(lambda: normalize(batch, config)), repeats))  # fmt: skip


def adam(repeats: int) -> None:
    params = [p for p in untrained_clip(seed=0).modules["model"].parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    per_tensor = torch.optim.Adam(params, lr=1e-5, weight_decay=0.1, foreach=False)
    fused = torch.optim.Adam(params, lr=1e-5, weight_decay=0.1, fused=True)
    n = sum(p.numel() for p in params) / 1e6
    report(f"Adam step, demo:clip ({n:.1f}M weights)", "per tensor", "fused",
           alternate(timed(per_tensor.step), timed(fused.step), repeats))  # fmt: skip


def resnet_layout(repeats: int) -> None:
    encoder = untrained_medclip(["no consolidation.", "consolidation."], seed=0, vision="resnet")
    tower, size = encoder.image_tower.train(), encoder.preprocess_config.size
    pixels = torch.randn(32, encoder.preprocess_config.channels, size, size)

    def step() -> None:
        tower(pixels).sum().backward()

    def in_layout(layout: torch.memory_format) -> Callable[[], float]:
        def run() -> float:
            tower.to(memory_format=layout)
            return timed(step)()

        return run

    report("demo:medclip ResNet tower, forward + backward, batch 32", "standard layout", "channels-last",
           alternate(in_layout(torch.contiguous_format), in_layout(torch.channels_last), repeats), "s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    store_queries(args.repeats)
    normalisation(args.repeats)
    adam(args.repeats)
    resnet_layout(max(2, args.repeats // 2))


if __name__ == "__main__":
    main()
