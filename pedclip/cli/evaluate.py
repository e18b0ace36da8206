"""Evaluation commands: zeroshot, rescore, probe, knn, prompts, paper, report, runs.

Thin wrappers: each parses flags, calls one function of `pedclip.eval`, prints a table or one JSON document.
"""

from __future__ import annotations

from types import SimpleNamespace

import typer

from pedclip.cli.common import emit_json, load_model, print_table, state
from pedclip.cli.options import (
    AllowLeakage,
    AsJson,
    Dataset,
    Device,
    MaxFlips,
    Model,
    NoSave,
    Protocol,
    Resamples,
    Runtime,
    Seed,
    Split,
    Weights,
)
from pedclip.errors import PedclipError
from pedclip.eval.record import RunRecord

PROMPTS_HELP = "prompt set name (see `pedclip prompts list`) or a TOML file"
INLINE_HELP = (
    "inline prompt 'class=text' (repeat; e.g. --prompt 'normal=clear lungs' --prompt 'pneumonia=...')"
)

prompts_app = typer.Typer(no_args_is_help=True, help="list and show prompt sets")


def _encoder(ctx: typer.Context, model: str, weights: str | None, device: str, runtime: str = "torch"):
    # Evaluation reads image vectors from the store and only encodes prompts: no image tower is built.
    return load_model(ctx, model, weights=weights, device=device, runtime=runtime, towers="text")


def _prompt_encoder(ctx: typer.Context, store, model: str, weights, runtime: str, texts: list[str]):
    """No model at all when every prompt is already in the store's text cache (CLIP family); else the text
    tower alone."""
    from pedclip.embed.text import cached_prompts
    from pedclip.models import fingerprint_for

    fingerprint = fingerprint_for(model, weights=weights, home=state(ctx).home)
    cached = cached_prompts(store, model, fingerprint, texts)
    return cached if cached is not None else _encoder(ctx, model, weights, "cpu", runtime)


def _model_ref(ctx: typer.Context, store, model: str, weights: str | None, device: str):
    """Probes and kNN need only the fingerprint: take it from the models table when the spec is unambiguous."""
    from pedclip.store.embeddings import models_frame

    known = models_frame(store)
    matches = known[known["spec"] == model]["fingerprint"].unique()
    if weights is None and len(matches) == 1:
        return SimpleNamespace(spec=model, fingerprint=str(matches[0]), logit_scale=None)
    return _encoder(ctx, model, weights, device)


def _bootstrap(resamples: int, seed: int):
    from pedclip.eval.bootstrap import BootstrapConfig

    return BootstrapConfig(n_resamples=resamples, seed=seed)


def _print_result(result, saved: bool, extra_rows: list[dict] | None = None) -> None:
    run = result.run
    typer.echo(
        f"{run['kind']} {RunRecord.from_row(run).model_name()} on {run['eval_dataset']}:{run['split']} "
        f"({run['protocol']} protocol), "
        f"n={run['config'].get('n')}, threshold {result.threshold.value:.4f} ({result.threshold.rule}), "
        f"CIs by {run['config'].get('resampled')}"
        + (" - prompts tuned on test" if run["config"].get("prompts_tuned_on_test") else "")
    )
    rows = [
        {
            "metric": k,
            "value": m.value,
            "95% CI": "" if m.lo is None else f"{m.lo:.4f}-{m.hi:.4f}",
            "note": m.reason or "",
        }
        for k, m in result.metrics.items()
    ]
    print_table(rows)
    for row in extra_rows or []:
        typer.echo(" ".join(f"{k}={v}" for k, v in row.items()))
    typer.echo(f"run {run['run_id']}" + (" saved" if saved else " (not saved)"))


