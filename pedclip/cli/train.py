"""`pedclip finetune` and `pedclip transfer`: contrastive fine-tuning and cross-dataset transfer (Tables 3, 4)."""

from __future__ import annotations

import typer

from pedclip.cli.common import emit_json, print_table, state
from pedclip.errors import PedclipError

MODEL_HELP = "model spec to start from, e.g. openclip:ViT-B-32-quickgelu/openai or demo:clip"
LOSS_HELP = (
    "clip: the study's hard-target loss | semantic: MedCLIP's label-similarity soft targets "
    "(default: semantic with --protocol sound, clip with paper)"
)
TEXT_HELP = "prompts: each image's class prompt | reports: each case's report"
TRAINABLE_HELP = "all | last-N (last N blocks of each tower + heads) | projection"
WD_HELP = "weight decay (default: the study's per family and dataset)"
PROTOCOL_HELP = "sound: select on val AUROC, 'pneumonia' prompts | paper: select on val loss, 'covid' prompts"
WORKERS_HELP = "image-decoding processes for embedding with the result (default half the cores; 0 none)"
REEMBED_HELP = "also embed this dataset with the fine-tuned model (repeatable)"
SEEDS_HELP = "one run per training seed, e.g. 0,1,2, linked by a group id (overrides --seed)"


TUNE_HELP = "fine-tune at each point of a small lr x weight-decay grid, keep the best on validation AUROC"
TUNE_LR_HELP = "--tune's learning rates, comma-separated (default 1e-5,3e-5,1e-4)"
TUNE_WD_HELP = "--tune's weight decays, comma-separated (default 1e-4,1e-2)"


def _floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise PedclipError(
            f"{flag} {text!r} is not a comma-separated list of numbers, e.g. 1e-5,1e-4"
        ) from None


def make_trainer(tune: bool, lrs: str | None, wds: str | None):
    """`finetune`, or the tuning trainer with its grid bound (None: not tuning)."""
    from functools import partial

    from pedclip.train.finetune import finetune
    from pedclip.train.tune import DEFAULT_LRS, DEFAULT_WEIGHT_DECAYS, tune_grid, tuned_finetune

    if not tune:
        if lrs is not None or wds is not None:
            raise PedclipError("--tune-lr and --tune-wd need --tune")
        return finetune
    grid = tune_grid(
        _floats(lrs, "--tune-lr") or DEFAULT_LRS, _floats(wds, "--tune-wd") or DEFAULT_WEIGHT_DECAYS
    )
    return partial(tuned_finetune, grid=grid)


def parse_seeds(text: str | None) -> tuple[int, ...] | None:
    """ "0,1,2" -> (0, 1, 2); None when not given; one-line error otherwise."""
    if text is None:
        return None
    try:
        seeds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise PedclipError(
            f"--seeds {text!r} is not a comma-separated list of integers, e.g. 0,1,2"
        ) from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise PedclipError(f"--seeds {text!r} needs distinct integers, e.g. 0,1,2")
    return seeds


def _epoch_printer(show: bool):
    """A progress callback printing one line per epoch on stderr."""

    def report(event: dict) -> None:
        if not show or event.get("event") != "epoch":
            return
        auroc = event.get("val_auroc")
        typer.echo(
            f"epoch {event['epoch']}: train loss {event['train_loss']:.4f}, val loss {event['val_loss']:.4f}, "
            f"val AUROC {'n/a' if auroc is None else f'{auroc:.4f}'}, {event['seconds']:.1f} s"
            + ("  (best)" if event.get("best") else ""),
            err=True,
        )

    return report


def _config(**fields):
    from pedclip.train.config import FinetuneConfig

    fields["reembed"] = tuple(fields.get("reembed") or ())
    return FinetuneConfig(**fields)


