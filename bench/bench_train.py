"""Fine-tuning speed on CPU: one real epoch of `finetune` and raw training-step throughput of model sizes.

Part 1 runs `pedclip.train.finetune` for one epoch (train + validation, no re-embedding) of
`openclip:pedclip-tiny` on N synthetic 64 px images, fp32 and bf16 autocast. Part 2 times full-batch
contrastive steps (forward + backward + Adam) of candidate demo architectures at 64 px: open_clip ViTs
of a few widths/depths and a Swin + BERT pair built like MedCLIP. Short by design:

    python bench/bench_train.py [--images 600] [--val 100] [--batch 64] [--steps 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pedclip.models.base import Encoder, PreprocessConfig  # noqa: E402
from pedclip.store import Store  # noqa: E402
from pedclip.store.cases import CaseRow, replace_cases, upsert_dataset  # noqa: E402
from pedclip.train.config import FinetuneConfig  # noqa: E402
from pedclip.train.finetune import finetune  # noqa: E402
from pedclip.train.step import StepSettings, accumulate_gradients, optimizer_step, set_mode  # noqa: E402

CLIP_CANDIDATES = {  # name -> open_clip model config (64 px)
    "clip-tiny (w64 L2 p16, text w64 L2)": {"embed_dim": 32, "quick_gelu": True,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}},
    "clip-small (w128 L4 p8, text w128 L4 ctx32)": {"embed_dim": 128, "quick_gelu": True,
        "vision_cfg": {"image_size": 64, "layers": 4, "width": 128, "head_width": 32, "patch_size": 8},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 4}},
    "clip-base-ish (w256 L6 p8, text w256 L6 ctx32)": {"embed_dim": 256, "quick_gelu": True,
        "vision_cfg": {"image_size": 64, "layers": 6, "width": 256, "head_width": 64, "patch_size": 8},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 256, "heads": 4, "layers": 6}},
}  # fmt: skip


def write_dataset(store: Store, folder: Path, n_train: int, n_val: int) -> str:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    rows = []
    for i in range(n_train + n_val):
        label = i % 2
        pixels = rng.normal(80, 25, (64, 64)) + (
            label * 100 * np.exp(-((np.mgrid[:64, :64] - 32) ** 2).sum(0) / 200)
        )
        path = folder / f"{i:05d}.png"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L").save(path)
        rows.append(CaseRow(case_id=path.name, path=str(path), width=64, height=64, mode="L", label=label,
                            image_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                            split="train" if i < n_train else "val"))  # fmt: skip
    upsert_dataset(store, "bench", "synth", str(folder), ["normal", "pneumonia"])
    replace_cases(store, "bench", rows)
    return "bench"


def real_epoch(args) -> Iterator[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "home")
        dataset = write_dataset(store, Path(tmp) / "images", args.images, args.val)
        for precision in ("fp32", "bf16"):
            config = FinetuneConfig(model="openclip:pedclip-tiny", dataset=dataset, epochs=1, batch_size=args.study_batch,
                                    device="cpu", precision=precision, embed=False)  # fmt: skip
            result = finetune(store, config)
            yield {"part": "finetune epoch", "model": "openclip:pedclip-tiny", "precision": precision,
                        "images": args.images, "val": args.val, "batch": args.study_batch,
                        "load_s (decode + pixel cache)": round(result.seconds["load"], 2),
                        "epoch_s (train + val)": round(result.history[0]["seconds"], 2)}  # fmt: skip


def clip_encoder(name: str, cfg: dict) -> Encoder:
    import open_clip

    from pedclip.models.openclip import ImageTower, TextTower

    with tempfile.TemporaryDirectory() as tmp:
        slug = "bench-" + hashlib.sha256(name.encode()).hexdigest()[:8]
        (Path(tmp) / f"{slug}.json").write_text(json.dumps(cfg))
        open_clip.add_model_config(tmp)
        model = open_clip.create_model(slug, pretrained=None)
    tokenizer = open_clip.get_tokenizer(slug)
    return Encoder(spec=name, family="openclip", image_tower=ImageTower(model), text_tower=TextTower(model),
                   tokenize=lambda texts: tokenizer(list(texts)), logit_scale_param=model.logit_scale,
                   preprocess_config=PreprocessConfig(size=64), weights_id="bench", modules={"model": model})  # fmt: skip


def swin_bert_encoder() -> Encoder:
    from transformers import BertConfig, SwinConfig

    from pedclip.models.medclip_arch import MedCLIP, Text, VisionViT

    swin = SwinConfig(image_size=64, patch_size=4, embed_dim=32, depths=[1, 1, 2], num_heads=[1, 2, 4],
                      window_size=4)  # fmt: skip
    bert = BertConfig(vocab_size=2000, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=256, max_position_embeddings=80)  # fmt: skip
    model = MedCLIP(VisionViT(swin, 128), Text(bert, 128))

    def tokenize(texts):
        ids = [[101, *(hash(w) % 1900 + 100 for w in t.split())][:32] + [102] for t in texts]
        width = max(len(i) for i in ids)
        return {"input_ids": torch.tensor([i + [0] * (width - len(i)) for i in ids]),
                "attention_mask": torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])}  # fmt: skip

    preprocess = PreprocessConfig(
        kind="pad_square", size=64, mean=(0.586,), std=(0.2795,), channels=1, grayscale=True
    )
    return Encoder(spec="swin-bert-small", family="medclip", image_tower=model.vision_model,
                   text_tower=model.text_model, tokenize=tokenize, logit_scale_param=model.logit_scale,
                   preprocess_config=preprocess, weights_id="bench", modules={"model": model})  # fmt: skip


def step_throughput(encoder: Encoder, args, precision: str, texts: list[str]) -> float:
    pixels = np.random.default_rng(0).integers(0, 255, (args.batch, 64, 64), dtype=np.uint8)
    labels = np.arange(args.batch) % 2
    batch_texts = [texts[i % len(texts)] for i in range(args.batch)]
    params = [p for p in encoder.modules["model"].parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-5)
    settings = StepSettings(loss="clip", device="cpu", precision=precision)
    set_mode(encoder, True)
    times = []
    for i in range(args.steps + 1):
        start = time.perf_counter()
        accumulate_gradients(encoder, pixels, batch_texts, labels, settings)
        optimizer_step(optimizer, params, encoder, 0.0)
        if i:
            times.append(time.perf_counter() - start)
    return args.batch / statistics.median(times)


def raw_steps(args) -> Iterator[dict]:
    prompts = ["a photo of normal lungs.", "a photo of pneumonia lungs."]
    reports = [
        f"finding {i}: opacity in the {side} lower lobe, no effusion."
        for i, side in enumerate(["left", "right"] * 32)
    ]
    candidates = [(n, lambda n=n, c=c: clip_encoder(n, c)) for n, c in CLIP_CANDIDATES.items()]
    candidates.append(("swin-bert-small (Swin e32 [1,1,2] w4, BERT h128 L2)", swin_bert_encoder))
    candidates = [(n, b) for n, b in candidates if args.only in n]
    for name, build in candidates:
        encoder = build()
        n_params = sum(p.numel() for p in encoder.modules["model"].parameters())
        for precision in args.precisions:
            for text_kind, texts in (("prompts", prompts), ("reports", reports)):
                ips = step_throughput(encoder, args, precision, texts)
                yield {"part": "train steps", "model": name, "params_M": round(n_params / 1e6, 2),
                             "precision": precision, "text": text_kind, "batch": args.batch,
                             "train_images_per_s": round(ips, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--val", type=int, default=100)
    parser.add_argument("--study-batch", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--skip-epoch", action="store_true")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], help="for the step timings")
    parser.add_argument("--only", default="", help="time only candidates whose name contains this")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(json.dumps({"torch_threads": torch.get_num_threads()}), flush=True)
    for row in () if args.skip_epoch else real_epoch(args):
        print(json.dumps(row), flush=True)
    for row in raw_steps(args):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