def zeroshot(
    ctx: typer.Context,
    model: Model,
    dataset: Dataset,
    prompts: str = typer.Option(None, "--prompts", "-p", help=PROMPTS_HELP + " (default: the protocol's)"),
    prompt: list[str] = typer.Option(None, "--prompt", help=INLINE_HELP),
    split: str = typer.Option(
        None, "--split", help="split(s) to evaluate, e.g. test or all (default: protocol's)"
    ),
    protocol: Protocol = "sound",
    threshold: str = typer.Option(
        None, "--threshold", help="youden | fixed | a number (default: protocol's)"
    ),
    resamples: Resamples = 1000,
    seed: Seed = 0,
    weights: Weights = None,
    device: Device = "cpu",
    runtime: Runtime = "auto",
    no_save: NoSave = False,
    allow_leakage: AllowLeakage = False,
    as_json: AsJson = False,
) -> None:
    """Zero-shot evaluation from cached image embeddings (no image is decoded)."""
    from pedclip.eval.evaluation import save
    from pedclip.eval.prompts import resolve_prompt_set
    from pedclip.eval.protocols import get_protocol
    from pedclip.eval.zeroshot import ZeroShotConfig, zeroshot_eval

    store = state(ctx).store(create=False)
    pset = resolve_prompt_set(prompts or get_protocol(protocol).default_prompts, prompt, state(ctx).home)
    encoder = _encoder(ctx, model, weights, device, runtime)
    config = ZeroShotConfig(
        protocol=protocol,
        split=split,
        threshold=threshold,
        bootstrap=_bootstrap(resamples, seed),
        allow_leakage=allow_leakage,
    )
    result = zeroshot_eval(store, encoder, dataset, pset, config)
    if not no_save:
        save(store, result)
    if as_json:
        emit_json({**result.as_dict(), "saved": not no_save})
        return
    _print_result(result, not no_save)


def rescore(
    ctx: typer.Context,
    model: Model,
    dataset: Dataset,
    prompt: list[str] = typer.Option(None, "--prompt", help=INLINE_HELP),
    prompts: str = typer.Option(None, "--prompts", "-p", help=PROMPTS_HELP + " (instead of --prompt)"),
    split: Split = "val",
    against: str = typer.Option(None, "--against", help="baseline run id: print deltas and flipped cases"),
    protocol: Protocol = "sound",
    resamples: Resamples = 200,
    weights: Weights = None,
    save_run: bool = typer.Option(False, "--save", help="write the run to the store"),
    max_flips: MaxFlips = 20,
    allow_leakage: AllowLeakage = False,
    runtime: Runtime = "auto",
    as_json: AsJson = False,
) -> None:
    """Score new prompts against every cached image at once (the validation split unless --split says
    otherwise: tune prompts there); compare with a baseline run."""
    from pedclip.eval.prompts import resolve_prompt_set
    from pedclip.eval.rescore import rescore as run_rescore

    if not prompt and not prompts:
        raise PedclipError(
            "give prompts with --prompt 'normal=...' --prompt 'pneumonia=...' or --prompts SET"
        )
    store = state(ctx).store(create=False)
    pset = resolve_prompt_set(prompts, prompt, state(ctx).home)
    encoder = _prompt_encoder(ctx, store, model, weights, runtime, pset.texts)
    out = run_rescore(
        store,
        encoder,
        dataset,
        pset,
        split=split,
        baseline_run=against,
        protocol=protocol,
        bootstrap=_bootstrap(resamples, 0),
        save_run=save_run,
        allow_leakage=allow_leakage,
    )
    if as_json:
        emit_json({**out.as_dict(max_flips), "saved": save_run})
        return
    _print_result(out.result, save_run)
    if out.comparison is not None:
        _print_comparison(out.comparison.as_dict(max_flips), f"against {against}")


def _print_comparison(doc: dict, title: str) -> None:
    rows = [
        {
            "metric": k,
            "delta": d.get("value"),
            "95% CI": f"{d['lo']:+.4f} to {d['hi']:+.4f}" if "lo" in d else "",
            "note": d.get("reason", ""),
        }
        for k, d in doc["deltas"].items()
    ]
    print_table(rows, title=f"{title}: change on {doc['n_common']} common cases")
    typer.echo(f"{doc['n_flipped']} cases flipped: {doc['n_fixed']} now right, {doc['n_broken']} now wrong")
    if doc["flipped"]:
        print_table(doc["flipped"], title="flipped cases")


