"""The dashboard's door: who may open it and whether it may write. Pure functions; no streamlit here.

Bound to a loopback address the dashboard is as private as the machine. Bound to anything else it needs a
token (`--token`, or one generated and printed at start), passed to the server in the environment (never on
a command line that `ps` shows) and checked before any page renders. `--read-only` serves browsing only:
no saved runs, no cached prompts, no uploads.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets

TOKEN_ENV = "PEDCLIP_DASHBOARD_TOKEN"
READ_ONLY_ENV = "PEDCLIP_DASHBOARD_READ_ONLY"
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost; anything else (0.0.0.0, a LAN address, a hostname) is the network."""
    if host.strip().lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def door_token(host: str, token: str | None) -> str | None:
    """The token the server will require: the one given, a new random one off loopback, else None."""
    if token:
        return token
    return None if is_loopback(host) else secrets.token_urlsafe(24)


def admits(expected: str | None, given: object) -> bool:
    """Whether a request carrying `given` may see the dashboard (constant-time comparison)."""
    if not expected:
        return True
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def expected_token() -> str | None:
    return os.environ.get(TOKEN_ENV) or None


def read_only() -> bool:
    return os.environ.get(READ_ONLY_ENV, "").strip().lower() in ("1", "true", "yes")
