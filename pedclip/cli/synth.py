"""`pedclip data synth`: synthetic chest radiograph sites for offline use."""

from __future__ import annotations

from pathlib import Path

import typer

from pedclip.cli.common import emit_json, interactive, print_table, progress, state
from pedclip.cli.options import AsJson, Seed


def register(data_app: typer.Typer) -> None:
    """Add the synth command to the `data` group."""
    data_app.command("synth")(synth)


def synth(
    ctx: typer.Context,
    out: Path = typer.Option(
        None, "--out", help="folder to write the sites into (default <home>/datasets/synth)"
    ),
    site: list[str] = typer.Option(None, "--site", help="site to write; repeat for several (default: all)"),
    n: int = typer.Option(None, "--n", help="images per site (default: each site's own, e.g. peds-a 600)"),
    size: int = typer.Option(256, "--size", help="long side of the largest films, in pixels"),
    seed: Seed = 0,
    preview: Path = typer.Option(None, "--preview", help="also write a labelled contact sheet PNG here"),
    preview_only: bool = typer.Option(
        False, "--preview-only", help="only make the --preview sheet from the set already in --out"
    ),
    as_json: AsJson = False,
) -> None:
    """Draw synthetic chest radiograph sites (two pediatric, one adult) with reports and a manifest.csv each."""
    from pedclip.config import Paths
    from pedclip.data.synth import SITES, SynthConfig, make_preview, synthesize
    from pedclip.errors import PedclipError

    out = out if out is not None else Paths.at(state(ctx).home).datasets / "synth"
    sites = tuple(site) if site else tuple(SITES)
    if preview_only and preview is None:
        raise PedclipError("--preview-only needs --preview FILE.png naming the sheet to write")
    summaries = []
    if not preview_only:
        config = SynthConfig(out=out, sites=sites, n=n, size=size, seed=seed)
        show = interactive(as_json)
        summaries = synthesize(config, lambda items, total, label: progress(items, total, label, show))
    sheet = make_preview(out, preview, sites=sites if site else None, seed=seed) if preview else None
    document = {
        "out": str(out),
        "seed": seed,
        "size": size,
        "sites": [s.to_dict() for s in summaries],
        "preview": str(sheet) if sheet else None,
    }
    if as_json:
        emit_json(document)
        return
    print_table([summary_row(s) for s in summaries], title=f"synthetic sites in {out}")
    if sheet:
        typer.echo(f"contact sheet: {sheet}")


def summary_row(summary) -> dict:
    """One table row: images, patients and per-split counts as normal/pneumonia."""
    splits = {split: f"{c['0']}/{c['1']}" for split, c in summary.counts.items()}
    return {
        "site": summary.site,
        "layout": summary.layout,
        "images": summary.images,
        "patients": summary.patients,
        "train n/p": splits["train"],
        "val n/p": splits["val"],
        "test n/p": splits["test"],
        "seconds": summary.seconds,
    }
