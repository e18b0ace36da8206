"""`pedclip paper`, `pedclip report`, `pedclip compare` and `pedclip runs list|show` (registered by cli/evaluate.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pedclip.cli.common import emit_json, load_model, print_table, state
from pedclip.cli.options import AsJson, Device, MaxFlips, Resamples, Runtime, Seed
from pedclip.errors import PedclipError

runs_app = typer.Typer(no_args_is_help=True, help="list and show evaluation runs")


def paper(
    ctx: typer.Context,
    ucsd: str = typer.Option(..., "--ucsd", help="dataset standing for UCSD (Kermany)"),
    ori: str = typer.Option(..., "--ori", help="dataset standing for ORI (the hospital set)"),
    clip: str = typer.Option("openclip:ViT-B-32-quickgelu/openai", "--clip", help="CLIP model spec"),
    medclip: str = typer.Option("medclip:vit", "--medclip", help="MedCLIP model spec"),
    out: str = typer.Option(
        None, "--out", help="folder for tables.md, table*.csv and report.html (default: <home>/reports/paper)"
    ),
    resamples: Resamples = 1000,
    search_seeds: int = typer.Option(
        20, "--prompt-search-seeds", help="replays of the study's MedCLIP prompt-count search (0: skip)"
    ),
    device: Device = "cpu",
    runtime: Runtime = "auto",
    seeds: Annotated[
        str | None,
        typer.Option("--seeds", help="training seeds to take for Tables 3-5, e.g. 0,1,2 (default: all)"),
    ] = None,
    recipe: Annotated[
        list[str] | None,
        typer.Option(
            "--recipe",
            help="only fine-tuning runs whose resolved config has KEY=VALUE, e.g. lr=3e-4 (repeatable)",
        ),
    ] = None,
    loss: Annotated[
        str | None, typer.Option("--loss", help="loss of the sound cells (default: the protocol's)")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """The study's Tables 1-4 (published numbers, `paper` and `sound` protocols side by side) and Table 5,
    CLIP vs MedCLIP head to head; fine-tuning runs are chosen by their recorded config, never by age."""
    from pedclip.cli.train import parse_seeds
    from pedclip.eval.bootstrap import BootstrapConfig
    from pedclip.eval.paper import PaperConfig, paper_tables, write_tables
    from pedclip.eval.report import write_report

    store = state(ctx).store(create=False)
    config = PaperConfig(
        ucsd=ucsd,
        ori=ori,
        clip=clip,
        medclip=medclip,
        bootstrap=BootstrapConfig(n_resamples=resamples),
        prompt_search_seeds=search_seeds,
        seeds=parse_seeds(seeds),
        recipe=parse_recipe(recipe),
        loss=loss,
    )
    result = paper_tables(store, config, lambda spec: load_model(ctx, spec, device=device, runtime=runtime))
    folder = Path(out) if out else store.paths.reports / "paper"
    paths = write_tables(result, folder)
    if result.run_ids:
        paths.append(
            write_report(store, result.run_ids, folder / "report.html", "pedclip: the study", result.tables)
        )
    if as_json:
        emit_json({**result.as_dict(), "files": [str(p) for p in paths]})
        return
    typer.echo(result.markdown())
    typer.echo("wrote " + ", ".join(str(p) for p in paths))


def parse_recipe(items: list[str] | None) -> tuple[tuple[str, object], ...]:
    """["lr=3e-4", "loss=clip"] -> (("lr", 0.0003), ("loss", "clip")); numbers parsed, the rest kept as text."""
    import json

    out = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PedclipError(f"--recipe {item!r} is not KEY=VALUE, e.g. lr=3e-4")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        out.append((key.strip(), parsed))
    return tuple(out)


def report(
    ctx: typer.Context,
    run_ids: list[str] = typer.Argument(..., help="run ids (or unique prefixes)"),
    out: str = typer.Option("report.html", "--out", "-o", help="HTML file to write"),
    title: str = typer.Option("pedclip report", "--title", help="page title"),
    as_json: AsJson = False,
) -> None:
    """A self-contained HTML report (ROC, PR, calibration, confusion, metrics with CIs) that opens offline."""
    from pedclip.eval.report import write_report

    path = write_report(state(ctx).store(create=False), run_ids, out, title)
    if as_json:
        emit_json({"report": str(path), "runs": run_ids})
        return
    typer.echo(f"wrote {path}")


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    kind: list[str] = typer.Option(None, "--kind", help="only these kinds (zeroshot, rescore, probe, ...)"),
    dataset: str = typer.Option(None, "--dataset", help="only runs trained or evaluated on this dataset"),
    limit: int = typer.Option(50, "--limit", help="newest N runs"),
    as_json: AsJson = False,
) -> None:
    """Runs, newest first, with headline metrics."""
    from pedclip.eval.runs import run_rows

    rows = run_rows(state(ctx).store(create=False), kind, dataset, limit)
    emit_json(rows) if as_json else print_table(rows, title="runs")


@runs_app.command("show")
def runs_show(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="run id or unique prefix"),
    by: str = typer.Option(
        None, "--by", help="metrics per group of a case attribute (site, split, view, age_band)"
    ),
    as_json: AsJson = False,
) -> None:
    """One run: config, metrics with CIs, and metrics by attribute with --by."""
    from pedclip.eval.metrics import Metric
    from pedclip.eval.runs import show_run

    doc = show_run(state(ctx).store(create=False), run_id, by)
    if as_json:
        emit_json(doc)
        return
    typer.echo(
        f"{doc['run_id']}: {doc['kind']} {doc['model']} on {doc['eval_dataset']}:{doc['split']} "
        f"({doc['protocol']}), {doc['n_predictions']} predictions, status {doc['status']}"
    )
    threshold = doc["config"].get("threshold", {})
    if threshold:
        typer.echo(
            f"threshold {threshold.get('value')} ({threshold.get('rule')}); score {doc['config'].get('score')}"
        )
    print_table([{"metric": k, "value": Metric.from_dict(v).format()} for k, v in doc["metrics"].items()])
    if doc.get("slices"):
        shown = ("auroc", "accuracy", "recall", "specificity")
        rows = [
            {
                "group": r["group"],
                "n": r["n"],
                "n_positive": r["n_positive"],
                **{m: Metric(r[m], r[f"{m}_reason"], r[f"{m}_lo"], r[f"{m}_hi"]).format(3) for m in shown},
            }
            for r in doc["slices"]
        ]
        print_table(rows, title=f"by {by}")


def compare(
    ctx: typer.Context,
    run_a: Annotated[str, typer.Argument(help="run A (id or unique prefix)")],
    run_b: Annotated[str, typer.Argument(help="run B, scored on the same dataset and split")],
    resamples: Resamples = 1000,
    seed: Seed = 0,
    max_flips: MaxFlips = 20,
    as_json: AsJson = False,
) -> None:
    """A minus B on the cases both scored: AUROC difference with a paired bootstrap CI (patients resampled),
    DeLong's test, sensitivity and specificity at each run's own threshold with McNemar's exact test."""
    from pedclip.eval.bootstrap import BootstrapConfig
    from pedclip.eval.paired_runs import paired_runs

    config = BootstrapConfig(n_resamples=resamples, seed=seed)
    doc = paired_runs(state(ctx).store(create=False), run_a, run_b, config).as_dict(max_flips)
    if as_json:
        emit_json(doc)
        return
    _print_paired(doc)


