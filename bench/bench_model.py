"""Model-alone throughput of untrained `openclip:ViT-B-32-quickgelu` (224 px), fp32 vs bf16 weights.

The weights do not change the speed, so the untrained model stands in for the OpenAI one. Prints
images/s (median over a few batches after one warm-up) and the mean cosine between bf16 and fp32
image embeddings of the same random batch. Short by design:

    python bench/bench_model.py [--batch 32] [--batches 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pedclip.models import load_encoder  # noqa: E402

SPEC = "openclip:ViT-B-32-quickgelu"


def images_per_second(encoder, pixels: torch.Tensor, batches: int) -> tuple[float, np.ndarray]:
    out = encoder.encode_images(pixels)  # warm-up
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        out = encoder.encode_images(pixels)
        if encoder.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return len(pixels) / statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    pixels = torch.randn(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    print(f"# {SPEC} model alone, batch {args.batch}, device {args.device}, torch threads {torch.get_num_threads()}, "
          f"cpus {os.cpu_count()}")  # fmt: skip
    outputs = {}
    for dtype in ("fp32", "bf16"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            encoder = load_encoder(SPEC, dtype=dtype, device=args.device)
        rate, outputs[dtype] = images_per_second(encoder, pixels, args.batches)
        print(f"model_alone_{dtype}_images_per_s {rate:.1f}")
    cosine = np.sum(outputs["fp32"] * outputs["bf16"], axis=1)
    print(f"bf16_vs_fp32_image_cosine mean {cosine.mean():.5f} min {cosine.min():.5f}")


if __name__ == "__main__":
    main()