def finetune_command(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    dataset: str = typer.Option(
        ..., "--dataset", "-d", help="dataset to train on (train split; val selects)"
    ),
    weights: str = typer.Option(None, "--weights", help="local weights file or folder for --model"),
    loss: str = typer.Option(None, "--loss", help=LOSS_HELP),
    text: str = typer.Option("prompts", "--text", help=TEXT_HELP),
    trainable: str = typer.Option("all", "--trainable", help=TRAINABLE_HELP),
    epochs: int = typer.Option(50, "--epochs"),
    patience: int = typer.Option(None, "--patience", help="epochs without improvement (default 20)"),
    batch_size: int = typer.Option(256, "--batch-size"),
    micro_batch: int = typer.Option(None, "--micro-batch", help="images per forward (exact accumulation)"),
    lr: float = typer.Option(1e-5, "--lr"),
    weight_decay: float = typer.Option(None, "--weight-decay", help=WD_HELP),
    grad_clip: float = typer.Option(
        None, "--grad-clip", help="max gradient norm (default 1.0 MedCLIP; 0 off)"
    ),
    protocol: str = typer.Option("sound", "--protocol", help=PROTOCOL_HELP),
    device: str = typer.Option(None, "--device", help="torch device (default cuda when available)"),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | bf16 | fp16"),
    seed: int = typer.Option(0, "--seed"),
    seeds: str = typer.Option(None, "--seeds", help=SEEDS_HELP),
    tune: bool = typer.Option(False, "--tune", help=TUNE_HELP),
    tune_lr: str = typer.Option(None, "--tune-lr", help=TUNE_LR_HELP),
    tune_wd: str = typer.Option(None, "--tune-wd", help=TUNE_WD_HELP),
    reembed: list[str] = typer.Option(None, "--reembed", help=REEMBED_HELP),
    workers: int = typer.Option(None, "--workers", help=WORKERS_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON document"),
) -> None:
    """Fine-tune both towers contrastively; save, register and embed the best checkpoint as local:DIR."""
    config = _config(
        model=model,
        dataset=dataset,
        weights=weights,
        loss=loss,
        text=text,
        trainable=trainable,
        epochs=epochs,
        patience=patience,
        batch_size=batch_size,
        micro_batch=micro_batch,
        lr=lr,
        weight_decay=weight_decay,
        grad_clip=grad_clip,
        protocol=protocol,
        device=device,
        precision=precision,
        seed=seed,
        reembed=reembed,
        embed_workers=workers,
    )
    store = state(ctx).store(create=False)
    chosen = parse_seeds(seeds)
    trainer = make_trainer(tune, tune_lr, tune_wd)
    results = _run_finetunes(store, config, chosen, trainer, not as_json)
    if as_json:
        docs = [r.as_dict() for r in results]
        emit_json(docs[0] if chosen is None else {"runs": docs})
        return
    rows = [
        {
            "run": r.run_id,
            "seed": r.config["seed"],
            "stopped": r.stopped,
            "best epoch": r.best.get("epoch"),
            "val AUROC": r.best.get("val_auroc"),
            "val loss": r.best.get("val_loss"),
            "test AUROC": r.test.get("auroc", {}).get("value"),
        }
        for r in results
    ]
    print_table(rows, title=f"fine-tuned {model} on {dataset}")
    for r in results:
        typer.echo(f"model: {r.spec}")


def _run_finetunes(store, config, seeds, trainer, show: bool) -> list:
    from pedclip.train.seeds import finetune_seeds

    if seeds is None:
        return [trainer(store, config, progress=_epoch_printer(show))]
    return finetune_seeds(store, config, seeds, progress=_epoch_printer(show), trainer=trainer)


def transfer_command(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    from_dataset: str = typer.Option(..., "--from", help="dataset to fine-tune on"),
    to_dataset: str = typer.Option(..., "--to", help="dataset to evaluate on"),
    both: bool = typer.Option(False, "--both", help="also the reverse, with a model fine-tuned on --to"),
    retrain: bool = typer.Option(False, "--retrain", help="train again even if a matching run exists"),
    weights: str = typer.Option(None, "--weights", help="local weights file or folder for --model"),
    loss: str = typer.Option(None, "--loss", help=LOSS_HELP),
    text: str = typer.Option("prompts", "--text", help=TEXT_HELP),
    trainable: str = typer.Option("all", "--trainable", help=TRAINABLE_HELP),
    epochs: int = typer.Option(50, "--epochs"),
    patience: int = typer.Option(None, "--patience", help="epochs without improvement (default 20)"),
    batch_size: int = typer.Option(256, "--batch-size"),
    lr: float = typer.Option(1e-5, "--lr"),
    weight_decay: float = typer.Option(None, "--weight-decay", help=WD_HELP),
    protocol: str = typer.Option("sound", "--protocol", help=PROTOCOL_HELP),
    device: str = typer.Option(None, "--device", help="torch device (default cuda when available)"),
    seed: int = typer.Option(0, "--seed"),
    seeds: str = typer.Option(None, "--seeds", help=SEEDS_HELP),
    tune: bool = typer.Option(False, "--tune", help=TUNE_HELP),
    tune_lr: str = typer.Option(None, "--tune-lr", help=TUNE_LR_HELP),
    tune_wd: str = typer.Option(None, "--tune-wd", help=TUNE_WD_HELP),
    workers: int = typer.Option(None, "--workers", help=WORKERS_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON document"),
) -> None:
    """Fine-tune on --from, evaluate zero-shot on --to with the fine-tuning prompts (Table 4)."""
    from pedclip.train.seeds import transfer_seeds
    from pedclip.train.transfer import transfer

    config = _config(
        model=model,
        dataset=from_dataset,
        weights=weights,
        loss=loss,
        text=text,
        trainable=trainable,
        epochs=epochs,
        patience=patience,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        protocol=protocol,
        device=device,
        seed=seed,
        embed_workers=workers,
    )
    store, chosen, show = state(ctx).store(create=False), parse_seeds(seeds), _epoch_printer(not as_json)
    trainer = make_trainer(tune, tune_lr, tune_wd)
    reuse = not retrain and not tune  # a tuned run is chosen on the grid, never an earlier run at --lr
    if chosen is None:
        result = transfer(store, config, to_dataset, both=both, reuse=reuse, progress=show, trainer=trainer)
    else:
        result = transfer_seeds(
            store, config, to_dataset, chosen, both=both, reuse=reuse, progress=show, trainer=trainer
        )
    if as_json:
        emit_json(result.as_dict())
        return
    rows = [
        {
            "run": r["run_id"],
            "seed": r["seed"],
            "from": r["from"],
            "to": r["to"],
            "split": r["split"],
            "AUROC": r["metrics"].get("auroc", {}).get("value"),
            "accuracy": r["metrics"].get("accuracy", {}).get("value"),
        }
        for r in result.runs
    ]
    print_table(rows, title=f"transfer of {model} ({protocol})")


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune_command)
    app.command("transfer")(transfer_command)
