"""ONNX Runtime vs torch on the CPU: every ratio measured in one run, repetitions interleaved.

1. towers: img/s of torch eager fp32, ORT fp32 and ORT int8 at batch 32 (random weights): ViT-B/32 (open_clip),
   MedCLIP's Swin-T and ResNet-50; export+verify seconds; cosine of ORT fp32 and int8 to torch.
2. text: 2 prompts through the ViT-B/32 text tower, torch (trimmed) vs ORT (trimmed-length graph), ms.
3. pipeline: 1500x1200 JPEGs (noise-heavy synthetic ones, and real films from shared/data re-encoded at that
   size) through `embed_dataset` with ORT, each reader (threads between batches, the CPU default; processes
   overlapping the model) with exact decode and --jpeg-draft, vs the ORT model alone (measured just before and
   after each run) and vs the study-style loop in torch (decode + preprocess everything, then encode).
4. int8 verdicts (--demo-home: a `pedclip demo --quick` home; --mnist: also PneumoniaMNIST): cosine of int8 to
   fp32 vectors, zero-shot AUROC, linear-probe AUROC and kNN recall@10 (overlap of each test image's 10
   nearest training images under int8 with those under fp32).
5. demo (--demo-home): the demo's embedding step with torch, with ORT exporting first, with ORT graphs on disk.

    python bench/bench_runtime.py [--batch 32] [--reps 3] [--jpegs 256] [--demo-home DIR] [--mnist]
        [--only towers,text,pipeline,demo,verdicts]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_embed import add_dataset, sequential, write_film_jpegs, write_jpegs  # noqa: E402

from pedclip.embed.pipeline import EmbedConfig, embed_dataset  # noqa: E402
from pedclip.models import load_encoder  # noqa: E402
from pedclip.models.onnx_towers import onnx_encoder  # noqa: E402
from pedclip.store import Store  # noqa: E402

VIT = "openclip:ViT-B-32-quickgelu"
MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "pneumoniamnist.npz"


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def medclip_random(variant: str):
    """MedCLIP's real-size towers (Swin-T from SwinConfig's defaults, ResNet-50, BERT-base) with random weights."""
    from transformers import BertConfig, SwinConfig

    from pedclip.models.medclip import wrap_medclip
    from pedclip.models.medclip_arch import MedCLIP, Text, VisionResNet, VisionViT
    from pedclip.models.registry import LoadOptions

    torch.manual_seed(0)
    vision = VisionViT(SwinConfig()) if variant == "vit" else VisionResNet()
    model = MedCLIP(vision, Text(BertConfig()))
    encoder = wrap_medclip(
        f"medclip:{variant}", model, None, {"bench": variant}, "untrained:bench", LoadOptions()
    )
    # No tokenizer here (offline, no BERT vocabulary), so `dim` cannot come from a text: the image tower says it
    encoder.dim = int(encoder.encode_images(torch.zeros(1, 3, 224, 224)).shape[1])
    return encoder


def min_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


def bench_towers(root: Path, batch: int, reps: int) -> None:
    for name, build, with_int8 in (
        ("ViT-B/32", lambda: load_encoder(VIT), True),
        ("MedCLIP Swin-T", lambda: medclip_random("vit"), True),
        ("MedCLIP ResNet-50", lambda: medclip_random("resnet"), False),
    ):
        base = build()
        variants = {"torch fp32": base, "ORT fp32": onnx_encoder(base, root)}
        if with_int8:
            variants["ORT int8"] = onnx_encoder(base, root, "int8")
        config = base.preprocess_config
        pixels = torch.randn(batch, config.channels, config.size, config.size)
        outs, export = {}, {}
        for label, encoder in variants.items():  # first call: export + verify (ORT), warm-up (torch)
            start = time.perf_counter()
            outs[label] = encoder.encode_images(pixels)
            export[label] = time.perf_counter() - start
        times: dict[str, list[float]] = {label: [] for label in variants}
        for _ in range(reps):  # interleaved, so load changes hit every variant alike
            for label, encoder in variants.items():
                times[label].append(timed(lambda e=encoder, p=pixels: e.encode_images(p)))
        rates = {label: batch / statistics.median(t) for label, t in times.items()}
        line = ", ".join(f"{label} {rate:.2f} img/s" for label, rate in rates.items())
        print(f"{name}, batch {batch}, median of {reps} interleaved: {line} ({load()})")
        print(
            f"  ORT fp32 / torch = {rates['ORT fp32'] / rates['torch fp32']:.2f}x"
            + (f"; ORT int8 / ORT fp32 = {rates['ORT int8'] / rates['ORT fp32']:.2f}x" if with_int8 else "")
            + f"; min cosine to torch over {batch}: ORT fp32 {min_cos(outs['ORT fp32'], outs['torch fp32']):.7f}"
            + (f", int8 {min_cos(outs['ORT int8'], outs['torch fp32']):.5f}" if with_int8 else "")
            + f"; first call (export+verify) ORT fp32 {export['ORT fp32']:.1f} s"
        )


def bench_text(root: Path, reps: int) -> None:
    prompts = ["a chest x-ray showing pneumonia", "a chest x-ray of normal lungs"]
    base = load_encoder(VIT)
    ort = onnx_encoder(base, root)
    first = timed(lambda: ort.encode_texts(prompts))
    base.encode_texts(prompts)
    times = {"torch": [], "ORT": []}
    for _ in range(reps):
        times["torch"].append(timed(lambda: base.encode_texts(prompts)))
        times["ORT"].append(timed(lambda: ort.encode_texts(prompts)))
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    cosine = min_cos(ort.encode_texts(prompts), base.encode_texts(prompts))
    print(
        f"text tower ViT-B/32, 2 prompts (one thread each), median of {reps} interleaved: torch {ms['torch']:.1f} ms,"
        f" ORT {ms['ORT']:.1f} ms = {ms['torch'] / ms['ORT']:.2f}x; min cosine {cosine:.7f};"
        f" first ORT call (export+verify) {first:.1f} s ({load()})"
    )


def model_rate(encoder, batch: int, reps: int) -> float:
    pixels = torch.randn(batch, 3, 224, 224)
    encoder.encode_images(pixels)
    return batch / statistics.median([timed(lambda: encoder.encode_images(pixels)) for _ in range(reps)])


def decode_costs(rows, config) -> str:
    """Core-ms a film for each step the reader runs on one thread: decode (exact, and drafted as
    --jpeg-draft does) and the resize to the model's input; medians over the films."""
    from PIL import Image

    from pedclip.models.base import draft_floor, geometry

    def ms(fn) -> float:
        return 1000 * statistics.median([timed(lambda r=r: fn(r)) for r in rows])

    def decoded(row, draft: bool):
        image = Image.open(row.path)
        if draft:
            image.draft(image.mode, draft_floor(*image.size, config))
        image.load()
        return image

    exact = {r.path: decoded(r, False) for r in rows}
    drafted = {r.path: decoded(r, True) for r in rows}
    return (
        f"   per film, one core: decode {ms(lambda r: decoded(r, False)):.1f} ms exact, "
        f"{ms(lambda r: decoded(r, True)):.1f} ms drafted; resize {ms(lambda r: geometry(exact[r.path], config)):.1f}"
        f" ms from the full image, {ms(lambda r: geometry(drafted[r.path], config)):.1f} ms from the drafted one"
    )


