"""Evaluation and training runs, their per-case predictions and per-epoch curves."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd

from pedclip.errors import PedclipError
from pedclip.store.db import Store, dumps

RUN_COLUMNS = (
    "run_id",
    "kind",
    "protocol",
    "model",
    "fingerprint",
    "train_dataset",
    "eval_dataset",
    "split",
    "config",
    "metrics",
    "status",
)


def new_run_id(kind: str) -> str:
    """Sortable and unique: kind, UTC time, random suffix."""
    return f"{kind}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def save_run(store: Store, run: dict, predictions: pd.DataFrame | None = None) -> str:
    """Insert or replace a run and (when given) its predictions: dataset, case_id, score (P(positive)),
    predicted, label, and optionally auc_score (the protocol's AUC score where it is not `score`)."""
    values = [run.get(c) for c in RUN_COLUMNS]
    values[RUN_COLUMNS.index("config")] = dumps(run.get("config") or {})
    values[RUN_COLUMNS.index("metrics")] = dumps(run.get("metrics") or {})
    values[RUN_COLUMNS.index("status")] = run.get("status") or "done"
    run_id = run["run_id"]
    with store.write() as con:
        con.execute("DELETE FROM runs WHERE run_id = ?", [run_id])
        con.execute(
            f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})",
            values,
        )
        if predictions is not None:
            frame = predictions[["dataset", "case_id", "score", "predicted", "label"]].copy()
            frame["auc_score"] = predictions.get("auc_score")
            con.register("frame", frame.astype({"auc_score": "float64"}))
            con.execute("DELETE FROM predictions WHERE run_id = ?", [run_id])
            con.execute(
                "INSERT INTO predictions (run_id, dataset, case_id, score, predicted, label, auc_score) "
                "SELECT ?, dataset, case_id, score, predicted, label, auc_score FROM frame",
                [run_id],
            )
    return run_id


def save_epoch(store: Store, run_id: str, epoch: int, metrics: dict) -> None:
    with store.write() as con:
        con.execute("INSERT OR REPLACE INTO epochs VALUES (?, ?, ?)", [run_id, epoch, dumps(metrics)])


def runs_frame(store: Store, kinds: Sequence[str] | None = None) -> pd.DataFrame:
    """All runs, newest first, config and metrics still JSON text."""
    query = "SELECT * FROM runs"
    params: list = []
    if kinds:
        query += " WHERE list_contains(?, kind)"
        params.append(list(kinds))
    with store.read() as con:
        return con.execute(query + " ORDER BY created DESC, run_id DESC", params).df()


def get_run(store: Store, run_id: str) -> dict:
    """One run with config and metrics decoded; a prefix that names one run is accepted."""
    with store.read() as con:
        cursor = con.execute("SELECT * FROM runs WHERE starts_with(run_id, ?) ORDER BY run_id", [run_id])
        rows = cursor.fetchall()
        columns = [d[0] for d in cursor.description]
    exact = [r for r in rows if r[0] == run_id]
    if exact:
        rows = exact
    if not rows:
        raise PedclipError(f"unknown run {run_id!r}; list runs with `pedclip runs list`")
    if len(rows) > 1:
        raise PedclipError(f"run id {run_id!r} matches {len(rows)} runs; give more of it")
    run = dict(zip(columns, rows[0], strict=True))
    run["config"] = json.loads(run["config"])
    run["metrics"] = json.loads(run["metrics"])
    return run


def predictions_frame(store: Store, run_id: str) -> pd.DataFrame:
    with store.read() as con:
        return con.execute(
            "SELECT * FROM predictions WHERE run_id = ? ORDER BY dataset, case_id", [run_id]
        ).df()


def run_cases_frame(store: Store, run_id: str) -> pd.DataFrame:
    """A run's predictions joined to their cases (path, member, patient, split, attributes ...) in one query."""
    with store.read() as con:
        return con.execute(
            "SELECT p.run_id, p.dataset, p.case_id, p.score, p.predicted, p.label, p.auc_score, c.* EXCLUDE (dataset, case_id, "
            "label, image_key) FROM predictions p LEFT JOIN cases c USING (dataset, case_id) WHERE p.run_id = ? "
            "ORDER BY p.dataset, p.case_id",
            [run_id],
        ).df()


def case_predictions_frame(store: Store, dataset: str, case_ids: Sequence[str]) -> pd.DataFrame:
    """Every run's prediction for these cases of `dataset`, newest run first: case_id, run_id, kind, model,
    score, predicted, label, and the run's protocol, fingerprint, train/eval dataset, split and config (JSON)."""
    with store.read() as con:
        return con.execute(
            "SELECT p.case_id, p.run_id, r.kind, r.model, p.score, p.predicted, p.label, r.protocol, "
            "r.fingerprint, r.train_dataset, r.eval_dataset, r.split, r.config FROM predictions p "
            "JOIN runs r USING (run_id) WHERE p.dataset = ? AND list_contains(?, p.case_id) "
            "ORDER BY r.created DESC, r.run_id DESC, p.case_id",
            [dataset, list(case_ids)],
        ).df()


def finished_runs(store: Store, kind: str, parent_fingerprint: str) -> list[dict]:
    """Finished runs of `kind` whose config records this parent fingerprint, newest first, decoded."""
    with store.read() as con:
        cursor = con.execute(
            "SELECT * FROM runs WHERE kind = ? AND status = 'done' "
            "AND json_extract_string(config, '$.parent_fingerprint') = ? ORDER BY created DESC, run_id DESC",
            [kind, parent_fingerprint],
        )
        rows, columns = cursor.fetchall(), [d[0] for d in cursor.description]
    runs = [dict(zip(columns, row, strict=True)) for row in rows]
    for run in runs:
        run["config"], run["metrics"] = json.loads(run["config"]), json.loads(run["metrics"])
    return runs


def epochs_frame(store: Store, run_id: str) -> pd.DataFrame:
    with store.read() as con:
        frame = con.execute(
            "SELECT epoch, metrics FROM epochs WHERE run_id = ? ORDER BY epoch", [run_id]
        ).df()
    if frame.empty:
        return frame
    return pd.concat([frame[["epoch"]], pd.DataFrame([json.loads(m) for m in frame["metrics"]])], axis=1)
