"""The epoch loop: train, validate, keep the best weights, stop on patience or Ctrl-C.

The best epoch is chosen on validation AUROC of the class prompts (`sound`) or on validation loss
(`paper`, as the study did). A first Ctrl-C (or a KeyboardInterrupt raised by a progress callback)
finishes the current step, then training stops and the best weights so far are restored; a second
Ctrl-C aborts at once.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from pedclip.errors import PedclipError
from pedclip.eval.metrics import auroc
from pedclip.models.base import Encoder
from pedclip.train.data import TrainingSplit, batch_indices
from pedclip.train.distributed import SINGLE
from pedclip.train.resume import TrainingState, continue_from
from pedclip.train.step import StepSettings, optimizer_step, set_mode, validation_scores
from pedclip.train.trainable import state_tensors

Progress = Callable[[dict], None]  # events: {"event": "step" | "epoch", ...}


@dataclass(frozen=True)
class LoopSettings:
    epochs: int
    patience: int
    batch_size: int
    protocol: str  # sound: select on val AUROC; paper: on val loss
    prompts: tuple[str, str]
    seed: int
    step: StepSettings


@dataclass
class LoopResult:
    history: list[dict] = field(default_factory=list)
    best: dict | None = None
    stopped: str = "epochs"  # epochs | patience | interrupted
    seconds: float = 0.0


@dataclass
class _StopFlag:
    requested: bool = False


@contextlib.contextmanager
def graceful_interrupt(flag: _StopFlag) -> Iterator[None]:
    """While inside, the first SIGINT only sets `flag`; the second raises KeyboardInterrupt as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def changing_tensors(encoder: Encoder) -> list[torch.Tensor]:
    """Every tensor training can change (trainable parameters and buffers), in a fixed order."""
    tensors = state_tensors(encoder)
    return [t for t in tensors if t.requires_grad or not isinstance(t, torch.nn.Parameter)]


def snapshot(encoder: Encoder) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """CPU copies of every tensor training can change (trainable parameters and buffers)."""
    return [(t, t.detach().to("cpu", copy=True)) for t in changing_tensors(encoder)]


