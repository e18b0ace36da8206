"""The demo's two starting points: small, untrained models of the study's two architectures.

`demo:clip` is an open_clip ViT/32 + text transformer (config `pedclip-demo`) that the demo pretrains on
generic captions ("a frontal chest radiograph of a woman"), standing in for general-domain CLIP.
`demo:medclip` is MedCLIP's Swin + BERT (as `medclip:vit`) or ResNet + BERT (as `medclip:resnet`), with a
WordPiece vocabulary built from the corpus and the shipped prompt sets, that the demo pretrains on radiology
reports, standing in for MedCLIP. The demo uses the ResNet, narrowed to a quarter of its width with one
bottleneck a stage (~0.2 GFLOP a film): it learns the opacities from ~650 films in a few epochs. The tiny
Swin is cheaper (0.03 GFLOP a film) but, trained from scratch on so few films, gives every film nearly the
same embedding (validation AUROC stays ~0.5).
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
# MedCLIP's ResNet-50 with one bottleneck per stage and a quarter of its width (16 stem channels, not 64):
# ~1/16 of the full-width compute
RESNET_LAYERS = (1, 1, 1, 1)
RESNET_WIDTH = 16


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


def prompt_texts() -> list[str]:
    """Every prompt of the shipped prompt sets: in the vocabulary, so zero-shot prompts tokenize to whole words."""
    from pedclip.eval.prompts import list_prompt_sets

    return [text for prompt_set in list_prompt_sets() for text in prompt_set.texts]


def untrained_medclip(texts: Iterable[str], seed: int, vision: str = "swin") -> Encoder:
    """The demo MedCLIP before pretraining: tiny Swin (224 px, patch 16) or ResNet with one bottleneck per
    stage (`vision`), + 3-layer BERT on the vocabulary of `texts` and the prompt sets."""
    from transformers import BertConfig, BertTokenizerFast, SwinConfig

    from pedclip.models.medclip import MedCLIPTokenize, stable_config, wrap_medclip
    from pedclip.models.medclip_arch import MedCLIP, Text, VisionResNet, VisionViT
    from pedclip.models.registry import LoadOptions

    vocab = corpus_vocab([*texts, *prompt_texts()])
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.txt").write_text("\n".join(vocab) + "\n")
        # from_pretrained, not BertTokenizerFast(vocab_file=...): transformers 5 ignores that argument there
        # and every word becomes [UNK]
        tokenizer = BertTokenizerFast.from_pretrained(tmp, do_lower_case=True)
    bert = BertConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=80,
    )
    torch.manual_seed(seed)
    if vision == "resnet":
        tower = VisionResNet(RESNET_LAYERS, PROJECTION_DIM, RESNET_WIDTH)
        # the arch medclip:resnet reads back from the checkpoint keys
        vision_arch = {
            "resnet_layers": list(RESNET_LAYERS),
            "projection_dim": PROJECTION_DIM,
            "width": RESNET_WIDTH,
        }
    else:
        swin = SwinConfig(
            image_size=224, patch_size=16, embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=7
        )
        tower, vision_arch = VisionViT(swin, PROJECTION_DIM), stable_config(swin)
    model = MedCLIP(tower, Text(bert, PROJECTION_DIM)).eval()
    arch = {
        "medclip": "vit" if vision == "swin" else "resnet",
        "vision": vision_arch,
        "text": stable_config(bert),
    }
    return wrap_medclip(
        "demo:medclip-untrained",
        model,
        MedCLIPTokenize(tokenizer),
        arch,
        f"untrained:seed={seed}",
        LoadOptions(),
    )
