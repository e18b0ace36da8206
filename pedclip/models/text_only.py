"""Text towers built alone: encoding prompts never builds, loads or allocates an image tower.

open_clip: `TextOnlyCLIP` holds exactly the text parts open_clip's `CLIP.__init__` copies out of its text
tower (same attribute and state-dict names) and borrows `CLIP.encode_text` itself, so its vectors are the
full model's; only the non-`visual.` tensors are read from the weights file. Models whose text tower is
not CLIP's own (CustomTextCLIP, HF text towers, CoCa) are built whole. MedCLIP: BERT + projection, with an
empty vision module (medclip.py).
"""

from __future__ import annotations

from pathlib import Path

import torch

from pedclip.errors import PedclipError

TOWERS = ("both", "text")


def check_towers(towers: str) -> str:
    if towers not in TOWERS:
        raise PedclipError(f"towers must be one of {', '.join(TOWERS)}; got {towers!r}")
    return towers


def builds_text_alone(model_cfg: dict) -> bool:
    """Whether `TextOnlyCLIP` reproduces this open_clip config's `encode_text` (plain CLIP text towers)."""
    text = model_cfg.get("text_cfg", {})
    plain = (
        not model_cfg.get("custom_text")
        and not text.get("hf_model_name")
        and "multimodal_cfg" not in model_cfg
    )
    return plain and not text.get("embed_cls")


class TextOnlyCLIP(torch.nn.Module):
    """open_clip CLIP without `visual`: the same text modules, buffers, logit scale and encode_text."""

    def __init__(self, model_cfg: dict):
        super().__init__()
        import numpy as np
        from open_clip.model import CLIP, _build_text_tower

        text = _build_text_tower(
            model_cfg["embed_dim"], model_cfg["text_cfg"], model_cfg.get("quick_gelu", False)
        )
        self.transformer = text.transformer
        self.context_length = text.context_length
        self.vocab_size = text.vocab_size
        self.token_embedding = text.token_embedding
        self.positional_embedding = text.positional_embedding
        self.ln_final = text.ln_final
        self.text_projection = text.text_projection
        self.text_pool_type = text.pool_type
        self.text_eos_id = text.eos_id
        self.register_buffer("attn_mask", text.attn_mask, persistent=False)
        self.logit_scale = torch.nn.Parameter(torch.ones([]) * np.log(1 / 0.07))
        bias = model_cfg.get("init_logit_bias")
        self.logit_bias = torch.nn.Parameter(torch.ones([]) * bias) if bias is not None else None
        self._encode_text = CLIP.encode_text

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return self._encode_text(self, text, normalize=normalize)


def load_text_state(model: torch.nn.Module, path: Path) -> None:
    """Strictly load the non-`visual.` tensors of an open_clip weights file (safetensors read selectively)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            state = {k: fh.get_tensor(k) for k in fh.keys() if not k.startswith("visual.")}  # noqa: SIM118
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        state = {
            k.removeprefix("module."): v
            for k, v in state.items()
            if not k.removeprefix("module.").startswith("visual.")
        }
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise PedclipError(
            f"weights file {str(path)!r} does not fit this open_clip text tower: missing "
            f"{list(result.missing_keys)[:5]}, unexpected {list(result.unexpected_keys)[:5]}"
        )