def bench_pipeline(root: Path, n: int, batch: int, reps: int) -> None:
    """Each pipeline run is framed by model-alone timings (their mean is its reference), so a load change
    between the two shows as a gap between the before and after figures."""
    torch_encoder = load_encoder(VIT)
    ort = onnx_encoder(torch_encoder, root)
    with tempfile.TemporaryDirectory() as tmp:
        for kind, write in (("real films", write_film_jpegs), ("noise", write_jpegs)):
            rows = write(Path(tmp) / kind, n)
            kb = np.mean([os.path.getsize(r.path) for r in rows]) / 1024
            print(decode_costs(rows[:32], ort.preprocess_config))
            seq = sequential(torch_encoder, rows, batch)
            print(
                f"{n} JPEGs 1500x1200, {kind} ({kb:.0f} kB each): study-style loop in torch {seq:.2f} img/s"
            )
            for reader in ("threads", "processes"):
                for draft in (False, True):
                    store = Store.open(Path(tmp) / f"home-{kind}-{reader}-{draft}")
                    add_dataset(store, "jpegs", rows)
                    workers = None if reader == "threads" else 1
                    config = EmbedConfig(
                        batch_size=batch,
                        reader=reader,
                        workers=workers,
                        use_pixel_cache=False,
                        jpeg_draft=draft,
                    )
                    before = model_rate(ort, batch, reps)
                    rate = embed_dataset(store, ort, "jpegs", config).images_per_s
                    after = model_rate(ort, batch, reps)
                    alone = (before + after) / 2
                    print(
                        f"   pipeline, ORT fp32, reader {reader}, {'--jpeg-draft' if draft else 'exact decode'}: "
                        f"{rate:.2f} img/s = {100 * rate / alone:.0f}% of ORT model alone ({before:.2f} before, "
                        f"{after:.2f} after); {rate / seq:.2f}x the torch study loop ({load()})"
                    )


