"""`pedclip finetune` and `pedclip transfer`: contrastive fine-tuning and cross-dataset transfer (Tables 3, 4)."""

from __future__ import annotations

import os

import typer

from pedclip.cli.common import emit_json, print_table, state

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
NPROC_HELP = (
    "processes (ranks) on this machine: DDP, gloo on CPU, NCCL with one GPU each; the loss sees the global "
    "batch (--batch-size is the global batch). Under torchrun leave it out"
)


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


def _run_finetune(ctx: typer.Context, config, nproc: int, progress):
    """One process, `--nproc` spawned ranks, or this rank of a torchrun launch (None on ranks other than 0)."""
    from pedclip.errors import PedclipError
    from pedclip.train.distributed import Rank

    if nproc < 1:
        raise PedclipError(f"--nproc must be at least 1; got {nproc}")
    rank = Rank.from_env()
    if rank is not None:
        if nproc != 1:
            raise PedclipError("torchrun already started the processes (WORLD_SIZE is set); drop --nproc")
        from pedclip.train.launch import finetune_as_rank

        ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        return finetune_as_rank(state(ctx).home, config, rank, progress, ranks_here=ranks_here)
    if nproc > 1:
        from pedclip.train.launch import launch

        return launch(state(ctx).home, config, nproc, progress)
    from pedclip.train.finetune import finetune

    return finetune(state(ctx).store(create=False), config, progress=progress)


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
    reembed: list[str] = typer.Option(None, "--reembed", help=REEMBED_HELP),
    workers: int = typer.Option(None, "--workers", help=WORKERS_HELP),
    nproc: int = typer.Option(1, "--nproc", help=NPROC_HELP),
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
    result = _run_finetune(ctx, config, nproc, _epoch_printer(not as_json))
    if result is None:  # a torchrun rank other than 0: rank 0 reports
        return
    if as_json:
        emit_json(result.as_dict())
        return
    auroc = result.test.get("auroc", {}).get("value")
    print_table(
        [
            {
                "run": result.run_id,
                "stopped": result.stopped,
                "best epoch": result.best.get("epoch"),
                "val AUROC": result.best.get("val_auroc"),
                "val loss": result.best.get("val_loss"),
                "test AUROC": auroc,
            }
        ],
        title=f"fine-tuned {model} on {dataset}",
    )
    typer.echo(f"model: {result.spec}")


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
    workers: int = typer.Option(None, "--workers", help=WORKERS_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON document"),
) -> None:
    """Fine-tune on --from, evaluate zero-shot on --to with the fine-tuning prompts (Table 4)."""
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
    result = transfer(
        state(ctx).store(create=False),
        config,
        to_dataset,
        both=both,
        reuse=not retrain,
        progress=_epoch_printer(not as_json),
    )
    if as_json:
        emit_json(result.as_dict())
        return
    rows = [
        {
            "run": r["run_id"],
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
