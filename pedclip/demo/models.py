"""The demo's two starting points: small, untrained models of the study's two architectures.

`demo:clip` is an open_clip ViT/32 + text transformer (config `pedclip-demo`) that the demo pretrains on
generic captions ("a frontal chest radiograph of a woman"), standing in for general-domain CLIP.
`demo:medclip` is MedCLIP's Swin + BERT on the same code path as `medclip:vit`, with a WordPiece
vocabulary built from the corpus, that the demo pretrains on radiology reports, standing in for MedCLIP.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch

from pedclip.models import load_encoder
from pedclip.models.base import Encoder

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
DEMO_CLIP_CONFIG = "pedclip-demo"
PROJECTION_DIM = 64


def corpus_vocab(texts: Iterable[str]) -> list[str]:
    """A WordPiece vocabulary: specials, every corpus word whole, and single characters (plain and `##`)
    so that any other word still tokenizes."""
    words = sorted({w for text in texts for w in WORD.findall(text.lower())})
    chars = sorted({c for w in words for c in w} | set("abcdefghijklmnopqrstuvwxyz0123456789"))
    pieces = [f"##{c}" for c in chars if c.isalnum()]
    return list(dict.fromkeys(SPECIALS + chars + words + pieces))


def untrained_clip(seed: int) -> Encoder:
    """The demo CLIP before pretraining (seeded random weights)."""
    return load_encoder(f"openclip:{DEMO_CLIP_CONFIG}", seed=seed)


def untrained_medclip(texts: Iterable[str], seed: int) -> Encoder:
    """The demo MedCLIP before pretraining: tiny Swin (224 px, patch 16) + 3-layer BERT on the corpus vocabulary."""
    from transformers import BertConfig, BertTokenizerFast, SwinConfig

    from pedclip.models.medclip import MedCLIPTokenize, stable_config, wrap_medclip
    from pedclip.models.medclip_arch import MedCLIP, Text, VisionViT
    from pedclip.models.registry import LoadOptions

    vocab = corpus_vocab(texts)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.txt").write_text("\n".join(vocab) + "\n")
        # from_pretrained, not BertTokenizerFast(vocab_file=...): transformers 5 ignores that argument there
        # and every word becomes [UNK]
        tokenizer = BertTokenizerFast.from_pretrained(tmp, do_lower_case=True)
    swin = SwinConfig(
        image_size=224, patch_size=16, embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=7
    )
    bert = BertConfig(vocab_size=len(vocab), hidden_size=64, num_hidden_layers=3, num_attention_heads=2,
                      intermediate_size=128, max_position_embeddings=80)  # fmt: skip
    torch.manual_seed(seed)
    model = MedCLIP(VisionViT(swin, PROJECTION_DIM), Text(bert, PROJECTION_DIM)).eval()
    arch = {"medclip": "vit", "vision": stable_config(swin), "text": stable_config(bert)}
    return wrap_medclip("demo:medclip-untrained", model, MedCLIPTokenize(tokenizer), arch,
                        f"untrained:seed={seed}", LoadOptions())  # fmt: skip
