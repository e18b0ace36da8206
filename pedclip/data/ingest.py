"""Ingest a source into the store: cases, errors and the dataset row, idempotently, in one transaction."""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pandas as pd

from pedclip.data import roles
from pedclip.data.readers import open_source
from pedclip.data.roles import ROLE_ATTRIBUTE, check_role
from pedclip.data.splits import SplitSpec, make_splits
from pedclip.errors import PedclipError
from pedclip.store import Store
from pedclip.store.cases import (
    CaseRow,
    IngestError,
    case_splits,
    cases_frame,
    get_dataset,
    replace_cases,
    replace_ingest_errors,
    set_splits,
    update_dataset_attributes,
    upsert_dataset,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
Wrap = Callable[[Iterable, int, str], Iterable]


@dataclass(frozen=True)
class IngestSummary:
    """What an ingest found and changed; `written` is False when nothing usable was found."""

    dataset: str
    source_kind: str
    root: str
    cases: int
    errors: int
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    by_split: dict = field(default_factory=dict)
    by_label: dict = field(default_factory=dict)
    error_examples: list = field(default_factory=list)  # the first few {path, member, reason}
    skipped: int = 0  # images outside the layout that was read (e.g. a nested copy of the Kermany tree)
    resplit: bool = False  # the dataset's made splits were redone because its cases changed
    written: bool = True
    seconds: float = 0.0

    @property
    def usable(self) -> bool:
        return self.cases > 0

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "usable": self.usable}


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise PedclipError(
            f"dataset name {name!r} is not allowed; use 1-64 letters, digits, '.', '_' or '-' starting with a letter or digit"
        )
    return name


def _partition(records: Iterable) -> tuple[list[CaseRow], list[IngestError]]:
    rows, errors = [], []
    for record in records:
        (rows if isinstance(record, CaseRow) else errors).append(record)
    return rows, errors


def _previous(store: Store, name: str) -> tuple[dict | None, dict]:
    """(the stored split spec when splits were made, {case_id: split}) of an existing dataset."""
    try:
        attributes = get_dataset(store, name)["attributes"]
    except PedclipError:
        return None, {}
    spec = attributes.get("splits")
    if not spec or spec.get("keep_source", True):
        return None, {}
    return spec, case_splits(store, name)


def _previous_role(store: Store, name: str) -> str | None:
    try:
        return roles.stands_for(get_dataset(store, name))
    except PedclipError:
        return None


def set_role(store: Store, name: str, role: str) -> dict:
    """Record which study dataset `name` stands for (ucsd | ori | none); returns its attributes."""
    return update_dataset_attributes(store, name, {ROLE_ATTRIBUTE: check_role(role)})


def ingest(
    store: Store,
    source: str | os.PathLike,
    name: str,
    fmt: str = "auto",
    *,
    workers: int | None = None,
    max_pixels: int | None = None,
    progress: Wrap | None = None,
    stands_for: str | None = None,
) -> IngestSummary:
    """Read `source` into dataset `name`; re-ingesting the same source changes nothing. `stands_for`
    (ucsd | ori | none) records which study dataset it plays; None keeps the role it already had."""
    started = time.perf_counter()
    check_name(name)
    role = check_role(stands_for) if stands_for is not None else None
    opened = open_source(source, fmt, workers=workers, max_pixels=max_pixels)
    records = progress(opened.records, opened.total, f"ingest {name}") if progress else opened.records
    rows, errors = _partition(records)
    base = dict(
        dataset=name,
        source_kind=opened.kind,
        root=str(opened.root),
        cases=len(rows),
        errors=len(errors),
        by_split=_count(r.split for r in rows),
        by_label=_count(r.label for r in rows),
        error_examples=[_error_dict(e) for e in errors[:10]],
        skipped=int(opened.attributes.get("images_outside_layout", 0)),
    )
    if not rows:  # leave an existing dataset untouched rather than empty it
        return IngestSummary(**base, written=False, seconds=round(time.perf_counter() - started, 3))
    with store.write():
        spec, kept = _previous(store, name)
        role = role or _previous_role(store, name)
        if spec:  # keep made splits of unchanged cases, so that only real changes count as updates
            rows = [dataclasses.replace(r, split=kept[r.case_id]) if r.case_id in kept else r for r in rows]
        upsert_dataset(
            store,
            name,
            opened.kind,
            str(opened.root),
            opened.class_names,
            {**opened.attributes, "splits": spec or {"keep_source": True}, ROLE_ATTRIBUTE: role or "none"},
        )
        changes = replace_cases(store, name, rows)
        replace_ingest_errors(store, name, errors)
        resplit = bool(spec) and (changes.added + changes.updated + changes.removed) > 0
        if resplit:
            set_splits(store, name, make_splits(cases_frame(store, name), SplitSpec.from_dict(spec)))
            base["by_split"] = _count(cases_frame(store, name)["split"])
    return IngestSummary(
        **base, **changes.as_dict(), resplit=resplit, seconds=round(time.perf_counter() - started, 3)
    )


def _count(values: Iterable) -> dict:
    counts = Counter(
        "(none)" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v) for v in values
    )
    return dict(sorted(counts.items()))


def _error_dict(error: IngestError) -> dict:
    return {"path": error.path, "member": error.member, "reason": error.reason}


def split_dataset(store: Store, name: str, spec: SplitSpec) -> dict:
    """Assign splits by `spec`, record the spec with the dataset, and return counts per split."""
    cases = cases_frame(store, name)
    if cases.empty:
        raise PedclipError(f"dataset {name!r} has no cases; ingest a source first")
    splits = make_splits(cases, spec)
    with store.write():
        set_splits(store, name, splits)
        update_dataset_attributes(store, name, {"splits": spec.as_dict()})
    return _count(splits.values())
