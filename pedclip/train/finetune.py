"""`finetune(store, config)`: contrastive fine-tuning that ends as a registered, embedded `local:` model.

load the model (fp32 master weights) -> read the train/val pixels from the pixel cache -> epoch loop
(best epoch on val AUROC or val loss) -> save the best weights under Paths.checkpoints/<run_id>/ ->
register the child (parent fingerprint recorded) -> embed the training dataset and any --reembed datasets
with it -> zero-shot on the training dataset's test split with the fine-tuning prompts (Table 3).
The parent's vectors are never touched: the child has its own fingerprint.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pedclip.embed.pipeline import EmbedConfig
from pedclip.embed.pixels import Decoder, default_decoder
from pedclip.errors import PedclipError
from pedclip.eval.evaluation import split_column_for
from pedclip.eval.guards import require_no_leakage
from pedclip.eval.protocols import get_protocol
from pedclip.models import load_encoder, save_local
from pedclip.models.base import Encoder
from pedclip.store import Store
from pedclip.store.cases import get_dataset
from pedclip.store.embeddings import register_model
from pedclip.store.runs import new_run_id, save_epoch, save_run
from pedclip.train.config import FinetuneConfig, is_medclip_family, is_ucsd_like, resolve
from pedclip.train.data import TrainingSplit, load_split
from pedclip.train.distributed import SINGLE
from pedclip.train.evaluate import embed_with, evaluate_finetuned
from pedclip.train.loop import LoopResult, LoopSettings, Progress, run_loop
from pedclip.train.resume import TrainingState, claim_run, state_key
from pedclip.train.step import StepSettings
from pedclip.train.trainable import (
    count_parameters,
    round_to_fp16,
    select_trainable,
    study_fp16_parameters,
)


@dataclass
class FinetuneResult:
    run_id: str
    spec: str  # local:<checkpoint dir>: evaluable like any other model
    checkpoint: Path
    fingerprint: str
    parent_fingerprint: str
    stopped: str  # epochs | patience | interrupted
    best: dict
    history: list[dict]
    config: dict  # the resolved config
    test: dict = field(default_factory=dict)  # metrics on the training dataset's test split
    embedded: dict = field(default_factory=dict)  # dataset -> embedding report
    seconds: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "spec": self.spec,
            "checkpoint": str(self.checkpoint),
            "fingerprint": self.fingerprint,
            "parent_fingerprint": self.parent_fingerprint,
            "stopped": self.stopped,
            "best_epoch": self.best.get("epoch"),
            "best": self.best,
            "epochs_run": len(self.history),
            "history": self.history,
            "config": self.config,
            "test": self.test,
            "embedded": self.embedded,
            "seconds": self.seconds,
        }


def check_datasets(store: Store, config: FinetuneConfig) -> dict:
    """The training dataset's row; every --reembed dataset must exist too (fail before training, not after)."""
    info = get_dataset(store, config.dataset)
    for name in config.reembed:
        get_dataset(store, name)
    return info


def load_parent(store: Store, config: FinetuneConfig) -> Encoder:
    """The model to start from, fp32 master weights (the training seed does not pick its weights)."""
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return load_encoder(
        config.model,
        weights=config.weights,
        device=device,
        dtype="fp32",
        home=store.paths.home,
        trust_torchscript=config.trust_torchscript,
    )


def load_splits(store: Store, encoder: Encoder, config: FinetuneConfig, decoder: Decoder):
    """(train, val, the split column read): the study's folders in `paper`, the assigned splits in `sound`."""
    column = split_column_for(store, config.dataset, get_protocol(config.protocol).split_column)
    args = (encoder.preprocess_config, config.text, config.prompts, decoder, column)
    train = load_split(store, config.dataset, config.train_split, *args)
    val = load_split(store, config.dataset, config.val_split, *args)
    if config.protocol == "sound" and len(set(val.labels.tolist())) < 2:
        raise PedclipError(
            f"the {config.val_split} split of {config.dataset!r} has one class only, so validation AUROC is "
            "undefined; re-split the dataset or use --protocol paper (selects on validation loss)"
        )
    return train, val, column


def make_optimizer(
    config: FinetuneConfig, params: list[torch.nn.Parameter], fp16_masters: list[torch.nn.Parameter] = ()
) -> torch.optim.Optimizer:
    """The study's Adam with coupled L2 decay on every parameter (audit section 1), or AdamW. With
    `fp16_masters` (precision fp16-master) each step ends by rounding those weights to fp16, as the study's
    CLIP loop cast them back after an fp32 `optimizer.step()` (finetune_clip.py:230-235); Adam's moments
    stay fp32, as there."""
    kind = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    # one fused kernel over all tensors: the same update to float rounding, 9.5x faster a step on demo:clip
    # than the per-tensor loop torch picks on a CPU by default (bench/bench_overheads.py)
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    optimizer = kind(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None)
    if fp16_masters:
        optimizer.register_step_post_hook(lambda *_: round_to_fp16(list(fp16_masters)))
    return optimizer


