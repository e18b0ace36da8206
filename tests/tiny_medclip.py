"""Tiny MedCLIP artefacts written in the released format (audit section 3), built independently of the loader.

Shared by tests/models (loader checks) and the tests that need a padding-dependent text encoder.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "chest", "x", "-", "ray", "pneumonia", "normal",
         "lung", "##s", "right", "left", "lower", "lobe", "no", "of", "the", "opacity", "consolidation"]  # fmt: skip
PROJ = 16
# transformers >= 5 Swin names -> the names transformers 4.24 wrote (the released checkpoint's)
RELEASED_SWIN = [("attention.q_proj.", "attention.self.query."), ("attention.k_proj.", "attention.self.key."),
                 ("attention.v_proj.", "attention.self.value."),
                 ("attention.relative_position_bias.relative_position_bias_table",
                  "attention.self.relative_position_bias_table"),
                 ("attention.relative_position_bias.relative_position_index", "attention.self.relative_position_index"),
                 ("attention.o_proj.", "attention.output.dense."), ("mlp.fc1.", "intermediate.dense."),
                 ("mlp.fc2.", "output.dense.")]  # fmt: skip


@dataclass
class TinyMedCLIP:
    """Reference modules (seeded) and the released-layout state dict made from them."""

    variant: str
    folder: Path  # pytorch_model.bin + vision/config.json + text/{config.json, vocab.txt}
    state: dict
    vision: torch.nn.Module  # SwinModel or torchvision ResNet with fc = projection
    bert: torch.nn.Module
    vision_proj: torch.Tensor | None
    text_proj: torch.Tensor
    logit_scale: float


def released_swin_key(key: str) -> str:
    match = re.match(r"^(encoder\.layers\.\d+\.blocks\.\d+\.)(.+)$", key)
    if not match:
        return key
    prefix, rest = match.groups()
    for new, old in RELEASED_SWIN:
        if rest.startswith(new):
            return prefix + old + rest[len(new) :]
    return key


def build_tiny(variant: str, folder: Path) -> TinyMedCLIP:
    from transformers import BertConfig, BertModel, SwinConfig, SwinModel

    torch.manual_seed(7 if variant == "vit" else 8)
    bert_config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                             intermediate_size=32, max_position_embeddings=80)  # fmt: skip
    bert = BertModel(bert_config).eval()
    text_proj = torch.randn(PROJ, 16) * 0.2
    state = {f"text_model.model.{k}": v for k, v in bert.state_dict().items()}
    state["text_model.model.embeddings.position_ids"] = torch.arange(80).unsqueeze(0)  # persistent in tf4.24
    state["text_model.projection_head.weight"] = text_proj
    state["logit_scale"] = torch.tensor(math.log(1 / 0.07))
    if variant == "vit":
        swin_config = SwinConfig(embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=7, patch_size=4)
        vision = SwinModel(swin_config).eval()
        vision_proj = torch.randn(PROJ, swin_config.hidden_size) * 0.2
        state |= {f"vision_model.model.{released_swin_key(k)}": v for k, v in vision.state_dict().items()}
        for name, buffer in vision.named_buffers():
            if name.endswith("relative_position_index"):  # persistent in tf4.24, so the release has it
                state[f"vision_model.model.{released_swin_key(name)}"] = buffer.clone()
        state["vision_model.projection_head.weight"] = vision_proj
    else:
        from torchvision.models.resnet import Bottleneck, ResNet

        vision = ResNet(Bottleneck, [1, 1, 1, 1])
        vision.fc = torch.nn.Linear(2048, PROJ, bias=False)
        vision.eval()
        vision_proj = None
        state |= {f"vision_model.model.{k}": v for k, v in vision.state_dict().items()}
    folder.mkdir(parents=True)
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "text").mkdir()
    bert_config.to_json_file(str(folder / "text" / "config.json"))
    (folder / "text" / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    if variant == "vit":
        (folder / "vision").mkdir()
        swin_config.to_json_file(str(folder / "vision" / "config.json"))
    return TinyMedCLIP(variant, folder, state, vision, bert, vision_proj, text_proj, math.log(1 / 0.07))
