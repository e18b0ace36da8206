"""User-facing errors: one sentence naming the bad value and the fix; the CLI prints them without a traceback."""

from __future__ import annotations

import importlib
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