def loop_settings(config: FinetuneConfig) -> LoopSettings:
    step = StepSettings(
        loss=config.loss,
        device=config.device,
        precision=config.precision,
        micro_batch=config.micro_batch,
        grad_clip=float(config.grad_clip or 0.0),
    )
    return LoopSettings(
        epochs=config.epochs,
        patience=config.patience,
        batch_size=config.batch_size,
        protocol=config.protocol,
        prompts=config.prompts,
        seed=config.seed,
        step=step,
    )


def _run_row(run_id: str, config: FinetuneConfig, request: FinetuneConfig, extra: dict, status: str) -> dict:
    return {
        "run_id": run_id,
        "kind": "finetune",
        "protocol": config.protocol,
        "model": request.model,
        "fingerprint": extra.get("fingerprint"),
        "train_dataset": config.dataset,
        "eval_dataset": config.dataset,
        "split": extra.get("split", config.val_split),
        "status": status,
        "config": {"request": request.as_dict(), "resolved": config.as_dict(), **extra.get("config", {})},
        "metrics": extra.get("metrics", {}),
    }


def _curve_point(record: dict) -> dict:
    """An epoch record as the `epochs` table stores it (the epoch number is its own column)."""
    return {k: v for k, v in record.items() if k != "epoch"}


def train_encoder(
    store: Store,
    encoder: Encoder,
    train: TrainingSplit,
    val: TrainingSplit,
    config: FinetuneConfig,
    run_id: str,
    progress: Progress | None,
    replica=SINGLE,
    state: TrainingState | None = None,
) -> tuple[LoopResult, int]:
    """Seeded training in its own RNG scope (the caller's global RNG is left as it was). Under
    torch.distributed, rank r seeds with seed + r (its own dropout) and only rank 0 records epochs."""
    params = select_trainable(encoder, config.trainable, config.last_n)
    fp16_masters = study_fp16_parameters(encoder) if config.precision == "fp16-master" else []
    round_to_fp16(fp16_masters)  # the study trained from `clip.load`'s fp16 weights
    devices = [torch.device(config.device).index or 0] if torch.device(config.device).type == "cuda" else []
    # the layout first: DDP's gradient buckets take the parameters' strides when it wraps them
    with channels_last_cnn(encoder, config.device), torch.random.fork_rng(devices=devices):
        replica.attach(encoder)
        torch.manual_seed(config.seed + replica.rank)
        optimizer = make_optimizer(config, [p for _, p in params], fp16_masters)
        result = run_loop(
            encoder,
            train,
            val,
            optimizer,
            [p for _, p in params],
            loop_settings(config),
            on_epoch=(lambda r: save_epoch(store, run_id, r["epoch"], _curve_point(r)))
            if replica.writes
            else None,
            progress=progress,
            replica=replica,
            state=state,
        )
    if state is not None:  # the last epoch's state lands before saving and embedding (which forks) start
        state.wait()
    return result, count_parameters(params)


@contextlib.contextmanager
def channels_last_cnn(encoder: Encoder, device: str) -> Iterator[None]:
    """Train a convolutional image tower (more than a ViT's one patch convolution) in channels-last layout
    on the CPU, where oneDNN's convolutions are faster in it (demo:medclip's ResNet: 0.61 -> 0.47 s a
    step, bench/README.md); back to the standard layout after, which saving and every embedding use."""
    tower = encoder.image_tower
    convolutions = 0 if tower is None else sum(isinstance(m, torch.nn.Conv2d) for m in tower.modules())
    if torch.device(device).type != "cpu" or convolutions < 2:
        yield
        return
    tower.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        tower.to(memory_format=torch.contiguous_format)


def save_child(store: Store, encoder: Encoder, run_id: str, config: FinetuneConfig, parent: str) -> Encoder:
    """Write the trained weights as a `local:` model, load it back (its own fingerprint) and register it."""
    out_dir = save_local(
        encoder,
        store.paths.checkpoints / run_id,
        run_id=run_id,
        extra={"parent_fingerprint": parent, "parent_spec": config.model, "finetune": config.as_dict()},
    )
    child = load_encoder(f"local:{out_dir}", device=config.device, home=store.paths.home)
    if child.parent_fingerprint is None:
        child.parent_fingerprint = parent
    if child.fingerprint == parent:
        raise PedclipError(
            f"the checkpoint at {out_dir} has its parent's fingerprint; this is a bug in save_local"
        )
    register_model(store, child.describe())
    return child


def _open_run(store: Store, encoder: Encoder) -> str:
    """Rank 0's new run id (a distributed run is never continued)."""
    register_model(store, encoder.describe())
    return new_run_id("finetune")