def bench_verdicts(home: Path, mnist: bool) -> None:
    """int8 vs fp32 verdicts of the demo models on the demo sites (and PneumoniaMNIST)."""
    from pedclip.data.ingest import ingest
    from pedclip.eval.bootstrap import BootstrapConfig
    from pedclip.eval.probe import ProbeConfig, probe_eval
    from pedclip.eval.prompts import resolve_prompt_set
    from pedclip.eval.zeroshot import ZeroShotConfig, zeroshot_eval

    store = Store.open(home)
    datasets = ["peds-a", "peds-b"]
    for site in datasets:  # a no-op on the demo's own store; fills a fresh one holding only the demo models
        ingest(store, home / "datasets" / "synth" / site / "manifest.csv", site, fmt="csv")
    if mnist:
        ingest(store, MNIST, "pneumoniamnist")
        datasets.append("pneumoniamnist")
    none = BootstrapConfig(n_resamples=0)
    # int8 against fp32 on the same films: PneumoniaMNIST's official splits share 8 identical images, which
    # the sound protocol refuses to score by default; the comparison is unaffected by that, so it is allowed
    zero_shot = ZeroShotConfig(bootstrap=none, allow_leakage=True)
    prompts = resolve_prompt_set("pneumonia", None)
    for spec in ("demo:clip", "demo:medclip"):
        fp32 = load_encoder(spec, home=home)
        int8 = load_encoder(spec, home=home, runtime="onnx", dtype="int8")
        for dataset in datasets:
            seconds = {}
            for label, encoder in (("fp32", fp32), ("int8", int8)):
                seconds[label] = timed(
                    lambda e=encoder, d=dataset: embed_dataset(store, e, d, EmbedConfig(workers=1))
                )
            zs = [
                zeroshot_eval(store, e, dataset, prompts, zero_shot).metrics["auroc"].value
                for e in (fp32, int8)
            ]
            pr = [
                probe_eval(store, e, dataset, dataset, ProbeConfig(bootstrap=none)).metrics["auroc"].value
                for e in (fp32, int8)
            ]
            cosine, recall = vector_agreement(store, fp32, int8, dataset)
            print(
                f"{spec} on {dataset}: int8 vs fp32 cosine min {cosine.min():.4f} mean {cosine.mean():.5f}; "
                f"zero-shot AUROC {zs[0]:.4f} -> {zs[1]:.4f} ({zs[1] - zs[0]:+.4f}); "
                f"probe AUROC {pr[0]:.4f} -> {pr[1]:.4f} ({pr[1] - pr[0]:+.4f}); kNN recall@10 {recall:.3f}; "
                f"embed s fp32-torch {seconds['fp32']:.1f}, int8-ORT {seconds['int8']:.1f} ({load()})"
            )


