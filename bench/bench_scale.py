"""Scaling out on one machine: `--engine ray` vs the local engine, and DDP on 2 CPU ranks vs one process.

1. The same N JPEGs (1500x1200 8-bit gray, as bench_embed.py and perf-anchors section 2) embedded by the
   local engine and by the Ray engine (a local Ray instance with every core, one encoder actor), each into
   its own fresh store with no pixel cache: throughput ratio (target: Ray within 20% of local), Ray's start
   cost, per-stage seconds, decode cost per film and the actor's encode rate (inputs of the projection in
   bench/README.md), and that the vectors agree.
2. Fine-tuning steps of the same global batch on one process and on 2 gloo ranks: step time ratio and the
   loss of each step (equal to float precision).

    python bench/bench_scale.py [--images 2000] [--spec openclip:pedclip-demo] [--steps 5] [--batch 32]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_embed import add_dataset, row  # noqa: E402
from pedclip.embed.pipeline import EmbedConfig, embed_dataset  # noqa: E402
from pedclip.embed.ray_engine import RayConfig, embed_dataset_ray  # noqa: E402
from pedclip.embed.ray_stages import EncoderSpec  # noqa: E402
from pedclip.models import load_encoder  # noqa: E402
from pedclip.store import Store  # noqa: E402
from pedclip.store.embeddings import case_vectors  # noqa: E402
from pedclip.train.data import TrainingSplit  # noqa: E402
from pedclip.train.distributed import DataParallel, Rank  # noqa: E402
from pedclip.train.launch import free_port  # noqa: E402
from pedclip.train.step import StepSettings, accumulate_gradients, optimizer_step, set_mode  # noqa: E402

PROMPTS = ("a photo of normal lungs.", "a photo of pneumonia lungs.")


def load() -> str:
    return f"load average {os.getloadavg()[0]:.1f}"


def write_jpegs(folder: Path, n: int) -> list:
    """n distinct 1500x1200 8-bit gray JPEGs (quality 90), as bench_embed.py's but drawn faster: one smooth
    field with noise, shifted per image (decoding cost is what matters here, not variety)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:1200, 0:1500].astype(np.float32)
    field = np.clip(120 + 60 * np.sin(xx / 90) * np.cos(yy / 95) + rng.normal(0, 12, (1200, 1500)), 0, 255)
    field = field.astype(np.uint8)
    rows = []
    for i in range(n):
        buffer = io.BytesIO()
        Image.fromarray(np.roll(field, (i * 7, i * 13), axis=(0, 1)), "L").save(buffer, "JPEG", quality=90)
        path = folder / f"x{i:05d}.jpg"
        path.write_bytes(buffer.getvalue())
        rows.append(row(i, str(path), hashlib.sha256(buffer.getvalue()).hexdigest()))
    return rows


def bench_engines(spec: str, n: int, batch: int, root: Path) -> None:
    encoder = load_encoder(spec)
    rows = write_jpegs(root / "jpegs", n)
    stores = {name: Store.open(root / name) for name in ("local", "ray")}
    for store in stores.values():
        add_dataset(store, "jpegs", rows)
    config = EmbedConfig(batch_size=batch, chunk_size=256, use_pixel_cache=False)
    print(f"{n} JPEGs written; {load()}")
    local = embed_dataset(stores["local"], encoder, "jpegs", config)
    print(f"local engine ({config.resolved_workers} decoding worker(s)): {local.images_per_s:.1f} img/s, "
          f"stages {rounded(local.seconds)}; {load()}")  # fmt: skip
    ray_spec = EncoderSpec(spec, encoder.fingerprint, home=str(root / "ray"))
    ray = embed_dataset_ray(stores["ray"], encoder, ray_spec, "jpegs", config, RayConfig())
    steady = ray.embedded / (ray.seconds["total"] - ray.seconds["start"])
    print(f"ray engine (local instance, {os.cpu_count()} CPUs, 1 actor): {ray.images_per_s:.1f} img/s with "
          f"Ray's start ({ray.seconds['start']:.1f} s), {steady:.1f} img/s without; stages {rounded(ray.seconds)}; {load()}")  # fmt: skip
    print(f"throughput ray/local: {ray.images_per_s / local.images_per_s:.2f} with start, "
          f"{steady / local.images_per_s:.2f} without (target >= 0.80)")  # fmt: skip
    print(f"decode cost per film (1500x1200 JPEG -> {encoder.preprocess_config.size} px, summed over decode tasks): "
          f"{1000 * ray.seconds['read'] / n:.1f} ms; actor encode rate {n / ray.seconds['encode']:.1f} img/s")  # fmt: skip
    _, a = case_vectors(stores["local"], encoder.fingerprint, "jpegs")
    _, b = case_vectors(stores["ray"], encoder.fingerprint, "jpegs")
    print(f"vectors: {len(a)} vs {len(b)}, min cosine {float(np.min(np.sum(a * b, axis=1))):.7f}")


