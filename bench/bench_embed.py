"""Embedding throughput: model alone, pipeline from the pixel cache, pipeline from JPEGs, warm rerun, memory.

Untrained `openclip:ViT-B-32-quickgelu` at 224 px (speed does not depend on the weights). Prints one
line per figure. Short by design (~2-3 min on 2 cores); sizes are flags.

    python bench/bench_embed.py [--jpegs 160] [--cached 256] [--warm 5000] [--batches 3] [--workers 1]
    (on a bigger host, `taskset -c 0,1` reproduces the 2-core CI machine)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pedclip.embed.pipeline import EmbedConfig, embed_dataset  # noqa: E402
from pedclip.embed.pixels import PixelCache  # noqa: E402
from pedclip.models import load_encoder  # noqa: E402
from pedclip.models.base import geometry  # noqa: E402
from pedclip.store import Store  # noqa: E402
from pedclip.store.cases import CaseRow, replace_cases, upsert_dataset  # noqa: E402
from pedclip.store.embeddings import put_image_embeddings, register_model  # noqa: E402

SPEC = "openclip:ViT-B-32-quickgelu"


def model_alone(encoder, pixels: torch.Tensor, batches: int) -> tuple[float, np.ndarray]:
    """Images/s of forward passes on a fixed batch (one warm-up pass, then the median of `batches`)."""
    out = encoder.encode_images(pixels)
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        encoder.encode_images(pixels)
        times.append(time.perf_counter() - start)
    return (len(pixels) / statistics.median(times) if times else 0.0), out


def fake_sha(i: int, tag: str) -> str:
    return hashlib.sha256(f"{tag}-{i}".encode()).hexdigest()


def add_dataset(store: Store, name: str, rows: list[CaseRow]) -> None:
    upsert_dataset(store, name, "folders", "/bench", ["normal", "pneumonia"])
    replace_cases(store, name, rows)


def row(i: int, path: str, sha: str) -> CaseRow:
    return CaseRow(
        case_id=f"c{i:06d}", path=path, image_sha256=sha, width=1500, height=1200, mode="L", label=i % 2
    )


def bench_pixel_cache(store: Store, encoder, n: int, batch: int, alone: float) -> None:
    """All images already in the pixel cache (no source files at all): read + normalise + encode + write."""
    cache = PixelCache(store.paths.pixels, encoder.preprocess_config)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        sha = fake_sha(i, "cached")
        size = encoder.preprocess_config.size
        cache.put(sha, rng.integers(0, 256, (size, size), dtype=np.uint8))
        rows.append(row(i, f"/nonexistent/{i}.jpg", sha))
    add_dataset(store, "cached", rows)
    report = embed_dataset(store, encoder, "cached", EmbedConfig(batch_size=batch, workers=1))
    assert report.pixel_cache_hits == n and report.failed == 0
    print(
        f"pipeline from pixel cache, {encoder.dtype}, batch {batch}, {n} images: {report.images_per_s:.1f} img/s "
        f"= {100 * report.images_per_s / alone:.0f}% of model alone (target >= 85%); stages {report.seconds}"
    )


def write_jpegs(folder: Path, n: int) -> list[CaseRow]:
    """1500x1200 8-bit gray JPEGs (smooth structure + noise, quality 90), like the anchors' section 2."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:1200, 0:1500].astype(np.float32)
    rows = []
    for i in range(n):
        base = 120 + 60 * np.sin(xx / (80 + i)) * np.cos(yy / 95) + rng.normal(0, 12, (1200, 1500))
        buffer = io.BytesIO()
        Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "L").save(buffer, "JPEG", quality=90)
        path = folder / f"x{i:05d}.jpg"
        path.write_bytes(buffer.getvalue())
        rows.append(row(i, str(path), hashlib.sha256(buffer.getvalue()).hexdigest()))
    return rows


KERMANY = Path(__file__).resolve().parents[2] / "shared" / "data" / "kermany-sample"


def write_film_jpegs(folder: Path, n: int) -> list[CaseRow]:
    """n 1500x1200 JPEGs (quality 90) of real chest films: the Kermany sample in shared/data (CC BY 4.0, see its
    README; read, never copied into the repository) resized to the size the issue names, cycled, each copy
    made distinct by a JPEG comment. Real films hold ~1 bit a pixel against `write_jpegs`' noise's ~3, so
    they decode in about half the time: the two bracket what a user's files cost."""
    folder.mkdir(parents=True)
    sources = sorted(KERMANY.rglob("*.jpeg"))
    if not sources:
        raise SystemExit(f"no JPEGs under {KERMANY}; the film pipeline needs the shared data sample")
    films = [Image.open(f).convert("L").resize((1500, 1200), Image.Resampling.BICUBIC) for f in sources]
    rows = []
    for i in range(n):
        buffer = io.BytesIO()
        films[i % len(films)].save(buffer, "JPEG", quality=90, comment=f"copy {i}".encode())
        path = folder / f"f{i:05d}.jpg"
        path.write_bytes(buffer.getvalue())
        rows.append(row(i, str(path), hashlib.sha256(buffer.getvalue()).hexdigest()))
    return rows


def sequential(encoder, rows: list[CaseRow], batch: int) -> float:
    """The study's way: decode + preprocess everything in this process, then encode in batches."""
    start = time.perf_counter()
    arrays = [geometry(Image.open(r.path), encoder.preprocess_config) for r in rows]
    for i in range(0, len(arrays), batch):
        encoder.encode_images(encoder.normalize(arrays[i : i + batch]))
    return len(rows) / (time.perf_counter() - start)