def _fmt(value, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _print_paired(doc: dict) -> None:
    lo, hi = doc["ci"]
    typer.echo(
        f"A = {doc['a']['run_id']} ({doc['a']['model']}), B = {doc['b']['run_id']} ({doc['b']['model']})"
    )
    typer.echo(
        f"{doc['n']} cases both scored ({doc['n_positive']} positive) on {doc['a']['eval_dataset']}:"
        f"{doc['a']['split']}; dropped {doc['dropped']}; CIs resample {doc['resampled']}s"
    )
    rows = [
        {"": "AUROC", "A": _fmt(doc["auroc_a"]), "B": _fmt(doc["auroc_b"]), "A - B": _fmt(doc["delta_auroc"], True),
         "paired 95% CI": f"{_fmt(lo, True)} to {_fmt(hi, True)}",
         "test": f"DeLong z {_fmt(doc['delong_z'])}, p {_fmt(doc['delong_p'])}"},
    ]  # fmt: skip
    for name in ("sensitivity", "specificity"):
        d = doc[name]
        rows.append(
            {"": name, "A": _fmt(d["a"]), "B": _fmt(d["b"]), "A - B": _fmt(d["delta"], True),
             "paired 95% CI": f"{_fmt(d['ci'][0], True)} to {_fmt(d['ci'][1], True)}",
             "test": f"McNemar exact p {_fmt(d['mcnemar_p'])} ({d['a_right_b_wrong']} vs {d['a_wrong_b_right']})"}
        )  # fmt: skip
    print_table(rows, title="paired comparison (each run at its own threshold)")
    typer.echo(
        f"accuracy: McNemar exact p {_fmt(doc['mcnemar_p'])}; {doc['n_flipped']} cases decided differently: "
        f"{doc['n_a_right']} A right, {doc['n_b_right']} B right"
    )
    for note in doc["notes"]:
        typer.echo(f"note: {note}")
