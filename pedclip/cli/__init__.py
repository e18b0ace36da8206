"""The `pedclip` command. Thin: each subcommand parses its flags and calls one library function.

Command groups live one module each beside this file (data, models, embed, evaluate, train, dashboard)
so that no module grows past a screenful of wiring.
"""

from __future__ import annotations

import sys
import traceback

import typer

from pedclip.cli.common import State, fail
from pedclip.errors import PedclipError

app = typer.Typer(
    name="pedclip",
    help="Evaluate CLIP-family models on pediatric chest X-rays from one local embedding store.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    home: str = typer.Option(None, "--home", help="working directory (default $PEDCLIP_HOME or ./data)"),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks on errors"),
    trust_torchscript: bool = typer.Option(
        False,
        "--trust-torchscript",
        help="load TorchScript weights files that are not OpenAI's CLIP files (their code runs when loaded)",
    ),
) -> None:
    ctx.obj = State(home=home, debug=debug, trust_torchscript=trust_torchscript)


def _register() -> None:
    # Imported here, not at module top, so that `import pedclip.cli` stays light until a command runs.
    from pedclip.cli import dashboard, data, demo, embed, evaluate, lookup, models, store, train

    app.add_typer(data.app, name="data", help="ingest, synthesise, split, audit and list datasets")
    app.add_typer(models.app, name="models", help="list model specs and their weights")
    app.add_typer(store.app, name="store", help="check the store's invariants and repair them")
    for module in (embed, evaluate, lookup, train, demo, dashboard):
        module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit 1, tracebacks only with --debug."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        _register()
        app(args=argv, prog_name="pedclip", standalone_mode=False)
    except PedclipError as exc:
        if debug:
            traceback.print_exc()
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted; rerun the same command to resume where it stopped", code=130)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else fail(exc.code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence for a user-facing tool
        from pedclip.cli.usage import parser_error

        parsed = parser_error(exc, argv)
        if parsed is not None:
            if debug:
                traceback.print_exc()
            line, code = parsed
            return fail(line, code=code) if line else code
        if debug:
            traceback.print_exc()
            return 1
        return fail(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
