"""Listing, showing and comparing stored runs (what `pedclip runs` prints)."""

from __future__ import annotations

from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.compare import Comparison, compare_predictions
from pedclip.eval.record import RunRecord
from pedclip.eval.slices import metrics_by, with_case_attributes
from pedclip.store import Store
from pedclip.store.runs import get_run, predictions_frame, runs_frame

SUMMARY_METRICS = ("auroc", "accuracy", "recall", "specificity")


def run_rows(
    store: Store, kinds: list[str] | None = None, dataset: str | None = None, limit: int = 50
) -> list[dict]:
    """Newest runs first: id, kind, protocol, model, datasets, split, status and headline metrics."""
    frame = runs_frame(store, kinds or None)
    if dataset:
        frame = frame[(frame["eval_dataset"] == dataset) | (frame["train_dataset"] == dataset)]
    rows = []
    for rec in frame.head(limit).to_dict(orient="records"):
        record = RunRecord.from_row(rec)
        row = {
            k: rec[k]
            for k in (
                "run_id",
                "kind",
                "protocol",
                "model",
                "train_dataset",
                "eval_dataset",
                "split",
                "status",
            )
        }
        for name in SUMMARY_METRICS:
            row[name] = record.metrics[name].value if name in record.metrics else None
        row["created"] = str(rec["created"])
        rows.append(row)
    return rows


def show_run(
    store: Store, run_id: str, by: str | None = None, bootstrap: BootstrapConfig = BootstrapConfig()
) -> dict:
    """One run: its row, config, metrics (with CIs), prediction counts and, with `by`, metrics per group."""
    run = get_run(store, run_id)
    preds = predictions_frame(store, run["run_id"])
    out = {**run, "created": str(run["created"]), "n_predictions": len(preds)}
    if by and not preds.empty:
        frame = with_case_attributes(store, preds[preds["label"].notna()])
        records = metrics_by(frame, by, bootstrap).to_dict(orient="records")
        out["slices"] = [
            {k: None if isinstance(v, float) and v != v else v for k, v in r.items()} for r in records
        ]
    return out


def compare_runs(
    store: Store, run_a: str, run_b: str, bootstrap: BootstrapConfig = BootstrapConfig()
) -> dict:
    """B against A on their common cases: metric deltas with paired bootstrap CIs and flipped cases."""
    a, b = get_run(store, run_a), get_run(store, run_b)
    pa = predictions_frame(store, a["run_id"])
    pb = with_case_attributes(store, predictions_frame(store, b["run_id"]))
    comparison: Comparison = compare_predictions(pa[pa["label"].notna()], pb[pb["label"].notna()], bootstrap)
    return {"a": _brief(a), "b": _brief(b), **comparison.as_dict()}


def _brief(run: dict) -> dict:
    return {k: run[k] for k in ("run_id", "kind", "protocol", "model", "eval_dataset", "split")}
