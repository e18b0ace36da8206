"""What every command group shares: the global state, JSON output, tables and progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import typer

from pedclip.store import Store

T = TypeVar("T")


@dataclass(frozen=True)
class State:
    home: str | None
    debug: bool
    trust_torchscript: bool = False  # --trust-torchscript: load any TorchScript weights file (it runs code)

    def store(self, create: bool = True) -> Store:
        return Store.open(self.home, create=create)


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, State) else State(home=None, debug=False)


def load_model(
    ctx: typer.Context, spec: str, *, weights=None, device="cpu", dtype="fp32", runtime="auto", towers="both"
):
    """The registry's Encoder for a command: bf16 refused where the CPU would only emulate it; towers="text"
    for commands that only encode prompts."""
    from pedclip.models import load_encoder
    from pedclip.models.runtime import check_dtype_hardware

    check_dtype_hardware(dtype, device or "cpu")
    return load_encoder(
        spec,
        weights=weights,
        device=device or "cpu",
        dtype=dtype,
        home=state(ctx).home,
        runtime=runtime,
        towers=towers,
        trust_torchscript=state(ctx).trust_torchscript,
    )


def fail(message: str, code: int = 1) -> int:
    typer.echo(f"error: {message}", err=True)
    return code


def emit_json(document: object) -> None:
    """One JSON document on stdout."""
    typer.echo(json.dumps(document, indent=2, default=_json_default))


def _json_default(value: object) -> object:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def interactive(as_json: bool) -> bool:
    """Progress bars only on a terminal and never under --json."""
    return not as_json and sys.stderr.isatty()


def progress(items: Iterable[T], total: int | None, label: str, show: bool) -> Iterator[T]:
    """Wrap an iterable in a rich progress bar on stderr when `show`."""
    if not show:
        yield from items
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(label, total=total)
        for item in items:
            yield item
            bar.advance(task)


def print_table(rows: list[dict], title: str | None = None) -> None:
    """A rich table of dict rows on stdout (human output)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    if not rows:
        Console().print(f"{title}: none" if title else "none")
        return
    for column in rows[0]:
        table.add_column(str(column))
    for row in rows:
        table.add_row(*[_cell(v) for v in row.values()])
    Console().print(table)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)
