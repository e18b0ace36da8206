"""MedCLIP's released state-dict layout (transformers 4.24, audit section 3) <-> the installed transformers.

The released `pytorch_model.bin` names Swin blocks `attention.self.query`, `attention.output.dense`,
`intermediate.dense`, `output.dense` and stores two buffers current transformers no longer persist:
`text_model.model.embeddings.position_ids` and Swin's `relative_position_index`. Renames are applied
only when the installed model uses the new name, so older transformers load the file unchanged.
"""

from __future__ import annotations

import re

import torch

from pedclip.errors import PedclipError

SWIN_BLOCK = re.compile(r"^(vision_model\.model\.encoder\.layers\.\d+\.blocks\.\d+\.)(.+)$")
# released suffix -> transformers >= 5 suffix (order matters: attention.output.dense before output.dense)
SWIN_RENAMES = (
    ("attention.self.query.", "attention.q_proj."),
    ("attention.self.key.", "attention.k_proj."),
    ("attention.self.value.", "attention.v_proj."),
    (
        "attention.self.relative_position_bias_table",
        "attention.relative_position_bias.relative_position_bias_table",
    ),
    ("attention.self.relative_position_index", "attention.relative_position_bias.relative_position_index"),
    ("attention.output.dense.", "attention.o_proj."),
    ("intermediate.dense.", "mlp.fc1."),
    ("output.dense.", "mlp.fc2."),
)
POSITION_IDS = "text_model.model.embeddings.position_ids"
RELATIVE_INDEX = "relative_position_index"


def _rename(key: str, pairs: tuple[tuple[str, str], ...]) -> str:
    match = SWIN_BLOCK.match(key)
    if not match:
        return key
    prefix, rest = match.groups()
    for old, new in pairs:
        if rest.startswith(old):
            return prefix + new + rest[len(old) :]
    return key


def to_installed_layout(released: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Rename released keys to the installed model's names; check then drop buffers it does not persist."""
    targets = model.state_dict()
    buffers = dict(model.named_buffers())
    out: dict[str, torch.Tensor] = {}
    for key, value in released.items():
        new = key if key in targets else _rename(key, SWIN_RENAMES)
        if new in targets:
            out[new] = value
        elif new in buffers or key == POSITION_IDS:  # persisted in tf4.24, not any more: must still agree
            _check_buffer(key, value, buffers.get(new))
        else:
            out[key] = value  # left for load_state_dict to report as unexpected
    return out


def _check_buffer(key: str, value: torch.Tensor, expected: torch.Tensor | None) -> None:
    if key == POSITION_IDS:  # an arange; a checkpoint may hold it shorter or longer than the config
        if not torch.equal(value.flatten().long(), torch.arange(value.numel())):
            raise PedclipError(f"checkpoint buffer {key} is not 0..n-1; the file is not a MedCLIP checkpoint")
        return
    if expected is not None and not torch.equal(value.to(expected.dtype).cpu(), expected.cpu()):
        raise PedclipError(
            f"checkpoint buffer {key} differs from the architecture's; the configs do not match the file"
        )


def to_released_layout(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The installed model's weights under the released names, with the two legacy buffers put back."""
    reverse = tuple((new, old) for old, new in SWIN_RENAMES)
    state = {_rename(k, reverse): v for k, v in model.state_dict().items()}
    for name, buffer in model.named_buffers():
        if name.endswith(RELATIVE_INDEX):
            state[_rename(name, reverse)] = buffer
    text = getattr(model, "text_model", None)
    if text is not None and POSITION_IDS not in state:
        positions = text.model.config.max_position_embeddings
        state[POSITION_IDS] = torch.arange(positions).unsqueeze(0)
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def load_released(model: torch.nn.Module, released: dict[str, torch.Tensor], source: str) -> None:
    """Strict load of a released-layout state dict: nothing missing, nothing unexpected."""
    result = model.load_state_dict(to_installed_layout(released, model), strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        raise PedclipError(
            f"weights {source!r} do not fit this MedCLIP architecture: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''};"
            " pass the matching vision/ and text/ configs in the --weights folder"
        )