def rounded(seconds: dict) -> dict:
    return {k: round(v, 2) for k, v in seconds.items()}


def training_split(spec: str, n: int) -> TrainingSplit:
    size = load_encoder(spec).preprocess_config.size
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    pixels = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    pixels[labels == 1, size // 3 : size // 2, size // 3 : size // 2] = 255
    texts = tuple(PROMPTS[label] for label in labels)
    return TrainingSplit("train", tuple(f"c{i}" for i in range(n)), pixels, labels, texts)


def run_steps(
    encoder, replica, data: TrainingSplit, batch: int, steps: int
) -> tuple[list[float], list[float]]:
    settings = StepSettings(loss="semantic", device="cpu", precision="fp32")
    params = [p for p in encoder.modules["model"].parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-4)
    set_mode(encoder, True)
    losses, times = [], []
    for step in range(steps):
        index = np.arange(step * batch, (step + 1) * batch) % len(data)
        start = time.perf_counter()
        if replica is None:
            texts = [data.texts[i] for i in index]
            loss = accumulate_gradients(encoder, data.pixels[index], texts, data.labels[index], settings)
        else:
            loss = replica.accumulate(encoder, data, index, settings, None)
        optimizer_step(optimizer, params, encoder, 0.0)
        times.append(time.perf_counter() - start)
        losses.append(loss)
    return losses, times


def ddp_rank(index: int, port: int, spec: str, data: TrainingSplit, batch: int, steps: int, out: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    dist.init_process_group("gloo", rank=index, world_size=2)
    try:
        encoder = load_encoder(spec)
        losses, times = run_steps(
            encoder, DataParallel(Rank(index, 2, index)).attach(encoder), data, batch, steps
        )
        torch.save({"losses": losses, "times": times}, os.path.join(out, f"rank{index}.pt"))
    finally:
        dist.destroy_process_group()


def bench_ddp(spec: str, batch: int, steps: int, root: Path) -> None:
    import torch.multiprocessing as mp

    data = training_split(spec, batch * steps)
    single_losses, single_times = run_steps(load_encoder(spec), None, data, batch, steps)
    print(f"one process, global batch {batch}: {np.median(single_times[1:]):.3f} s/step (median after the first); {load()}")  # fmt: skip
    mp.start_processes(
        ddp_rank, args=(free_port(), spec, data, batch, steps, str(root)), nprocs=2, start_method="spawn"
    )
    rank0 = torch.load(root / "rank0.pt")
    ddp_time = float(np.median(rank0["times"][1:]))
    print(f"2 gloo ranks x {batch // 2}: {ddp_time:.3f} s/step; ratio 2 ranks / 1 process "
          f"{ddp_time / np.median(single_times[1:]):.2f}; {load()}")  # fmt: skip
    gap = max(abs(a - b) for a, b in zip(rank0["losses"], single_losses, strict=True))
    print(f"losses one process {np.round(single_losses, 5).tolist()}; 2 ranks {np.round(rank0['losses'], 5).tolist()}; "
          f"max |difference| {gap:.2e}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", default="openclip:pedclip-demo", help="model spec (untrained weights)")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--skip-embed", action="store_true")
    parser.add_argument("--skip-ddp", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(
        f"torch {torch.__version__}, {os.cpu_count()} cores, {load()} (a shared machine: other jobs skew figures)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_embed:
            bench_engines(args.spec, args.images, args.batch, Path(tmp) / "embed")
        if not args.skip_ddp:
            (Path(tmp) / "ddp").mkdir()
            bench_ddp(args.spec, args.batch, args.steps, Path(tmp) / "ddp")


if __name__ == "__main__":
    main()
