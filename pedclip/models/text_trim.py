"""CLIP text features without the padding: run the causal text transformer only up to the batch's last EOT.

open_clip pads every prompt to the context length (77), but CLIP's text transformer is causal and pools
at the EOT token: a position's output depends only on the positions before it, so the positions after the
last pooled one never reach a vector (their gradients are exactly zero too). Cutting the tokens,
positional embedding and causal mask there gives the same vectors and gradients at a fraction of the cost.
Only for open_clip's `CLIP` with its own `encode_text`, a causal mask and argmax/eos pooling; every other
text tower (CustomTextCLIP, HF text towers, bidirectional, first/last pooling) runs the full forward.
"""

from __future__ import annotations

import torch

TRIM_POOL_TYPES = ("argmax", "eos")


def can_trim(model: torch.nn.Module) -> bool:
    """Whether `model.encode_text` is open_clip CLIP's causal, EOT-pooled text transformer."""
    from open_clip.model import CLIP

    from pedclip.models.text_only import TextOnlyCLIP

    own = isinstance(model, CLIP) and type(model).encode_text is CLIP.encode_text
    if not own and type(model) is not TextOnlyCLIP:  # TextOnlyCLIP runs CLIP.encode_text itself
        return False
    pool = getattr(model, "text_pool_type", None)
    if pool not in TRIM_POOL_TYPES or (pool == "eos" and getattr(model, "text_eos_id", None) is None):
        return False
    return is_causal_mask(getattr(model, "attn_mask", None))


def is_causal_mask(mask: torch.Tensor | None) -> bool:
    """An additive (n, n) mask with -inf exactly above the diagonal and 0 elsewhere."""
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        return False
    above = torch.ones(mask.shape, dtype=torch.bool, device=mask.device).triu(1)
    return bool(torch.equal(torch.isneginf(mask), above) and (mask[~above] == 0).all())


def pooled_positions(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Per row, the position open_clip's text_global_pool reads (the EOT)."""
    if model.text_pool_type == "argmax":  # EOT has the highest id in CLIP's vocabulary
        return tokens.argmax(dim=-1)
    return (tokens == model.text_eos_id).int().argmax(dim=-1)


def trimmed_tokens(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """tokens[:, :last pooled position + 1]: the only columns that reach a vector."""
    return tokens[:, : int(pooled_positions(model, tokens).max()) + 1]


def trimmed_encode_text(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip `CLIP.encode_text` (open_clip 3.3) on tokens[:, :last pooled position + 1]."""
    return encode_trimmed(model, trimmed_tokens(model, tokens))


def encode_trimmed(model: torch.nn.Module, text: torch.Tensor) -> torch.Tensor:
    """open_clip `CLIP.encode_text` on already trimmed tokens; the length is read from their shape, so an
    ONNX export of this keeps the sequence length dynamic."""
    from open_clip.transformer import text_global_pool

    length = text.shape[1]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(text).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = text_global_pool(x, text, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    if model.text_projection is not None:
        x = (
            model.text_projection(x)
            if isinstance(model.text_projection, torch.nn.Linear)
            else x @ model.text_projection
        )
    return x


class TextTower(torch.nn.Module):
    """open_clip text features (unnormalised, with gradients); trimmed where `can_trim` says it is exact."""

    def __init__(self, model: torch.nn.Module, trim: bool = True):
        super().__init__()
        self.model = model
        self.trim = trim and can_trim(model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.trim and tokens.ndim == 2 and tokens.shape[0] > 0:
            return trimmed_encode_text(self.model, tokens)
        return self.model.encode_text(tokens)
