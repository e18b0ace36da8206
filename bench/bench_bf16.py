"""bf16 weights vs fp32: image-embedding cosine and the change in zero-shot AUROC on a demo home's datasets.

Loads the model twice (`dtype="fp32"` and `dtype="bf16"`: weights cast, as the pipeline does), reads
each dataset's preprocessed pixels from the home's pixel cache (a miss is decoded in memory, never
cached), encodes them with both encoders in memory, and scores them with the shipped `pneumonia` prompt
set exactly as `pedclip zeroshot` (sound protocol) does, each encoder with its own prompt
vectors and logit scale. Nothing is written into the home: the store is only read (no migration). AUROC
is given on the test split (the sound protocol's) and on all splits pooled. Needs a `pedclip demo` home:

    python bench/bench_bf16.py --home DIR [--model demo:clip] [--datasets peds-a peds-b]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pedclip.config import Paths  # noqa: E402
from pedclip.embed.pixels import PixelCache, cached_geometry  # noqa: E402
from pedclip.eval.metrics import auroc  # noqa: E402
from pedclip.eval.prompts import load_prompt_set  # noqa: E402
from pedclip.eval.protocols import SOUND, auc_scores  # noqa: E402
from pedclip.eval.zeroshot import classifier_for, prompt_vectors  # noqa: E402
from pedclip.models import load_encoder  # noqa: E402
from pedclip.store import Store  # noqa: E402
from pedclip.store.cases import cases_frame  # noqa: E402

DTYPES = ("fp32", "bf16")


def has_amx_bf16() -> bool:
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def read_only_store(home: Path) -> Store:
    """The store at `home` without `Store.open`, which migrates (a write): this script only reads."""
    store = Store(Paths.at(home))
    if not store.exists:
        sys.exit(f"no pedclip store at {store.paths.db}; run `pedclip --home DIR demo` first")
    return store


def cached_pixels(pixel_root: Path, config, cases: pd.DataFrame) -> list[np.ndarray]:
    """`geometry` arrays for the cases, from the pixel cache; misses decoded in memory and not cached."""
    cache = PixelCache(pixel_root, config)
    out = []
    for sha, path, member in zip(cases["image_sha256"], cases["path"], cases["member"], strict=True):
        array = cache.get(sha)
        if array is None:
            member = None if member is None or (isinstance(member, float) and np.isnan(member)) else member
            array, _ = cached_geometry(None, config, sha, path, member)
        out.append(array)
    return out


def encode(encoder, arrays: list[np.ndarray], batch: int) -> np.ndarray:
    return np.concatenate([encoder.encode_images(encoder.normalize(arrays[i : i + batch]))
                           for i in range(0, len(arrays), batch)])  # fmt: skip


def p_positive(encoder, images: np.ndarray, prompt_set) -> np.ndarray:
    """P(pneumonia) as the sound protocol's zero-shot computes it (its own prompt vectors and scale)."""
    prompts = prompt_vectors(prompt_set, encoder.encode_texts)
    scores = classifier_for(prompts, SOUND, float(encoder.logit_scale)).positive_score(images)
    return auc_scores(SOUND, prompt_set.mode, scores)[0]


def labelled(store: Store, dataset: str) -> pd.DataFrame:
    frame = cases_frame(store, dataset)
    frame = frame[frame["label"].notna()].reset_index(drop=True)
    if "member" not in frame:
        frame["member"] = None
    return frame


def auc_text(y: np.ndarray, scores: dict[str, np.ndarray]) -> str:
    a = {d: auroc(y, scores[d]).value for d in DTYPES}
    if None in a.values():
        return "AUROC undefined (one class)"
    return f"AUROC fp32 {a['fp32']:.4f} bf16 {a['bf16']:.4f} change {a['bf16'] - a['fp32']:+.4f}"


def bench_dataset(store: Store, encoders: dict, dataset: str, prompt_set, batch: int) -> None:
    cases = labelled(store, dataset)
    if cases.empty:
        print(f"{dataset}: no labelled cases in this home, skipped")
        return
    arrays = cached_pixels(store.paths.pixels, encoders["fp32"].preprocess_config, cases)
    vectors, scores, seconds = {}, {}, {}
    for dtype in DTYPES:
        encode(encoders[dtype], arrays[:2], batch)  # warm-up: the first call pays one-off costs
        start = time.perf_counter()
        vectors[dtype] = encode(encoders[dtype], arrays, batch)
        scores[dtype] = p_positive(encoders[dtype], vectors[dtype], prompt_set)
        seconds[dtype] = time.perf_counter() - start
    cosine = np.sum(vectors["fp32"] * vectors["bf16"], axis=1)
    y = cases["label"].to_numpy(dtype=np.int64)
    test = (cases["split"] == "test").to_numpy()
    print(f"{dataset}: n {len(cases)} (test {int(test.sum())}) | image cosine bf16 vs fp32 mean "
          f"{cosine.mean():.5f} min {cosine.min():.5f} | seconds (encode + score) "
          f"fp32 {seconds['fp32']:.1f} bf16 {seconds['bf16']:.1f}")  # fmt: skip
    print(f"  test: {auc_text(y[test], {d: s[test] for d, s in scores.items()})}")
    print(f"  all splits: {auc_text(y, scores)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None, help="a home made by `pedclip demo`")
    parser.add_argument("--model", default="demo:clip", help="e.g. demo:clip, demo:medclip")
    parser.add_argument("--datasets", nargs="+", default=["peds-a", "peds-b"])
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    if args.home is None:
        print("run `pedclip --home DIR demo` first and pass --home DIR", file=sys.stderr)
        return 2
    store = read_only_store(args.home)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoders = {d: load_encoder(args.model, home=args.home, dtype=d) for d in DTYPES}
    amx = has_amx_bf16()
    print(f"# {args.model} at {args.home}, prompts pneumonia (sound protocol), torch threads "
          f"{torch.get_num_threads()}, cpus {os.cpu_count()}, AMX-BF16 {'yes' if amx else 'no'}"
          + ("" if amx else " (bf16 is emulated here: its seconds say nothing about AMX CPUs)"))  # fmt: skip
    prompt_set = load_prompt_set("pneumonia")
    for dataset in args.datasets:
        bench_dataset(store, encoders, dataset, prompt_set, args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
