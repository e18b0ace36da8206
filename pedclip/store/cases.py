"""Datasets, cases and ingest errors: every query parameterised, nothing formatted into SQL."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import pandas as pd

from pedclip.errors import PedclipError
from pedclip.store.db import Store, dumps

CASE_COLUMNS = (
    "case_id",
    "path",
    "member",
    "image_sha256",
    "width",
    "height",
    "mode",
    "label",
    "patient_id",
    "split",
    "source_split",
    "report",
    "attributes",
)


def case_uid(dataset: str, case_id: str) -> int:
    """A stable non-negative 63-bit id for a case, used as the FAISS id (never row order)."""
    digest = hashlib.sha256(f"{dataset}\0{case_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass(frozen=True)
class CaseRow:
    """One image of a dataset as a reader produces it."""

    case_id: str
    path: str
    image_sha256: str
    width: int
    height: int
    mode: str
    label: int | None
    patient_id: str | None = None
    split: str | None = None
    member: str | None = None
    source_split: str | None = None
    report: str | None = None
    attributes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class IngestError:
    """A file of a source that could not be used, and why (one readable sentence)."""

    path: str
    reason: str
    member: str | None = None


@dataclass(frozen=True)
class UpsertSummary:
    added: int
    updated: int
    unchanged: int
    removed: int

    def as_dict(self) -> dict:
        return asdict(self)


def upsert_dataset(
    store: Store,
    name: str,
    source_kind: str,
    root: str,
    class_names: Sequence[str],
    attributes: dict | None = None,
) -> None:
    with store.write() as con:
        con.execute(
            """INSERT INTO datasets (name, source_kind, root, class_names, attributes)
               VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (name) DO UPDATE SET source_kind = excluded.source_kind, root = excluded.root,
                 class_names = excluded.class_names, attributes = excluded.attributes,
                 updated = now()""",
            [name, source_kind, root, json.dumps(list(class_names)), dumps(attributes or {})],
        )


def _row_values(dataset: str, row: CaseRow) -> list:
    values = [getattr(row, column) for column in CASE_COLUMNS]
    values[CASE_COLUMNS.index("attributes")] = dumps(row.attributes)
    return [dataset, case_uid(dataset, row.case_id), *values]


def replace_cases(store: Store, dataset: str, rows: Iterable[CaseRow]) -> UpsertSummary:
    """Make the dataset's cases exactly `rows`: insert new ones, update changed ones, drop vanished ones."""
    incoming = {row.case_id: _row_values(dataset, row) for row in rows}
    columns = ("dataset", "uid", *CASE_COLUMNS)
    with store.write() as con:
        existing = {
            r[2]: list(r)
            for r in con.execute(
                f"SELECT {', '.join(columns)} FROM cases WHERE dataset = ?", [dataset]
            ).fetchall()
        }
        new = [v for cid, v in incoming.items() if cid not in existing]
        changed = [v for cid, v in incoming.items() if cid in existing and existing[cid] != v]
        gone = [cid for cid in existing if cid not in incoming]
        if changed or gone:
            con.executemany(
                "DELETE FROM cases WHERE dataset = ? AND case_id = ?",
                [[dataset, cid] for cid in [v[2] for v in changed] + gone],
            )
        if new or changed:
            con.register("incoming", pd.DataFrame(new + changed, columns=list(columns)))
            names = ", ".join(columns)
            con.execute(
                f"INSERT INTO cases ({names}, image_key) SELECT {names}, md5_number(image_sha256) FROM incoming"
            )
            con.unregister("incoming")
        con.execute("UPDATE datasets SET updated = now() WHERE name = ?", [dataset])
    unchanged = len(incoming) - len(new) - len(changed)
    return UpsertSummary(added=len(new), updated=len(changed), unchanged=unchanged, removed=len(gone))


def replace_ingest_errors(store: Store, dataset: str, errors: Iterable[IngestError]) -> int:
    rows = [[dataset, e.path, e.member, e.reason] for e in errors]
    with store.write() as con:
        con.execute("DELETE FROM ingest_errors WHERE dataset = ?", [dataset])
        if rows:
            con.executemany(
                "INSERT INTO ingest_errors (dataset, path, member, reason) VALUES (?, ?, ?, ?)", rows
            )
    return len(rows)


def set_splits(store: Store, dataset: str, splits: dict[str, str]) -> None:
    """Assign new splits {case_id: split}; the source's own split stays in `source_split`."""
    with store.write() as con:
        con.register("frame", pd.DataFrame({"case_id": list(splits), "split": list(splits.values())}))
        con.execute(
            """UPDATE cases SET split = frame.split FROM frame
               WHERE cases.dataset = ? AND cases.case_id = frame.case_id""",
            [dataset],
        )


def list_datasets(store: Store) -> pd.DataFrame:
    with store.read() as con:
        return con.execute(
            """SELECT d.name, d.source_kind, d.root, d.class_names, d.attributes, d.created, d.updated,
                      count(c.case_id) AS n_cases,
                      (SELECT count(*) FROM ingest_errors e WHERE e.dataset = d.name) AS n_errors
               FROM datasets d LEFT JOIN cases c ON c.dataset = d.name
               GROUP BY ALL ORDER BY d.name"""
        ).df()


