"""`pedclip data ...`: ingest, synthesise, split, audit, list and show datasets."""

from __future__ import annotations

import typer

from pedclip.cli import synth
from pedclip.cli.common import emit_json, interactive, print_table, progress, state
from pedclip.cli.options import AsJson, Seed
from pedclip.errors import PedclipError

app = typer.Typer(no_args_is_help=True)

synth.register(app)  # `pedclip data synth` lives in cli/synth.py

FORMAT_HELP = "auto | kermany | study | folders | csv | npz | dicom"
STANDS_FOR_HELP = (
    "which study dataset this one plays: ucsd | ori | none (picks the study's per-dataset hyperparameters; "
    "default: keep the role it had, none for a new dataset)"
)


@app.command("ingest")
def ingest_command(
    ctx: typer.Context,
    source: str = typer.Argument(..., help="a folder, a CSV manifest, an .npz or a .dcm file"),
    name: str = typer.Option(..., "--name", help="the dataset's name in the store"),
    fmt: str = typer.Option("auto", "--format", help=FORMAT_HELP),
    workers: int = typer.Option(None, "--workers", help="decoding processes (default: all cores)"),
    stands_for: str = typer.Option(None, "--stands-for", help=STANDS_FOR_HELP),
    as_json: AsJson = False,
) -> None:
    """Read a source into the store (re-ingesting the same source changes nothing)."""
    from pedclip.data.ingest import ingest
    from pedclip.data.roles import check_role

    if stands_for is not None:
        check_role(stands_for)  # before reading a single file
    show = interactive(as_json)
    wrap = (lambda items, total, label: progress(items, total, label, show)) if show else None
    summary = ingest(
        state(ctx).store(), source, name, fmt, workers=workers, progress=wrap, stands_for=stands_for
    )
    if as_json:
        emit_json(summary.as_dict())
    else:
        _print_ingest(summary)
    if not summary.usable:
        first = f" (first: {summary.error_examples[0]['reason']})" if summary.error_examples else ""
        raise PedclipError(
            f"no usable images found in {source}: {summary.errors} file(s) failed{first}; "
            "check the path and --format"
        )


def _print_ingest(summary) -> None:
    verb = "ingested" if summary.written else "found nothing usable in"
    typer.echo(
        f"{verb} {summary.root} as {summary.dataset!r} ({summary.source_kind}): {summary.cases} cases, "
        f"{summary.errors} errors in {summary.seconds:.1f} s"
    )
    if summary.written:
        typer.echo(
            f"  added {summary.added}, updated {summary.updated}, unchanged {summary.unchanged}, "
            f"removed {summary.removed}" + (" (splits redone)" if summary.resplit else "")
        )
    typer.echo(f"  splits {summary.by_split}  labels {summary.by_label}")
    if summary.skipped:
        typer.echo(
            f"  skipped {summary.skipped} images outside the {summary.source_kind} layout (e.g. a nested copy)"
        )
    for error in summary.error_examples:
        typer.echo(
            f"  error: {error['path']}{'#' + error['member'] if error['member'] else ''}: {error['reason']}"
        )


@app.command("split")
def split_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="dataset name"),
    ratios: str = typer.Option("64/16/20", "--ratios", help="train/val/test shares"),
    seed: Seed = 0,
    balance: str = typer.Option(
        None, "--balance", help="study-ucsd | study-ori | equal | normal=N,pneumonia=M"
    ),
    keep_source: bool = typer.Option(False, "--keep-source", help="restore the source's own splits"),
    as_json: AsJson = False,
) -> None:
    """Make patient-grouped, label-stratified, seeded splits (or restore the source's)."""
    from pedclip.data.ingest import split_dataset
    from pedclip.data.splits import SplitSpec, parse_balance, parse_ratios

    parse_balance(balance)  # reject a bad value before touching the store
    spec = SplitSpec(parse_ratios(ratios), seed, balance, keep_source)
    counts = split_dataset(state(ctx).store(create=False), name, spec)
    if as_json:
        emit_json({"dataset": name, "spec": spec.as_dict(), "counts": counts})
    else:
        typer.echo(f"split {name!r}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@app.command("set")
def set_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="dataset name"),
    stands_for: str = typer.Option(..., "--stands-for", help="ucsd | ori | none"),
    as_json: AsJson = False,
) -> None:
    """Record which study dataset NAME stands for (UCSD or ORI: the study's hyperparameters for it)."""
    from pedclip.data.ingest import set_role
    from pedclip.data.roles import ROLE_ATTRIBUTE

    attributes = set_role(state(ctx).store(create=False), name, stands_for)
    if as_json:
        emit_json({"dataset": name, ROLE_ATTRIBUTE: attributes[ROLE_ATTRIBUTE]})
    else:
        typer.echo(f"{name!r} stands for {attributes[ROLE_ATTRIBUTE]}")


