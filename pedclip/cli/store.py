"""`pedclip store ...`: check the store's invariants and repair what is safe to repair."""

from __future__ import annotations

import typer

from pedclip.cli.common import emit_json, state

app = typer.Typer(no_args_is_help=True)


@app.command("check")
def check_command(
    ctx: typer.Context,
    repair: bool = typer.Option(False, "--repair", help="do the safe repairs, then check again"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document"),
) -> None:
    """Verify the store (vectors, runs, FAISS indexes, pixel cache, temporary files); exit 1 on a problem."""
    from pedclip.store.check import check_store

    report = check_store(state(ctx).store(create=False), repair=repair)
    if as_json:
        emit_json(report.as_dict())
    else:
        for done in report.repaired:
            action, count = next((k, v) for k, v in done.items() if k != "check")
            typer.echo(f"repaired: {done['check']}: {action} {count}")
        for finding in report.findings:
            typer.echo(finding.line())
        problems = len(report.problems)
        typer.echo("store ok" if report.ok else f"{problems} problem{'s' * (problems != 1)} found")
    if not report.ok:
        raise SystemExit(1)