def probe(
    ctx: typer.Context,
    model: Model,
    train: str = typer.Option(..., "--train", help="dataset whose train split fits the probe (val picks C)"),
    evaluate: str = typer.Option(
        None, "--eval", help="dataset evaluated on its test split (default: --train)"
    ),
    shots: int = typer.Option(None, "--shots", "-k", help="few-shot: k training cases per class"),
    seeds: int = typer.Option(5, "--seeds", help="few-shot: draws averaged"),
    resamples: Resamples = 1000,
    weights: Weights = None,
    no_save: NoSave = False,
    as_json: AsJson = False,
) -> None:
    """Logistic-regression probe on cached embeddings (C chosen on validation by AUROC); few-shot with -k."""
    from pedclip.eval.evaluation import save
    from pedclip.eval.probe import ProbeConfig, fewshot_eval, probe_eval

    store = state(ctx).store(create=False)
    encoder = _model_ref(ctx, store, model, weights, "cpu")
    config = ProbeConfig(seeds=tuple(range(seeds)), bootstrap=_bootstrap(resamples, 0))
    if shots:
        result = fewshot_eval(store, encoder, train, evaluate, shots, config)
    else:
        result = probe_eval(store, encoder, train, evaluate, config)
    if not no_save:
        save(store, result)
    if as_json:
        emit_json({**result.as_dict(), "saved": not no_save})
        return
    cfg = result.run["config"]
    extra = (
        [{"k": cfg["k"], "seeds": len(cfg["seeds"]), "auroc_sd": cfg["sd"].get("auroc")}]
        if shots
        else [{"C": cfg["C"], "chosen_by": cfg["selection"], "n_train": cfg["n_train"]}]
    )
    _print_result(result, not no_save, extra)


def knn(
    ctx: typer.Context,
    model: Model,
    train: str = typer.Option(..., "--train", help="dataset whose train split holds the reference cases"),
    evaluate: str = typer.Option(
        None, "--eval", help="dataset evaluated on its test split (default: --train)"
    ),
    k: int = typer.Option(10, "--k", "-k", help="neighbors per case"),
    unweighted: bool = typer.Option(
        False, "--unweighted", help="plain majority share (default: cosine-weighted)"
    ),
    resamples: Resamples = 1000,
    weights: Weights = None,
    no_save: NoSave = False,
    as_json: AsJson = False,
) -> None:
    """kNN vote over cached embeddings (FAISS neighbors when the index can serve them)."""
    from pedclip.eval.evaluation import save
    from pedclip.eval.knn import KnnConfig, knn_eval

    if k < 1:
        raise PedclipError(f"--k must be at least 1; got {k}")
    store = state(ctx).store(create=False)
    encoder = _model_ref(ctx, store, model, weights, "cpu")
    config = KnnConfig(k=k, weighted=not unweighted, bootstrap=_bootstrap(resamples, 0))
    result = knn_eval(store, encoder, train, evaluate, config)
    if not no_save:
        save(store, result)
    if as_json:
        emit_json({**result.as_dict(), "saved": not no_save})
        return
    _print_result(result, not no_save, [{"neighbors": result.run["config"]["neighbors"], "k": k}])


@prompts_app.command("list")
def prompts_list(ctx: typer.Context, as_json: AsJson = False) -> None:
    """The shipped prompt sets and those saved from the prompt lab under this home."""
    from pedclip.eval.prompts import list_prompt_sets

    rows = [
        {
            "name": p.name,
            "mode": p.mode,
            "classes": ", ".join(f"{k} ({len(v)})" for k, v in p.classes.items()),
            "description": p.description,
        }
        for p in list_prompt_sets(state(ctx).home, saved=True)
    ]
    emit_json(rows) if as_json else print_table(rows, title="prompt sets")


@prompts_app.command("show")
def prompts_show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help=PROMPTS_HELP),
    as_json: AsJson = False,
) -> None:
    """Every prompt of a set, by class."""
    from pedclip.eval.prompts import load_prompt_set

    pset = load_prompt_set(name, state(ctx).home)
    if as_json:
        emit_json(pset.as_dict())
        return
    typer.echo(f"{pset.name}: {pset.description} (mode {pset.mode}, positive class {pset.positive})")
    for cls, texts in pset.classes.items():
        typer.echo(f"[{cls}] {len(texts)} prompts")
        for text in texts:
            typer.echo(f"  {text!r}")


def register(app: typer.Typer) -> None:
    from pedclip.cli.evaluate_runs import compare, paper, report, runs_app

    app.command("zeroshot")(zeroshot)
    app.command("rescore")(rescore)
    app.command("probe")(probe)
    app.command("knn")(knn)
    app.command("paper")(paper)
    app.command("report")(report)
    app.command("compare")(compare)
    app.add_typer(prompts_app, name="prompts", help="list and show prompt sets")
    app.add_typer(runs_app, name="runs", help="list and show evaluation runs")
