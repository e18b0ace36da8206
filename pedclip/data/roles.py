"""Which of the study's datasets a dataset stands for: data set at ingest or with `pedclip data set`, never
guessed from its name. The role picks the study's per-dataset hyperparameters (audit section 1, Table 3:
weight decay 0.1 / 1e-2 on UCSD, 1e-5 / 1e-4 on ORI)."""

from __future__ import annotations

from pedclip.errors import PedclipError

ROLES = ("ucsd", "ori", "none")
ROLE_ATTRIBUTE = "stands_for"


def check_role(role: str) -> str:
    """The role in lower case; a one-line error naming the choices otherwise."""
    value = (role or "").strip().lower()
    if value not in ROLES:
        raise PedclipError(f"--stands-for {role!r} is not valid; use one of: {', '.join(ROLES)}")
    return value


def stands_for(dataset: dict) -> str:
    """The role recorded on a dataset row (its `attributes`); "none" when none was set."""
    value = str((dataset.get("attributes") or {}).get(ROLE_ATTRIBUTE) or "none").lower()
    return value if value in ROLES else "none"
