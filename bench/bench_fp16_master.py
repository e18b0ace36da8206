"""CPU cost of the study's CLIP precision (`--precision fp16-master`: fp32 forward on a CPU, weights rounded
to fp16 after every step) against fp32, on the demo's CLIP.

Times full training steps (forward, backward, Adam step, and for fp16-master the rounding of the weights
back to fp16) of the untrained `demo:clip` architecture on random pixels, alternating the two precisions
so both see the same machine load; prints the median step time of each and their ratio.

    python bench/bench_fp16_master.py [--batch 32] [--steps 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pedclip.demo.models import untrained_clip  # noqa: E402
from pedclip.train.config import FinetuneConfig  # noqa: E402
from pedclip.train.finetune import make_optimizer  # noqa: E402
from pedclip.train.step import StepSettings, accumulate_gradients, optimizer_step, set_mode  # noqa: E402
from pedclip.train.trainable import round_to_fp16, select_trainable, study_fp16_parameters  # noqa: E402

PRECISIONS = ("fp32", "fp16-master")


def trainer(precision: str, batch: int):
    torch.manual_seed(0)
    encoder = untrained_clip(seed=0)
    params = [p for _, p in select_trainable(encoder, "all")]
    masters = study_fp16_parameters(encoder) if precision == "fp16-master" else []
    round_to_fp16(masters)
    optimizer = make_optimizer(FinetuneConfig(model="m", dataset="d", weight_decay=0.1), params, masters)
    settings = StepSettings(loss="clip", device="cpu", precision=precision)
    size = encoder.preprocess_config.size
    pixels = np.random.default_rng(0).integers(0, 255, (batch, size, size), dtype=np.uint8)
    labels = np.arange(batch) % 2
    texts = [("a photo of normal lungs.", "a photo of covid lungs.")[i] for i in labels]
    set_mode(encoder, True)

    def step() -> float:
        tick = time.perf_counter()
        accumulate_gradients(encoder, pixels, texts, labels, settings)
        optimizer_step(optimizer, params, encoder, 0.0)
        return time.perf_counter() - tick

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    steps = {p: trainer(p, args.batch) for p in PRECISIONS}
    for p in PRECISIONS:
        steps[p]()  # warm-up
    times: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for _ in range(args.steps):
        for p in PRECISIONS:
            times[p].append(steps[p]())
    median = {p: statistics.median(t) for p, t in times.items()}
    for p in PRECISIONS:
        print(f"{p:12s} median step {median[p]:.2f} s over {args.steps} steps (batch {args.batch})")
    print(f"fp16-master / fp32 step time: {median['fp16-master'] / median['fp32']:.2f}x")


if __name__ == "__main__":
    main()