def get_dataset(store: Store, name: str) -> dict:
    """The dataset's row as a dict (class_names and attributes decoded); a clear error when unknown."""
    with store.read() as con:
        cursor = con.execute("SELECT * FROM datasets WHERE name = ?", [name])
        row = cursor.fetchone()
        columns = [d[0] for d in cursor.description]
        if row is None:
            known = [r[0] for r in con.execute("SELECT name FROM datasets ORDER BY name").fetchall()]
    if row is None:
        hint = f"known datasets: {', '.join(known)}" if known else "ingest one with `pedclip data ingest`"
        raise PedclipError(f"unknown dataset {name!r}; {hint}")
    info = dict(zip(columns, row, strict=True))
    info["class_names"] = json.loads(info["class_names"])
    info["attributes"] = json.loads(info["attributes"])
    return info


SPLIT_COLUMNS = ("split", "source_split")  # the assigned split (e.g. patient-grouped) | the source's own


def split_filter(split_column: str, alias: str = "") -> str:
    """The SQL condition keeping rows whose `split_column` is in the list parameter (a checked column name)."""
    if split_column not in SPLIT_COLUMNS:
        raise ValueError(f"unknown split column {split_column!r}; expected one of {SPLIT_COLUMNS}")
    return f" AND list_contains(?, {alias}{split_column})"


def has_source_splits(store: Store, dataset: str) -> bool:
    """Whether any case of the dataset kept a split from its source (folders or a split column)."""
    with store.read() as con:
        row = con.execute(
            "SELECT count(*) FROM cases WHERE dataset = ? AND source_split IS NOT NULL", [dataset]
        ).fetchone()
    return bool(row[0])


def cases_frame(
    store: Store, dataset: str, splits: Sequence[str] | None = None, split_column: str = "split"
) -> pd.DataFrame:
    """The dataset's cases ordered by case_id (attributes still JSON text), optionally only some splits of
    `split_column` (split: as assigned; source_split: as the source gave them)."""
    query = "SELECT * EXCLUDE (image_key) FROM cases WHERE dataset = ?"
    params: list = [dataset]
    if splits:
        query += split_filter(split_column)
        params.append(list(splits))
    with store.read() as con:
        return con.execute(query + " ORDER BY case_id", params).df()


def split_leak_counts(store: Store, dataset: str) -> tuple[int, int]:
    """(patients in more than one split, identical images in more than one split) of the dataset's assigned
    splits: the audit's leakage verdict (eval/leakage.py `audit_cases`, which lists them) counted by DuckDB,
    since a `sound` rescore checks it on every call (1M cases: ~0.9 s in pandas)."""
    with store.read() as con:
        row = con.execute(
            """WITH known AS (SELECT patient_id, image_key, split FROM cases WHERE dataset = ? AND split IS NOT NULL)
               SELECT (SELECT count(*) FROM (SELECT patient_id FROM known WHERE patient_id IS NOT NULL
                                             GROUP BY patient_id HAVING count(DISTINCT split) > 1)),
                      (SELECT count(*) FROM (SELECT image_key FROM known
                                             GROUP BY image_key HAVING count(DISTINCT split) > 1))""",
            [dataset],
        ).fetchone()
    return int(row[0]), int(row[1])


def cases_by_id(store: Store, dataset: str, case_ids: Sequence[str]) -> pd.DataFrame:
    """These cases of `dataset` (every column, attributes still JSON text), ordered by case_id."""
    with store.read() as con:
        return con.execute(
            "SELECT * EXCLUDE (image_key) FROM cases WHERE dataset = ? AND list_contains(?, case_id) "
            "ORDER BY case_id",
            [dataset, list(case_ids)],
        ).df()


def ingest_errors_frame(store: Store, dataset: str | None = None) -> pd.DataFrame:
    with store.read() as con:
        if dataset is None:
            return con.execute("SELECT * FROM ingest_errors ORDER BY dataset, path").df()
        return con.execute("SELECT * FROM ingest_errors WHERE dataset = ? ORDER BY path", [dataset]).df()


def attributes_frame(cases: pd.DataFrame) -> pd.DataFrame:
    """The JSON `attributes` column of a cases frame expanded into one column per attribute."""
    if cases.empty:
        return pd.DataFrame(index=cases.index)
    return pd.DataFrame([json.loads(a) for a in cases["attributes"]], index=cases.index)


def update_dataset_attributes(store: Store, name: str, updates: dict) -> dict:
    """Merge `updates` into a dataset's JSON attributes; returns the merged attributes."""
    attributes = {**get_dataset(store, name)["attributes"], **updates}
    with store.write() as con:
        con.execute(
            "UPDATE datasets SET attributes = ?, updated = now() WHERE name = ?",
            [dumps(attributes), name],
        )
    return attributes


def case_splits(store: Store, dataset: str) -> dict[str, str | None]:
    """{case_id: split} as currently assigned."""
    with store.read() as con:
        rows = con.execute("SELECT case_id, split FROM cases WHERE dataset = ?", [dataset]).fetchall()
    return dict(rows)


def split_names(store: Store, dataset: str, split_column: str = "split") -> list[str]:
    """The splits the dataset's cases are in by `split_column`, sorted (none before `pedclip data split`)."""
    if split_column not in SPLIT_COLUMNS:
        raise ValueError(f"unknown split column {split_column!r}; expected one of {SPLIT_COLUMNS}")
    with store.read() as con:
        rows = con.execute(
            f"SELECT DISTINCT {split_column} FROM cases WHERE dataset = ? AND {split_column} IS NOT NULL"
            f" ORDER BY {split_column}",
            [dataset],
        ).fetchall()
    return [r[0] for r in rows]
