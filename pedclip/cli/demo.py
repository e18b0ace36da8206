"""`pedclip demo`: the whole study offline on synthetic data."""

from __future__ import annotations

import typer

from pedclip.cli.common import emit_json, state
from pedclip.cli.options import AsJson, Seed


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    ctx: typer.Context,
    quick: bool = typer.Option(False, "--quick", help="small sizes and schedules: a two-minute smoke run"),
    seed: Seed = 0,
    as_json: AsJson = False,
) -> None:
    """Synthesise two pediatric sites and an adult corpus, pretrain demo:clip and demo:medclip, run the study
    (zero-shot, fine-tuning, transfer, probes) in both protocols, and write the tables and the HTML report."""
    from pedclip.demo.run import DemoConfig, run_demo

    store = state(ctx).store()
    say = (lambda _m: None) if as_json else (lambda m: typer.echo(f"· {m}", err=True))
    result = run_demo(store, DemoConfig.for_mode(quick, seed), say)
    if as_json:
        emit_json(result.as_dict())
        return
    steps = ", ".join(f"{name} {s:.0f}" for name, s in result.seconds.items() if name != "total")
    typer.echo(f"\ndone in {result.seconds['total']:.0f} s ({steps}); store: {store.paths.db}")
    for path in result.tables:
        if path.suffix == ".md":
            typer.echo(path.read_text())
    typer.echo(f"tables:  {result.tables[0].parent}")
    typer.echo(f"report:  {result.report}  (open it in a browser)")
    typer.echo(f"dashboard: pedclip --home {store.paths.home} dashboard   (or: make dashboard)")