def restore(saved: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    with torch.no_grad():
        for tensor, copy in saved:
            tensor.copy_(copy.to(tensor.device))


def _one_step(
    encoder, data, index, optimizer, params, settings: StepSettings, scaler, replica=SINGLE
) -> tuple[float, StepSettings]:
    """One optimiser step; on CUDA out-of-memory the micro-batch is halved and the step retried.
    `replica` computes this process's share of the batch gradient (all of it outside torch.distributed)."""
    while True:
        try:
            loss = replica.accumulate(encoder, data, index, settings, scaler)
            optimizer_step(optimizer, params, encoder, settings.grad_clip, scaler)
            return loss, settings
        except torch.OutOfMemoryError as exc:
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            micro = (settings.micro_batch or len(index)) // 2
            if micro < 1:
                raise PedclipError(
                    "out of memory even one image at a time; use --trainable last-2 or a GPU"
                ) from exc
            settings = replace(settings, micro_batch=micro)


def _notify(progress: Progress | None, event: dict, flag: _StopFlag) -> None:
    """Call the progress callback; a KeyboardInterrupt it raises is a stop request, like Ctrl-C."""
    try:
        if progress is not None:
            progress(event)
    except KeyboardInterrupt:
        flag.requested = True


def train_epoch(
    encoder,
    data: TrainingSplit,
    epoch: int,
    optimizer,
    params,
    settings: LoopSettings,
    scaler,
    flag: _StopFlag,
    progress: Progress | None,
    replica=SINGLE,
) -> tuple[float, int, StepSettings]:
    """(mean training loss weighted by batch size, steps done, step settings possibly with a smaller micro)."""
    set_mode(encoder, True)
    batches = batch_indices(len(data), settings.batch_size, settings.seed, epoch)
    step_settings, total, count = settings.step, 0.0, 0
    for number, index in enumerate(batches, start=1):
        loss, step_settings = _one_step(
            encoder, data, index, optimizer, params, step_settings, scaler, replica
        )
        total, count = total + loss * len(index), count + len(index)
        _notify(
            progress,
            {"event": "step", "epoch": epoch, "step": number, "steps": len(batches), "loss": loss},
            flag,
        )
        flag.requested = replica.any_rank(flag.requested)
        if flag.requested:
            return total / count, number, step_settings
    return total / count, len(batches), step_settings


def validate(encoder: Encoder, val: TrainingSplit, settings: LoopSettings) -> dict:
    loss, positive = validation_scores(
        encoder, val, settings.prompts, settings.step, settings.batch_size, settings.seed
    )
    metric = auroc(val.labels, positive)
    predicted = (positive >= 0.5).astype(int)
    return {
        "val_loss": loss,
        "val_auroc": metric.value,
        "val_accuracy": float(np.mean(predicted == val.labels)),
    }


LOSS_MIN_DELTA = 1e-4  # a smaller drop in validation loss is noise, not an improvement


def is_better(record: dict, best: dict | None, protocol: str) -> bool:
    """`paper`: lower validation loss. `sound`: higher validation AUROC; at an equal AUROC (often 1.0 on easy
    data) a lower validation loss breaks the tie, so a saturated AUROC does not freeze the checkpoint."""
    if best is None:
        return True
    lower_loss = record["val_loss"] < best["val_loss"] - LOSS_MIN_DELTA
    if protocol == "paper":
        return lower_loss
    auroc, best_auroc = record["val_auroc"] or 0.0, best["val_auroc"] or 0.0
    return auroc > best_auroc or (auroc == best_auroc and lower_loss)


def run_loop(
    encoder: Encoder,
    train: TrainingSplit,
    val: TrainingSplit,
    optimizer: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    settings: LoopSettings,
    on_epoch: Callable[[dict], None] | None = None,
    progress: Progress | None = None,
    replica=SINGLE,
    state: TrainingState | None = None,
) -> LoopResult:
    """Train up to `epochs`, validate after each, stop on patience or interrupt; the encoder ends holding
    the best epoch's weights. Under torch.distributed (`replica`), rank 0 validates and every rank follows
    its decisions. With `state` (one process only), continue after its last saved epoch and save one per
    epoch."""
    started = time.perf_counter()
    result, flag = LoopResult(), _StopFlag()
    # fp16 autocast scales the loss; fp16-master does not (the study's CLIP code had no scaler)
    device_type = torch.device(settings.step.device).type
    scaler = torch.amp.GradScaler(device_type) if settings.step.precision == "fp16" else None
    stateful, tensors = {"optimizer": optimizer, "scaler": scaler}, changing_tensors(encoder)
    first, saved, settings = continue_from(state, tensors, stateful, result, settings)
    with graceful_interrupt(flag):
        for epoch in range(first, settings.epochs + 1):
            tick = time.perf_counter()
            train_loss, steps, step_settings = train_epoch(
                encoder, train, epoch, optimizer, params, settings, scaler, flag, progress, replica
            )
            settings = replace(settings, step=step_settings)
            if flag.requested and result.best is not None:
                result.stopped = "interrupted"
                break
            record = {
                "epoch": epoch,
                "train_loss": train_loss,
                "steps": steps,
                **replica.from_writer(functools.partial(validate, encoder, val, settings)),
                "logit_scale": float(encoder.logit_scale_param.detach().float().exp()),
                "micro_batch": step_settings.micro_batch,
                "seconds": time.perf_counter() - tick,
            }
            record["best"] = is_better(record, result.best, settings.protocol)
            if record["best"]:
                result.best, saved = record, snapshot(encoder)
            result.history.append(record)
            if on_epoch is not None:
                on_epoch(record)
            if epoch - result.best["epoch"] >= settings.patience:
                result.stopped = "patience"
            if state is not None:  # after the epoch row, so a rerun never skips an epoch the store lacks
                state.save(epoch, tensors, [c for _, c in saved], stateful, result, step_settings.micro_batch)
            _notify(progress, {"event": "epoch", **record}, flag)
            flag.requested = replica.any_rank(flag.requested)
            if flag.requested:
                result.stopped = "interrupted"
            if result.stopped != "epochs":
                break
    restore(saved)
    set_mode(encoder, False)
    result.seconds = time.perf_counter() - started
    return result
