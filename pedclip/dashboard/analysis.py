"""What only the pages need besides `pedclip.eval`: 2-D projections, slice columns and how numbers read.

Every metric, curve, slice, comparison and leakage finding comes from `pedclip.eval`; no streamlit here.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from pedclip.eval.metrics import Metric


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """(n, 2) coordinates on the two leading principal components (signs fixed so reruns agree)."""
    if len(vectors) == 0:
        return np.zeros((0, 2))
    centred = vectors - vectors.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:2]
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    coords = centred @ (components * signs[:, None]).T
    return coords if coords.shape[1] == 2 else np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))


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
