"""`pedclip finetune` and `pedclip transfer`: contrastive fine-tuning and cross-dataset transfer (Tables 3, 4)."""

from __future__ import annotations

from typing import Annotated

import typer

from pedclip.cli.common import emit_json, print_table, state
from pedclip.cli.options import AsJson, Model, with_training_options


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

    return FinetuneConfig(**fields)


@with_training_options
def finetune_command(
    ctx: typer.Context,
    model: Model,
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="dataset to train on (train split; val selects)")
    ],
    training: dict,
    as_json: AsJson = False,
) -> None:
    """Fine-tune both towers contrastively; save, register and embed the best checkpoint as local:DIR."""
    from pedclip.train.finetune import finetune

    config = _config(model=model, dataset=dataset, trust_torchscript=state(ctx).trust_torchscript, **training)
    result = finetune(state(ctx).store(create=False), config, progress=_epoch_printer(not as_json))
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


@with_training_options
def transfer_command(
    ctx: typer.Context,
    model: Model,
    from_dataset: Annotated[str, typer.Option("--from", help="dataset to fine-tune on")],
    to_dataset: Annotated[str, typer.Option("--to", help="dataset to evaluate on")],
    training: dict,
    both: Annotated[
        bool, typer.Option("--both", help="also the reverse, with a model fine-tuned on --to")
    ] = False,
    retrain: Annotated[
        bool, typer.Option("--retrain", help="train again even if a matching run exists")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Fine-tune on --from, evaluate zero-shot on --to with the fine-tuning prompts (Table 4)."""
    from pedclip.train.transfer import transfer

    config = _config(
        model=model, dataset=from_dataset, trust_torchscript=state(ctx).trust_torchscript, **training
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
    print_table(rows, title=f"transfer of {model} ({config.protocol})")


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune_command)
    app.command("transfer")(transfer_command)
