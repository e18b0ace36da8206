"""`pedclip paper`, `pedclip report` and `pedclip runs list|show|compare` (registered by cli/evaluate.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from pedclip.cli.common import emit_json, load_model, print_table, state
from pedclip.cli.options import AsJson, Device, MaxFlips, Resamples, Runtime

runs_app = typer.Typer(no_args_is_help=True, help="list, show and compare evaluation runs")


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
    device: Device = "cpu",
    runtime: Runtime = "auto",
    as_json: AsJson = False,
) -> None:
    """The study's Tables 1-4: published numbers, `paper` protocol and `sound` protocol side by side."""
    from pedclip.eval.bootstrap import BootstrapConfig
    from pedclip.eval.paper import PaperConfig, paper_tables, write_tables
    from pedclip.eval.report import write_report

    store = state(ctx).store(create=False)
    config = PaperConfig(
        ucsd=ucsd, ori=ori, clip=clip, medclip=medclip, bootstrap=BootstrapConfig(n_resamples=resamples)
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


@runs_app.command("compare")
def runs_compare(
    ctx: typer.Context,
    run_a: str = typer.Argument(..., help="baseline run"),
    run_b: str = typer.Argument(..., help="run compared with it"),
    max_flips: MaxFlips = 20,
    as_json: AsJson = False,
) -> None:
    """B minus A on their common cases: metric deltas with paired bootstrap CIs, and flipped cases."""
    from pedclip.cli.evaluate import _print_comparison
    from pedclip.eval.runs import compare_runs

    doc = compare_runs(state(ctx).store(create=False), run_a, run_b)
    doc["flipped"] = doc["flipped"][:max_flips]
    if as_json:
        emit_json(doc)
        return
    _print_comparison(doc, f"{doc['b']['run_id']} vs {doc['a']['run_id']}")
