"""One optimisation step and one validation pass of contrastive fine-tuning.

Gradient accumulation is exact (the "gradient cache" method): with `micro_batch` smaller than the batch,
features are first computed without gradients in chunks, the loss over the WHOLE batch gives the
gradient with respect to those features, and each chunk is then recomputed with gradients (same RNG
state, so the same dropout) and back-propagated with its slice. A contrastive loss therefore sees every
negative of the batch, as if it had fitted in memory at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pedclip.models.base import Encoder, _to_device, l2_normalize
from pedclip.train.data import TrainingSplit, batch_indices, unique_texts
from pedclip.train.losses import MAX_LOGIT_SCALE, contrastive_logits, contrastive_loss

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp16-master": torch.float16}


@dataclass(frozen=True)
class StepSettings:
    loss: str
    device: str
    precision: str  # fp32 | bf16 | fp16 | fp16-master
    micro_batch: int | None = None
    grad_clip: float = 0.0


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward passes (fp32 tensors hold the weights); nothing for fp32.

    fp16-master on a CPU computes in fp32: what changes the study's numbers is its weights living in fp16
    (updates below half an fp16 ulp vanish, done after every step on any device), while fp16 arithmetic
    on a CPU without fp16 units is emulated and made the demo's paper CLIP cells ~10x slower."""
    if precision == "fp32" or (precision == "fp16-master" and torch.device(device).type == "cpu"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=AMP_DTYPES[precision])


def image_features(encoder: Encoder, pixels: np.ndarray, settings: StepSettings) -> torch.Tensor:
    """(n, d) unnormalised image features of `geometry` arrays (with gradients when enabled)."""
    batch = encoder.normalize(list(pixels)).to(settings.device)
    with autocast(settings.device, settings.precision):
        return encoder.image_tower(batch)


def text_features(encoder: Encoder, texts: Sequence[str], settings: StepSettings) -> torch.Tensor:
    """(m, d) unnormalised text features (with gradients when enabled)."""
    tokens = _to_device(encoder.tokenize(list(texts)), settings.device)
    with autocast(settings.device, settings.precision):
        return encoder.text_tower(tokens)


def _chunks(n: int, size: int | None) -> list[slice]:
    size = n if not size or size >= n else size
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _rng_state(device: str) -> tuple:
    cuda = torch.cuda.get_rng_state(device) if torch.device(device).type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple, device: str) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def _features_no_grad(fn, items, slices: list[slice], device: str) -> tuple[torch.Tensor, list[tuple]]:
    states, parts = [], []
    with torch.no_grad():
        for part in slices:
            states.append(_rng_state(device))
            parts.append(fn(items[part]).float())
    return torch.cat(parts), states


def _recompute_backward(fn, items, slices: list[slice], states: list[tuple], grad: torch.Tensor, device: str):
    for part, state in zip(slices, states, strict=True):
        _set_rng_state(state, device)
        fn(items[part]).float().backward(grad[part])


def accumulate_gradients(
    encoder: Encoder,
    pixels: np.ndarray,
    texts: Sequence[str],
    labels: np.ndarray,
    settings: StepSettings,
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """Add the batch loss's gradients to the parameters' `.grad`; returns the loss value."""
    distinct, inverse = unique_texts(texts)
    inverse_t = torch.as_tensor(inverse, device=settings.device)
    labels_t = torch.tensor(np.asarray(labels), device=settings.device)
    scale = scaler.scale if scaler is not None else (lambda x: x)
    image_slices = _chunks(len(pixels), settings.micro_batch)
    if len(image_slices) == 1:  # the whole batch fits: one forward, one backward
        logits = contrastive_logits(
            image_features(encoder, pixels, settings),
            text_features(encoder, distinct, settings)[inverse_t],
            encoder.logit_scale_param,
        )
        loss = contrastive_loss(settings.loss, logits, labels_t, labels_t)
        scale(loss).backward()
        return float(loss.detach())
    text_slices = _chunks(len(distinct), settings.micro_batch)
    image_fn = lambda part: image_features(encoder, part, settings)  # noqa: E731
    text_fn = lambda part: text_features(encoder, part, settings)  # noqa: E731
    images, image_states = _features_no_grad(image_fn, pixels, image_slices, settings.device)
    words, text_states = _features_no_grad(text_fn, distinct, text_slices, settings.device)
    images.requires_grad_(True)
    words.requires_grad_(True)
    logits = contrastive_logits(images, words[inverse_t], encoder.logit_scale_param)
    loss = contrastive_loss(settings.loss, logits, labels_t, labels_t)
    scale(loss).backward()
    _recompute_backward(image_fn, pixels, image_slices, image_states, images.grad, settings.device)
    _recompute_backward(text_fn, distinct, text_slices, text_states, words.grad, settings.device)
    return float(loss.detach())


def optimizer_step(
    optimizer: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    encoder: Encoder,
    grad_clip: float,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Clip (after unscaling), step, clear gradients, and keep exp(logit_scale) within [1, 100]."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    if grad_clip and grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        encoder.logit_scale_param.clamp_(0.0, MAX_LOGIT_SCALE)


def set_mode(encoder: Encoder, training: bool) -> None:
    """Train mode (dropout, drop-path, as the study trained) or eval mode on every module of the encoder."""
    roots = encoder.modules or {"image_tower": encoder.image_tower, "text_tower": encoder.text_tower}
    for module in [*roots.values(), encoder.image_tower, encoder.text_tower]:
        module.train(training)


@torch.no_grad()
def split_features(
    encoder: Encoder, data: TrainingSplit, prompts: Sequence[str], settings: StepSettings, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalised (image features, features of each case's caption, class-prompt features), eval mode."""
    set_mode(encoder, False)
    parts = [
        image_features(encoder, data.pixels[s], settings).float() for s in _chunks(len(data), batch_size)
    ]
    distinct, inverse = unique_texts(data.texts)
    texts = [
        text_features(encoder, distinct[s], settings).float() for s in _chunks(len(distinct), batch_size)
    ]
    prompt_features = text_features(encoder, list(prompts), settings).float()
    captions = torch.cat(texts)[torch.as_tensor(inverse, device=settings.device)]
    return l2_normalize(torch.cat(parts)), l2_normalize(captions), l2_normalize(prompt_features)


def validation_scores(
    encoder: Encoder,
    data: TrainingSplit,
    prompts: Sequence[str],
    settings: StepSettings,
    batch_size: int,
    seed: int,
) -> tuple[float, np.ndarray]:
    """(mean contrastive loss over fixed seeded batches of `batch_size`, P(positive) per case from the
    class prompts: softmax over classes of logit_scale * cos)."""
    images, captions, prompt_features = split_features(encoder, data, prompts, settings, batch_size)
    labels = torch.tensor(data.labels, device=settings.device)
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batch_indices(len(data), batch_size, seed, epoch=0):
            index = torch.as_tensor(batch, device=settings.device)
            logits = contrastive_logits(images[index], captions[index], encoder.logit_scale_param)
            total += float(contrastive_loss(settings.loss, logits, labels[index], labels[index])) * len(batch)
            count += len(batch)
        class_logits = encoder.logit_scale_param.float().exp() * images @ prompt_features.T
        positive = class_logits.softmax(dim=1)[:, 1]
    return total / max(count, 1), positive.cpu().numpy().astype(np.float64)