def bench_jpegs(store: Store, encoder, n: int, batch: int, workers: int) -> None:
    rows = write_jpegs(store.paths.home / "jpegs", n)
    add_dataset(store, "jpegs", rows)
    seq = sequential(encoder, rows, batch)
    report = embed_dataset(store, encoder, "jpegs", EmbedConfig(batch_size=batch, workers=workers))
    assert report.embedded == n and report.decoded == n
    print(f"sequential decode-then-encode, {encoder.dtype}, {n} JPEGs 1500x1200: {seq:.1f} img/s")
    print(
        f"pipeline from JPEGs ({workers} worker(s)): {report.images_per_s:.1f} img/s; "
        f"ratio pipeline/sequential = {report.images_per_s / seq:.2f}x (target >= 1.5x); stages {report.seconds}"
    )


def bench_warm(store: Store, encoder, n: int) -> None:
    rng = np.random.default_rng(2)
    rows = [row(i, f"/nonexistent/{i}.jpg", fake_sha(i, "warm")) for i in range(n)]
    add_dataset(store, "warm", rows)
    vectors = rng.normal(size=(n, encoder.dim)).astype(np.float32)
    put_image_embeddings(store, encoder.fingerprint, [r.image_sha256 for r in rows], vectors)
    register_model(store, encoder.describe())
    report = embed_dataset(store, encoder, "warm", EmbedConfig())
    assert report.embedded == 0 and report.already_embedded == n
    print(f"warm rerun over {n} cached images (model loaded): {report.seconds['total']:.2f} s (target < 2 s)")


def peak_rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def tree_pss_mb() -> float:
    """Proportional set size of this process and its children: pages a forked worker shares with the
    main process count once (their RSS figures count them in both)."""
    pids = [os.getpid()]
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        with contextlib.suppress(OSError):
            pids += [int(p) for p in (task / "children").read_text().split()]
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            total += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return total / 1024


class PeakPss:
    """Samples `tree_pss_mb` every `every` seconds in a thread; `.peak` is the largest sample."""

    def __init__(self, every: float = 0.1) -> None:
        self.peak, self._every, self._done = 0.0, every, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.wait(self._every):
            self.peak = max(self.peak, tree_pss_mb())

    def __enter__(self) -> PeakPss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


def bench_rss(spec: str, n: int, batch: int, dtype: str) -> None:
    """Peak memory of the pipeline over n pixel-cached images, in a fresh process: ru_maxrss of the main
    process and the largest worker, and the sampled peak PSS of both together (the physical footprint)."""
    encoder = load_encoder(spec, dtype=dtype)
    size = encoder.preprocess_config.size
    alone, _ = model_alone(encoder, torch.randn(batch, 3, size, size), 2)
    with tempfile.TemporaryDirectory() as home, PeakPss() as pss:
        bench_pixel_cache(Store.open(home), encoder, n, batch, alone)
    own, children = peak_rss_mb()
    print(
        f"peak memory embedding {n} images ({spec}, {dtype}): RSS main {own:.0f} MB, worker {children:.0f} MB; "
        f"PSS of both together {pss.peak:.0f} MB (target < 3 GB at 20,000 images)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", default=SPEC, help="model spec (openclip:pedclip-tiny for a smoke run)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--cached", type=int, default=256)
    parser.add_argument("--jpegs", type=int, default=160)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--dtype", choices=["fp32", "bf16"], help="pipeline dtype (default bf16 with AMX, else fp32)"
    )
    parser.add_argument("--warm", type=int, default=5000)
    parser.add_argument(
        "--rss-images", type=int, default=0, help="only: peak RSS embedding N pixel-cached images"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.rss_images:
        return bench_rss(args.spec, args.rss_images, args.batch, args.dtype or "fp32")
    fast_bf16 = has_amx_bf16()
    dtype = args.dtype or ("bf16" if fast_bf16 else "fp32")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, AMX-BF16 "
        f"{'yes' if fast_bf16 else 'no'}, load average {os.getloadavg()[0]:.1f} (other processes skew figures)"
    )
    fp32 = load_encoder(args.spec)
    pixels = torch.randn(args.batch, 3, fp32.preprocess_config.size, fp32.preprocess_config.size)
    fp32_rate, fp32_out = model_alone(fp32, pixels, args.batches)
    print(f"model alone fp32, batch {args.batch}: {fp32_rate:.1f} img/s")
    bf16 = load_encoder(args.spec, dtype="bf16")
    # Without AMX, bf16 is emulated and ~100x slower: compare embeddings on a few images, skip its timing.
    few = pixels if fast_bf16 else pixels[:4]
    bf16_rate, bf16_out = model_alone(bf16, few, args.batches + 2 if fast_bf16 else 0)
    if fast_bf16:
        print(f"model alone bf16 weights, batch {args.batch}: {bf16_rate:.1f} img/s")
    cosine = np.sum(fp32_out[: len(few)] * bf16_out, axis=1)
    print(
        f"bf16 vs fp32 embeddings of {len(few)} images: mean cosine {cosine.mean():.5f} (min {cosine.min():.5f})"
    )
    encoder, alone = (bf16, bf16_rate) if dtype == "bf16" else (fp32, fp32_rate)
    with tempfile.TemporaryDirectory() as home:
        store = Store.open(home)
        bench_pixel_cache(store, encoder, args.cached, args.batch, alone)
        bench_jpegs(store, encoder, args.jpegs, args.batch, args.workers)
        bench_warm(store, encoder, args.warm)
    own, children = peak_rss_mb()
    print(
        f"peak RSS: main process {own:.0f} MB (both models loaded), largest decoding worker {children:.0f} MB"
    )


def has_amx_bf16() -> bool:
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


if __name__ == "__main__":
    main()
