"""User-facing errors: one sentence naming the bad value and the fix; the CLI prints them without a traceback."""

from __future__ import annotations

import errno
import importlib
from pathlib import Path
from types import ModuleType


class PedclipError(Exception):
    """An error the user can fix; its message is one sentence naming the bad value and the fix."""


class MissingExtraError(PedclipError):
    """An optional dependency is not installed."""


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency lazily, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is not installed; install it with: pip install 'pedclip[{extra}]'"
        ) from exc


class DiskFullError(PedclipError):
    """A write failed because the disk (or quota) is full; what was committed before is intact."""

    def __init__(self, path: str | Path):
        super().__init__(
            f"the disk holding {path} is full; free some space, then rerun the same command: "
            "it resumes where it stopped (everything committed before is intact)"
        )


def is_disk_full(exc: BaseException) -> bool:
    """An OSError for a full disk or quota, or a database error that reports one (DuckDB's own IOException)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "no space left on device" in str(exc).lower() or "disk quota exceeded" in str(exc).lower()
