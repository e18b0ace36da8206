"""Usage errors from the command-line parser as one line naming the bad option or value and the fix (exit 2).

typer ships its own copy of click (`typer._click` since typer 0.22), so its exceptions are not click's: both
hierarchies are matched here, whichever the installed typer raises.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

USAGE_EXIT = 2


def click_exception_modules() -> list:
    """The `exceptions` modules of every click the installed typer may raise from (its own copy, then click)."""
    modules = []
    for name in ("typer._click.exceptions", "typer.exceptions", "click.exceptions"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            continue
    return modules


def _is(exc: BaseException, class_name: str) -> bool:
    return any(
        isinstance(exc, getattr(m, class_name)) for m in click_exception_modules() if hasattr(m, class_name)
    )


def parser_error(exc: BaseException, argv: Sequence[str]) -> tuple[str | None, int] | None:
    """(one line to print or None when the exception printed itself, exit code) for the parser's own
    exceptions (usage errors, aborts, bad files); None for anything else."""
    if _is(exc, "NoArgsIsHelpError"):  # `pedclip data` alone: the group's help is the answer
        exc.show()
        return None, int(getattr(exc, "exit_code", USAGE_EXIT))
    if _is(exc, "Abort"):
        return "aborted", 130
    if not _is(exc, "ClickException"):
        return None
    message = " ".join(exc.format_message().split())
    if _is(exc, "BadParameter") and not _is(exc, "MissingParameter"):
        message = _with_value(exc, message, argv)
    if not _is(exc, "UsageError"):
        return message, int(getattr(exc, "exit_code", 1) or 1)
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "pedclip"
    return f"{message.rstrip('.')}; see `{where} --help`", USAGE_EXIT


def _with_value(exc: BaseException, message: str, argv: Sequence[str]) -> str:
    """Name the value the user typed for the option, which typer's own message leaves out."""
    param = getattr(exc, "param", None)
    opts = list(getattr(param, "opts", None) or [])
    value = _typed_value(opts, argv)
    if value is None or repr(value) in message:
        return message
    return message.replace(": ", f" ({value!r}): ", 1) if ": " in message else f"{message} (got {value!r})"


def _typed_value(opts: Sequence[str], argv: Sequence[str]) -> str | None:
    """The last value given to any of `opts` in argv (`--opt value` or `--opt=value`)."""
    found = None
    for i, token in enumerate(argv):
        for opt in opts:
            if token == opt and i + 1 < len(argv):
                found = argv[i + 1]
            elif token.startswith(f"{opt}="):
                found = token[len(opt) + 1 :]
    return found