def finetune(
    store: Store,
    config: FinetuneConfig,
    progress: Progress | None = None,
    decoder: Decoder = default_decoder,
    tags: dict | None = None,
    replica=SINGLE,
) -> FinetuneResult | None:
    """Fine-tune `config.model` on `config.dataset`; see the module docstring for the steps.

    `tags` (e.g. the seed group, the tuning grid) are stored in the run's config beside what it computed.
    The run is recorded as "running" from the start, and "failed" if anything raises (Ctrl-C included);
    a first Ctrl-C during training only stops it early and the run ends "interrupted" with its checkpoint.
    Under torch.distributed (`replica`, see train/distributed.py) only rank 0 reads and writes the store
    and returns the result; the other ranks train and return None.
    """
    started = time.perf_counter()
    info = replica.from_writer(lambda: check_datasets(store, config))
    allowed = (
        replica.from_writer(lambda: require_no_leakage(store, config.dataset, config.allow_leakage))
        if config.protocol == "sound"
        else None
    )
    encoder = load_parent(store, config)
    resolved = resolve(
        config, is_medclip_family(encoder.family, encoder.arch), is_ucsd_like(info), torch.cuda.is_available()
    )
    train, val, split_column = replica.from_writer(lambda: load_splits(store, encoder, resolved, decoder))
    data = {
        "train": len(train),
        "train_positive": train.n_positive,
        "val": len(val),
        "val_positive": val.n_positive,
        "split_column": split_column,
        **({"leakage_allowed": allowed} if allowed else {}),
    }
    tagged = {**(tags or {}), "data": data}
    if replica is not SINGLE:  # the ranks share the run rank 0 opens; resuming is single-process only
        run_id = replica.from_writer(lambda: _open_run(store, encoder))
        return _train_recorded(
            store, encoder, train, val, resolved, config, (run_id, None), tagged, progress, started, replica
        )
    register_model(store, encoder.describe())
    key = state_key(resolved.as_dict(), encoder.fingerprint, (train, val))
    # A rerun with the same arguments continues an unfinished run after its last completed epoch.
    with claim_run(store, config.as_dict(), key) as (run_id, state, _):
        result = _train_recorded(
            store, encoder, train, val, resolved, config, (run_id, state), tagged, progress, started, replica
        )
        state.clear()
        return result


def _train_recorded(
    store, encoder, train, val, resolved, request, claimed, tagged, progress, started, replica
):
    """The run is "running" while it trains and "failed" if anything raises (Ctrl-C included)."""
    run_id = claimed[0]
    if replica.writes:
        save_run(store, _run_row(run_id, resolved, request, {"config": tagged}, "running"))
    try:
        return _train_save_embed(
            store, encoder, train, val, resolved, request, claimed, tagged, progress, started, replica
        )
    except BaseException:
        if replica.writes:
            save_run(store, _run_row(run_id, resolved, request, {"config": tagged}, "failed"))
        raise


def _train_save_embed(
    store, encoder, train, val, resolved, request, claimed, tagged, progress, started, replica
):
    parent, (run_id, state) = encoder.fingerprint, claimed
    seconds = {"load": time.perf_counter() - started}
    loop, n_trainable = train_encoder(store, encoder, train, val, resolved, run_id, progress, replica, state)
    if not replica.writes:
        return None
    seconds["train"] = loop.seconds
    child = save_child(store, encoder, run_id, resolved, parent)
    del encoder  # its fingerprint is the parent's: never embed with it
    embedded, test = {}, None
    if resolved.embed:
        datasets = (resolved.dataset, *resolved.reembed)
        embedded = embed_with(store, child, datasets, EmbedConfig(workers=resolved.embed_workers))
        test = evaluate_finetuned(store, child, resolved)
    seconds["total"] = time.perf_counter() - started
    summary = {
        "best_epoch": loop.best["epoch"],
        "stopped": loop.stopped,
        "epochs_run": len(loop.history),
        "best": loop.best,
        "trainable_parameters": n_trainable,
        "seconds": seconds,
    }
    checkpoint = Path(child.spec[len("local:") :])
    extra = {
        "fingerprint": child.fingerprint,
        "split": test.run["split"] if test else resolved.val_split,
        "metrics": test.run["metrics"] if test else {},
        "config": {
            **tagged,
            "training": summary,
            "parent_fingerprint": parent,
            "child_spec": child.spec,
            "checkpoint": str(checkpoint),
            "evaluation": test.run["config"] if test else None,
        },
    }
    status = "interrupted" if loop.stopped == "interrupted" else "done"
    save_run(store, _run_row(run_id, resolved, request, extra, status), test.predictions if test else None)
    return FinetuneResult(
        run_id=run_id,
        spec=child.spec,
        checkpoint=checkpoint,
        fingerprint=child.fingerprint,
        parent_fingerprint=parent,
        stopped=loop.stopped,
        best=loop.best,
        history=loop.history,
        config=resolved.as_dict(),
        test=test.run["metrics"] if test else {},
        embedded=embedded,
        seconds=seconds,
    )
