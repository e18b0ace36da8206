"""What only the pages need besides `pedclip.eval`: attribute columns, slice columns and how numbers read.

Every metric, curve, slice, comparison and leakage finding comes from `pedclip.eval`; no streamlit here.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from pedclip.eval.metrics import Metric


def expand_attributes(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its JSON `attributes` column expanded to `attr:<key>` columns (text kept)."""
    if "attributes" not in frame or frame.empty:
        return frame
    parsed = pd.DataFrame([json.loads(a or "{}") for a in frame["attributes"]], index=frame.index)
    parsed = parsed.rename(columns=lambda c: f"attr:{c}").astype(str)
    return pd.concat([frame, parsed], axis=1)


def slice_columns(frame: pd.DataFrame) -> list[str]:
    """The columns a user can slice by: split, dataset, label, patient-free attributes."""
    fixed = [c for c in ("split", "dataset") if c in frame]
    return fixed + sorted(c for c in frame.columns if c.startswith("attr:"))


def format_metric(metric: Metric, ci: bool = True) -> str:
    """'value [low, high]' (or 'value' without `ci`), or 'n/a (reason)' when the run stored why it is undefined."""
    if metric.value is None:
        return f"n/a ({metric.reason})" if metric.reason else "n/a"
    return format_ci(metric.value, metric.lo if ci else None, metric.hi if ci else None)


def format_rate(value: float | None) -> str:
    """A rate with 3 decimals, 'n/a' when undefined (never 'nan')."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}"


def format_distance(distance: float) -> str:
    """Neighbor distance (1 - cosine) with enough digits to tell close neighbors apart."""
    if distance != distance:
        return "n/a"
    return f"{distance:.4f}" if abs(distance) >= 1e-3 or distance == 0 else f"{distance:.3e}"


def format_ci(value: float | None, low: float | None, high: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def partner_runs(runs: pd.DataFrame, run_id: str) -> list[str]:
    """The runs that scored the same films as `run_id` (same eval_dataset and split), other than it: those of
    another model (fingerprint) first, each group in the table's order (newest first)."""
    key = runs[["eval_dataset", "split"]].fillna("").astype(str)
    mine = runs["run_id"] == run_id
    if not mine.any():
        return []
    same_films = (key == key[mine].iloc[0]).all(axis=1) & ~mine
    partners = runs[same_films]
    same_model = partners["fingerprint"].fillna("") == str(runs.loc[mine, "fingerprint"].fillna("").iat[0])
    return partners["run_id"].iloc[np.argsort(same_model.to_numpy(), kind="stable")].tolist()


def format_p(p: float | None) -> str:
    """A p-value with 3 decimals, '<0.001' below that, 'n/a' when the test was not defined."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def format_delta(value: float | None) -> str:
    """A signed difference with 3 decimals, 'n/a' when undefined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:+.3f}"
