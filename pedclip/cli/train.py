"""`pedclip finetune` and `pedclip transfer`: contrastive fine-tuning and cross-dataset transfer (Tables 3, 4)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from pedclip.cli.common import emit_json, print_table, state
from pedclip.cli.options import AsJson, Model, Seeds, Tune, TuneLr, TuneWd, with_training_options
from pedclip.errors import PedclipError


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
    """`finetune`, or the tuning trainer with its grid bound."""
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


def _trainer(nproc: int, tune: bool, lrs: str | None, wds: str | None):
    """What trains one run: `finetune` in this process (or the tuning grid), or `nproc` spawned ranks."""
    if nproc < 1:
        raise PedclipError(f"--nproc must be at least 1; got {nproc}")
    if nproc == 1:
        return make_trainer(tune, lrs, wds)
    if tune:
        raise PedclipError("--tune runs its grid in one process; drop --nproc or --tune")
    from pedclip.train.launch import spawned_trainer

    return spawned_trainer(nproc)


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
    seeds: Seeds = None,
    tune: Tune = False,
    tune_lr: TuneLr = None,
    tune_wd: TuneWd = None,
    nproc: Annotated[int, typer.Option("--nproc", help=NPROC_HELP)] = 1,
    as_json: AsJson = False,
) -> None:
    """Fine-tune both towers contrastively; save, register and embed the best checkpoint as local:DIR."""
    from pedclip.train.distributed import Rank
    from pedclip.train.seeds import finetune_seeds

    config = _config(model=model, dataset=dataset, trust_torchscript=state(ctx).trust_torchscript, **training)
    chosen, progress = parse_seeds(seeds), _epoch_printer(not as_json)
    torchrun = Rank.from_env() is not None
    if torchrun and (chosen is not None or tune):
        raise PedclipError(
            "under torchrun each launch is one run: drop --seeds and --tune, and launch once per seed"
        )
    if torchrun or (nproc != 1 and chosen is None and not tune):
        result = _run_finetune(ctx, config, nproc, progress)
        if result is None:  # a torchrun rank other than 0: rank 0 reports
            return
        results = [result]
    else:  # one process, or --seeds on --nproc ranks: one launch per seed
        store, trainer = state(ctx).store(create=False), _trainer(nproc, tune, tune_lr, tune_wd)
        if chosen is None:
            results = [trainer(store, config, progress=progress)]
        else:
            results = finetune_seeds(store, config, chosen, progress=progress, trainer=trainer)
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
    threshold_from: Annotated[
        str,
        typer.Option(
            "--threshold-from",
            help="source: Youden threshold on --from's validation split (strictly zero-shot on --to) | "
            "target: on --to's own validation split",
        ),
    ] = "source",
    seeds: Seeds = None,
    tune: Tune = False,
    tune_lr: TuneLr = None,
    tune_wd: TuneWd = None,
    nproc: Annotated[int, typer.Option("--nproc", help=NPROC_HELP)] = 1,
    as_json: AsJson = False,
) -> None:
    """Fine-tune on --from, evaluate zero-shot on --to with the fine-tuning prompts (Table 4)."""
    from pedclip.train.distributed import Rank
    from pedclip.train.seeds import transfer_seeds
    from pedclip.train.transfer import transfer

    if Rank.from_env() is not None:
        raise PedclipError(
            "transfer starts its own ranks (--nproc N); across nodes, fine-tune under torchrun with "
            "`pedclip finetune`, then run `pedclip transfer` in one process: it reuses that run"
        )

    config = _config(
        model=model,
        dataset=from_dataset,
        threshold_from=threshold_from,
        trust_torchscript=state(ctx).trust_torchscript,
        **training,
    )
    store, chosen, progress = state(ctx).store(create=False), parse_seeds(seeds), _epoch_printer(not as_json)
    trainer = _trainer(nproc, tune, tune_lr, tune_wd)
    reuse = not retrain and not tune  # a tuned run is chosen on its grid, never an earlier run at --lr
    if chosen is None:
        result = transfer(
            store, config, to_dataset, both=both, reuse=reuse, progress=progress, trainer=trainer
        )
    else:
        result = transfer_seeds(
            store, config, to_dataset, chosen, both=both, reuse=reuse, progress=progress, trainer=trainer
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
    print_table(rows, title=f"transfer of {model} ({config.protocol})")


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune_command)
    app.command("transfer")(transfer_command)