def bench_demo_embed(home: Path) -> None:
    """The demo step the runtime and the reader change: embedding both sites with each demo model, in a fresh
    store, with torch (the demo's choice: threads decoding between batches, then the old overlapping worker
    process), with ORT exporting its graphs first (a fresh demo), and with ORT graphs already exported."""
    from pedclip.data.ingest import ingest

    synth = home / "datasets" / "synth"
    runs = (
        ("torch", "threads"),
        ("torch, reader processes", "processes"),
        ("ORT, export included", "threads"),
        ("ORT, graphs on disk", "threads"),
    )
    for spec in ("demo:clip", "demo:medclip"):
        base = load_encoder(spec, home=home)
        with tempfile.TemporaryDirectory() as tmp:
            seconds = {}
            for label, reader in runs:
                store = Store.open(Path(tmp) / label.replace(" ", "_").replace(",", ""))
                for site in ("peds-a", "peds-b"):
                    ingest(store, synth / site / "manifest.csv", site, fmt="csv")
                start = time.perf_counter()
                encoder = base if label.startswith("torch") else onnx_encoder(base, Path(tmp) / "onnx")
                for site in ("peds-a", "peds-b"):
                    embed_dataset(store, encoder, site, EmbedConfig(batch_size=32, reader=reader))
                seconds[label] = time.perf_counter() - start
        line = ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items())
        print(f"demo embed step, {spec}, peds-a + peds-b: {line} ({load()})")


def vector_agreement(store: Store, fp32, int8, dataset: str) -> tuple[np.ndarray, float]:
    """Per-image cosine int8 vs fp32, and the mean overlap of each test image's 10 nearest train images."""
    from pedclip.eval.evaluation import labelled_vectors
    from pedclip.eval.knn import exact_neighbors

    frames = [labelled_vectors(store, e.fingerprint, e.spec, dataset, None) for e in (fp32, int8)]
    (fa, xa), (fb, xb) = frames
    order = (
        fb.reset_index(drop=True).reset_index().set_index("case_id").loc[fa["case_id"], "index"].to_numpy()
    )
    xb = xb[order]
    test = (fa["split"] == "test").to_numpy()
    train = (fa["split"] == "train").to_numpy()
    if not test.any() or not train.any():
        test = train = np.ones(len(fa), dtype=bool)
    na, _ = exact_neighbors(xa[train], xa[test], 10)
    nb, _ = exact_neighbors(xb[train], xb[test], 10)
    recall = np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(na, nb, strict=True)])
    return np.sum(xa * xb, axis=1), float(recall)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--text-reps", type=int, default=15)
    parser.add_argument("--jpegs", type=int, default=256)
    parser.add_argument(
        "--demo-home", type=Path, help="a `pedclip demo --quick` home (for the int8 verdicts)"
    )
    parser.add_argument(
        "--mnist", action="store_true", help="also PneumoniaMNIST (shared/data) in the verdicts"
    )
    parser.add_argument("--only", default="towers,text,pipeline,demo,verdicts")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    only = set(args.only.split(","))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; {load()}"
        " (the machine is shared: other processes skew absolute figures; ratios are interleaved)"
    )
    with tempfile.TemporaryDirectory() as root:
        if "towers" in only:
            bench_towers(Path(root), args.batch, args.reps)
        if "text" in only:
            bench_text(Path(root), args.text_reps)
        if "pipeline" in only:
            bench_pipeline(Path(root), args.jpegs, args.batch, args.reps)
    if "demo" in only and args.demo_home:
        bench_demo_embed(args.demo_home)
    if "verdicts" in only and args.demo_home:
        bench_verdicts(args.demo_home, args.mnist)


if __name__ == "__main__":
    main()
