"""Model-alone throughput of untrained `openclip:ViT-B-32-quickgelu` (224 px), fp32 vs bf16 weights.

The weights do not change the speed, so the untrained model stands in for the OpenAI one. Prints
images/s (median over a few batches after one warm-up) and the mean cosine between bf16 and fp32
image embeddings of the same random batch; then prompts/s of `encode_texts` (tokenize included) for
2 and 100 prompts, fp32, with the full 77-token text forward vs the trimmed one (up to the last EOT),
and the largest difference between their vectors. Short by design:

    python bench/bench_model.py [--batch 32] [--batches 3] [--device cpu] [--text-only]
"""

from __future__ import annotations

import argparse
import dataclasses
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
TEMPLATES = ("a chest x-ray showing {}", "a pediatric chest radiograph with {}", "{}", "an x-ray of a child's chest: {}",
             "frontal chest radiograph, findings consistent with {} in a young patient")  # fmt: skip
FINDINGS = ("pneumonia", "no acute cardiopulmonary abnormality", "right lower lobe consolidation",
            "diffuse interstitial opacities", "clear lungs", "bilateral patchy airspace disease",
            "a normal heart size and clear lungs", "left lower lobe opacity", "viral pneumonia",
            "bacterial pneumonia", "lobar consolidation", "no pneumonia", "normal", "hyperinflation",
            "peribronchial thickening", "a small pleural effusion", "atelectasis", "no focal consolidation",
            "streaky perihilar opacities", "an unremarkable chest")  # fmt: skip


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


def prompts_per_second(encoder, prompts: list[str], repeats: int) -> tuple[float, np.ndarray]:
    out = encoder.encode_texts(prompts)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = encoder.encode_texts(prompts)
        times.append(time.perf_counter() - start)
    return len(prompts) / statistics.median(times), out


def tower_ms(encoder, prompts: list[str], threads: int, repeats: int = 20) -> float:
    """Median ms of the text tower alone on `threads` intra-op threads (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            tokens = encoder.tokenize(prompts)
            encoder.text_tower(tokens)  # warm-up
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                encoder.text_tower(tokens)
                times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return 1000 * statistics.median(times)


def bench_text(device: str) -> None:
    from pedclip.models.text_trim import TextTower

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trimmed = load_encoder(SPEC, device=device)
    full = dataclasses.replace(trimmed, text_tower=TextTower(trimmed.modules["model"], trim=False))
    prompts = [t.format(f) for f in FINDINGS for t in TEMPLATES]
    for n, repeats in ((2, 20), (100, 3)):
        full_rate, full_out = prompts_per_second(full, prompts[:n], repeats)
        trim_rate, trim_out = prompts_per_second(trimmed, prompts[:n], repeats)
        print(f"text_fp32_{n}_prompts full {full_rate:.1f} prompts/s ({1000 * n / full_rate:.1f} ms) | trimmed "
              f"{trim_rate:.1f} prompts/s ({1000 * n / trim_rate:.1f} ms) | max abs diff "
              f"{np.abs(full_out - trim_out).max():.2e}")  # fmt: skip
    # encode_texts puts up to FEW_TEXTS prompts on one thread; this shows why (the gap grows with other load)
    print(f"text_fp32_2_prompts one thread {tower_ms(trimmed, prompts[:2], 1):.1f} ms | "
          f"two threads {tower_ms(trimmed, prompts[:2], 2):.1f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--text-only", action="store_true", help="only the prompt-encoding figures")
    args = parser.parse_args()
    pixels = torch.randn(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    print(f"# {SPEC} model alone, batch {args.batch}, device {args.device}, torch threads {torch.get_num_threads()}, "
          f"cpus {os.cpu_count()}")  # fmt: skip
    if args.text_only:
        bench_text(args.device)
        return
    outputs = {}
    for dtype in ("fp32", "bf16"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            encoder = load_encoder(SPEC, dtype=dtype, device=args.device)
        rate, outputs[dtype] = images_per_second(encoder, pixels, args.batches)
        print(f"model_alone_{dtype}_images_per_s {rate:.1f}")
    cosine = np.sum(outputs["fp32"] * outputs["bf16"], axis=1)
    print(f"bf16_vs_fp32_image_cosine mean {cosine.mean():.5f} min {cosine.min():.5f}")
    bench_text(args.device)


if __name__ == "__main__":
    main()
