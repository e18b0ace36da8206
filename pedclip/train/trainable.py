"""Which parameters a fine-tuning run updates: all, the last N blocks of each tower, or only the projections.

Blocks are found from the architecture, not from names per family: every outermost `nn.ModuleList` is a
stack of blocks (open_clip's `resblocks`, BERT's `encoder.layer`, Swin's `encoder.layers`, whose stages
are flattened into their inner blocks). Parameters outside every stack are stems (embeddings, patch
convolutions: always frozen unless `all`) or heads (final norms, poolers, projections, logit scale).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import torch
from torch import nn

from pedclip.models.base import Encoder

HEAD = re.compile(
    r"(^|\.)(proj|text_projection|projection_head|projection|ln_post|ln_final|layernorm|pooler|head|"
    r"fc|logit_scale|logit_bias)(\.|$)"
)
# Input stems: a Swin patch embedding's conv is called "projection", so stems are excluded before heads.
STEM = re.compile(
    r"(^|\.)(embeddings|patch_embed|token_embedding|positional_embedding|class_embedding|conv1|ln_pre)(\.|$)"
)
PROJECTION = re.compile(
    r"(^|\.)(proj|text_projection|projection_head|projection|fc|logit_scale|logit_bias)(\.|$)"
)


def named_parameters(encoder: Encoder) -> list[tuple[str, nn.Parameter]]:
    """Every distinct parameter of the encoder (both towers and the logit scale), named once."""
    roots = encoder.modules or {"image_tower": encoder.image_tower, "text_tower": encoder.text_tower}
    seen: set[int] = set()
    out: list[tuple[str, nn.Parameter]] = []
    for root_name, root in roots.items():
        for name, param in root.named_parameters(prefix=root_name):
            if id(param) not in seen:
                seen.add(id(param))
                out.append((name, param))
    if id(encoder.logit_scale_param) not in seen:
        out.append(("logit_scale", encoder.logit_scale_param))
    return out


def _stacks(roots: dict[str, nn.Module]) -> list[list[list[str]]]:
    """Per stack, its blocks in order; each block is a list of module-name prefixes (most specific first)."""
    stacks: list[list[list[str]]] = []
    taken: list[str] = []
    for root_name, root in roots.items():
        for name, module in root.named_modules(prefix=root_name):
            if not isinstance(module, nn.ModuleList) or any(name.startswith(t + ".") for t in taken):
                continue
            taken.append(name)
            stacks.append(list(_blocks_of(name, module)))
    return [s for s in stacks if s]


def _blocks_of(name: str, stack: nn.ModuleList) -> Iterator[list[str]]:
    """Blocks of one stack; a stage holding its own block list (Swin) yields those inner blocks, and the
    stage's other parameters (its downsampling) go with its last inner block."""
    for index, child in enumerate(stack):
        child_name = f"{name}.{index}"
        inner = [(n, m) for n, m in child.named_modules(prefix=child_name) if isinstance(m, nn.ModuleList)]
        if not inner:
            yield [child_name]
            continue
        blocks = [f"{n}.{j}" for n, m in inner for j in range(len(m))]
        for block in blocks[:-1]:
            yield [block]
        yield [blocks[-1], child_name]


def _block_position(name: str, stacks: list[list[list[str]]]) -> tuple[int, int] | None:
    """(blocks after this one in its stack, stack index) for a parameter inside a stack, else None."""
    best: tuple[int, int, int] | None = None  # (prefix length, blocks after, stack)
    for s, blocks in enumerate(stacks):
        for b, prefixes in enumerate(blocks):
            for prefix in prefixes:
                if name.startswith(prefix + ".") and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), len(blocks) - 1 - b, s)
    return None if best is None else (best[1], best[2])


def is_trainable(name: str, mode: str, last_n: int | None, stacks: list[list[list[str]]]) -> bool:
    """Whether the parameter `name` is updated under `mode` (all | projection | last-N)."""
    if mode == "all":
        return True
    position = _block_position(name, stacks)
    if position is None and STEM.search(name):
        return False
    if mode == "projection":
        return position is None and bool(PROJECTION.search(name))
    if position is not None:
        return position[0] < (last_n or 0)
    return bool(HEAD.search(name))


def select_trainable(
    encoder: Encoder, mode: str, last_n: int | None = None
) -> list[tuple[str, nn.Parameter]]:
    """Set `requires_grad` on every parameter for `mode`; returns the trainable (name, parameter) pairs."""
    roots = encoder.modules or {"image_tower": encoder.image_tower, "text_tower": encoder.text_tower}
    stacks = _stacks(roots) if mode != "all" else []
    chosen = []
    for name, param in named_parameters(encoder):
        train = is_trainable(name, mode, last_n, stacks) or param is encoder.logit_scale_param
        param.requires_grad_(train)
        if train:
            chosen.append((name, param))
    return chosen


def count_parameters(params: list[tuple[str, nn.Parameter]]) -> int:
    return int(sum(p.numel() for _, p in params))


def state_tensors(encoder: Encoder) -> list[torch.Tensor]:
    """Every distinct parameter and buffer of the encoder: what a best-so-far snapshot must hold."""
    roots = encoder.modules or {"image_tower": encoder.image_tower, "text_tower": encoder.text_tower}
    seen: set[int] = set()
    out: list[torch.Tensor] = []
    for root in roots.values():
        for tensor in [*root.parameters(), *root.buffers()]:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                out.append(tensor)
    if id(encoder.logit_scale_param) not in seen:
        out.append(encoder.logit_scale_param)
    return out


def study_fp16_parameters(encoder: Encoder) -> list[nn.Parameter]:
    """The parameters OpenAI CLIP's `convert_weights` holds in fp16 (clip:model.py:375-396): weights and
    biases of every Linear and Conv, attention input projections, and the `proj`/`text_projection` matrices.
    LayerNorms, embeddings and the logit scale stay fp32, as there."""
    roots = encoder.modules or {"image_tower": encoder.image_tower, "text_tower": encoder.text_tower}
    seen: set[int] = set()
    out: list[nn.Parameter] = []

    def take(param: nn.Parameter | None) -> None:
        if isinstance(param, nn.Parameter) and id(param) not in seen:
            seen.add(id(param))
            out.append(param)

    for root in roots.values():
        for module in root.modules():
            if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
                take(module.weight)
                take(module.bias)
            elif isinstance(module, nn.MultiheadAttention):
                for attr in (
                    "in_proj_weight",
                    "in_proj_bias",
                    "q_proj_weight",
                    "k_proj_weight",
                    "v_proj_weight",
                ):
                    take(getattr(module, attr, None))
            for attr in ("proj", "text_projection"):
                take(getattr(module, attr, None))
    return out


@torch.no_grad()
def round_to_fp16(params: list[nn.Parameter]) -> None:
    """Hold fp16 values in the fp32 tensors: what casting the weights back to fp16 after a step keeps."""
    for param in params:
        param.copy_(param.half().float())