@app.command("audit")
def audit_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="dataset name"),
    strict: bool = typer.Option(
        False, "--strict", help="exit non-zero when patients or images leak across splits"
    ),
    limit: int = typer.Option(20, "--limit", help="how many leaks to list"),
    as_json: AsJson = False,
) -> None:
    """Class balance per split, patients shared across splits, identical images across splits."""
    from pedclip.eval.leakage import audit_cases, leakage_message
    from pedclip.store.cases import cases_frame, get_dataset

    store = state(ctx).store(create=False)
    info = get_dataset(store, name)
    report = audit_cases(cases_frame(store, name), tuple(info["class_names"]))
    if as_json:
        emit_json({"dataset": name, **report.as_dict(limit)})
    else:
        _print_audit(name, report, limit)
    if strict and report.leakage:
        raise PedclipError(leakage_message(name, report))


def _print_audit(name: str, report, limit: int) -> None:
    print_table([{"split": s, **c} for s, c in report.balance.items()], title=f"{name}: class balance")
    typer.echo(f"patients in more than one split: {len(report.shared_patients)}")
    for patient, splits in list(report.shared_patients.items())[:limit]:
        typer.echo(f"  {patient}: {', '.join(splits)}")
    typer.echo(f"identical images in more than one split: {len(report.cross_split_duplicates)}")
    for dup in report.cross_split_duplicates[:limit]:
        typer.echo(f"  {dup['image_sha256'][:12]}: {', '.join(dup['case_ids'])}")
    typer.echo(
        f"identical images within a split (extra copies): {report.within_split_duplicate_cases}; "
        f"identical images with different labels: {report.conflicting_label_duplicates}"
    )
    typer.echo("leakage: " + ("YES" if report.leakage else "none found"))


@app.command("list")
def list_command(ctx: typer.Context, as_json: AsJson = False) -> None:
    """The datasets in the store."""
    from pedclip.store.cases import list_datasets

    store = state(ctx).store()
    frame = list_datasets(store)
    rows = frame[["name", "source_kind", "n_cases", "n_errors", "root", "updated"]].to_dict("records")
    if as_json:
        emit_json(rows)
    else:
        print_table(rows, title="datasets")


@app.command("show")
def show_command(ctx: typer.Context, name: str = typer.Argument(...), as_json: AsJson = False) -> None:
    """Counts by split and label, patients, attributes and ingest errors of one dataset."""
    from pedclip.data.describe import describe_dataset

    info = describe_dataset(state(ctx).store(create=False), name)
    if as_json:
        emit_json(info)
        return
    typer.echo(
        f"{name}: {info['source_kind']} from {info['root']}, {info['n_cases']} cases, "
        f"{info['n_errors']} ingest errors; splits: {info['split_spec']}"
    )
    print_table(info["counts"], title="cases by split and label")
    typer.echo(
        f"patients: {info['patients']['n_patients']} known, {info['patients']['n_with_several_images']} "
        f"with several images, {info['patients']['cases_without_patient']} cases without a patient id"
    )
    for attribute, top in info["attributes"].items():
        typer.echo(f"  {attribute}: " + ", ".join(f"{k} ({v})" for k, v in top.items()))
    for error in info["errors"]:
        typer.echo(f"  error: {error['path']}: {error['reason']}")
