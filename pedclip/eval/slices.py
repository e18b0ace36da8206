"""Metrics by any case attribute: a cases column (split, dataset, patient_id) or a key of the JSON
`attributes` (site, pathogen, view, sex ...); `age_band` is derived from an `age` attribute in years."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from pedclip.errors import PedclipError
from pedclip.eval.bootstrap import BootstrapConfig, metrics_with_ci
from pedclip.eval.evaluation import auc_score_of
from pedclip.eval.metrics import ALL_METRICS
from pedclip.store import Store
from pedclip.store.cases import cases_frame
from pedclip.store.runs import predictions_frame

AGE_BANDS = ((0, 1, "<1"), (1, 5, "1-4"), (5, 10, "5-9"), (10, 19, "10-18"), (19, 200, "19+"))
MISSING = "(missing)"


def age_band(age: object) -> str:
    """Pediatric age band of an age in years."""
    try:
        years = float(age)
    except (TypeError, ValueError):
        return MISSING
    return next((name for lo, hi, name in AGE_BANDS if lo <= years < hi), MISSING)


def slice_values(predictions: pd.DataFrame, by: str) -> pd.Series:
    """The group of each prediction row for attribute `by` (missing values grouped as "(missing)")."""
    if by in predictions.columns and by != "attributes":
        return predictions[by].astype(object).where(predictions[by].notna(), MISSING).astype(str)
    if "attributes" not in predictions.columns:
        raise PedclipError(f"cannot slice by {by!r}: the predictions carry no case attributes")
    attrs = [json.loads(a) if isinstance(a, str) else (a or {}) for a in predictions["attributes"]]
    if by == "age_band":
        return pd.Series([age_band(a.get("age")) for a in attrs], index=predictions.index)
    if not any(by in a for a in attrs):
        known = sorted({k for a in attrs for k in a} | {"split", "dataset", "age_band"})
        raise PedclipError(f"no case has attribute {by!r}; known: {', '.join(known)}")
    return pd.Series([str(a.get(by, MISSING)) for a in attrs], index=predictions.index)


def metrics_by(
    predictions: pd.DataFrame, by: str, bootstrap: BootstrapConfig = BootstrapConfig()
) -> pd.DataFrame:
    """One row per group: by, group, n, n_positive and every metric (value, lo, hi, reason)."""
    groups = slice_values(predictions, by)
    rows = []
    for group in sorted(groups.unique()):
        part = predictions[groups.to_numpy() == group]
        pids = part["patient_id"].to_numpy() if "patient_id" in part else None
        metrics, _ = metrics_with_ci(
            part["label"].to_numpy(), auc_score_of(part), part["predicted"].to_numpy(), pids, bootstrap
        )
        row = {"by": by, "group": group, "n": len(part), "n_positive": int(part["label"].sum())}
        for name in ALL_METRICS:
            m = metrics[name]
            row.update({name: m.value, f"{name}_lo": m.lo, f"{name}_hi": m.hi, f"{name}_reason": m.reason})
        rows.append(row)
    return pd.DataFrame(rows)


PATHOGENS = ("bacteria", "virus")  # Kermany's file names and the synthetic sites' attribute


def pathogen_auroc(predictions: pd.DataFrame, bootstrap: BootstrapConfig = BootstrapConfig()) -> pd.DataFrame:
    """AUROC of each pathogen's pneumonia films against every normal film of the same site (bacterial vs
    normal, viral vs normal): grouping by pathogen alone leaves one class per group, so no AUROC.

    `predictions` has dataset, label, score, predicted, patient_id and a `pathogen` column or the JSON
    `attributes`. One row per (dataset, pathogen) with films of that pathogen: dataset, contrast, n, n_normal,
    n_pathogen, auroc, auroc_lo, auroc_hi, auroc_reason, resampled. Empty when no film names a pathogen.
    """
    if "pathogen" not in predictions.columns and "attributes" not in predictions.columns:
        return pd.DataFrame()
    pathogen = slice_values(predictions, "pathogen") if _names_pathogens(predictions) else None
    if pathogen is None:
        return pd.DataFrame()
    rows = []
    for dataset, part in predictions.groupby("dataset", sort=True):
        normal = part["label"].to_numpy() == 0
        for name in PATHOGENS:
            sick = (part["label"].to_numpy() == 1) & (pathogen.loc[part.index].to_numpy() == name)
            if not sick.any():
                continue
            rows.append(_contrast_row(str(dataset), name, part[normal | sick], bootstrap))
    return pd.DataFrame(rows)


def _names_pathogens(predictions: pd.DataFrame) -> bool:
    try:
        return bool(slice_values(predictions, "pathogen").isin(PATHOGENS).any())
    except PedclipError:  # no case carries the attribute
        return False


def _contrast_row(dataset: str, pathogen: str, part: pd.DataFrame, bootstrap: BootstrapConfig) -> dict:
    pids = part["patient_id"].to_numpy() if "patient_id" in part else None
    metrics, units = metrics_with_ci(
        part["label"].to_numpy(), part["score"].to_numpy(), part["predicted"].to_numpy(), pids, bootstrap
    )
    m = metrics["auroc"]
    return {
        "dataset": dataset,
        "contrast": f"{pathogen} vs normal",
        "n": len(part),
        "n_normal": int((part["label"] == 0).sum()),
        "n_pathogen": int((part["label"] == 1).sum()),
        "auroc": m.value,
        "auroc_lo": m.lo,
        "auroc_hi": m.hi,
        "auroc_reason": m.reason,
        "resampled": units.kind,
    }


def with_case_attributes(store: Store, predictions: pd.DataFrame) -> pd.DataFrame:
    """Stored predictions joined with their cases' split, patient id and attributes."""
    parts = []
    for dataset, part in predictions.groupby("dataset", sort=False):
        cases = cases_frame(store, dataset)[["case_id", "split", "patient_id", "attributes"]]
        parts.append(
            part.drop(columns=[c for c in ("split", "patient_id", "attributes") if c in part]).merge(
                cases, on="case_id", how="left"
            )
        )
    out = pd.concat(parts, ignore_index=True) if parts else predictions
    out["label"] = out["label"].astype(np.int64)
    return out


def pathogen_rows(store: Store, runs: list[tuple[str, dict]], bootstrap: BootstrapConfig) -> list[dict]:
    """Per-pathogen AUROC rows for the paper tables: `runs` is (regime, table row) pairs; only `sound` rows
    with a run id count (the pooled `paper` cells mix training films in)."""
    out = []
    for regime, row in runs:
        if row.get("source") != "sound" or not row.get("run_id"):
            continue
        predictions = with_case_attributes(store, predictions_frame(store, row["run_id"]))
        for c in pathogen_auroc(predictions, bootstrap).to_dict("records"):
            ci = "" if c["auroc_lo"] is None else f"{c['auroc_lo']:.3f}-{c['auroc_hi']:.3f}"
            out.append(
                {
                    "dataset": row["dataset"],
                    "method": row["method"],
                    "regime": regime,
                    "contrast": c["contrast"],
                    "n (normal/pathogen)": f"{c['n_normal']}/{c['n_pathogen']}",
                    "AUC": None if c["auroc"] is None else round(c["auroc"], 4),
                    "AUC 95% CI": ci + (" (resampled by case)" if ci and c["resampled"] == "case" else ""),
                    "run_id": row["run_id"],
                }
            )
    return out
