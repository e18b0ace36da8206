"""Pure computations behind the pages: arrays and frames in, numbers and frames out; no I/O, no streamlit.

Headline metrics with confidence intervals come from `pedclip.eval.metrics` (through `access`); what is
here is what only a dashboard needs: live operating points, curve points, reliability bins, slices,
flips against a baseline, 2-D projections.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve


@dataclass(frozen=True)
class OperatingPoint:
    """Confusion counts and rates of scores thresholded at `threshold` (predict 1 when score >= it)."""

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def sensitivity(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def specificity(self) -> float:
        return self.tn / (self.tn + self.fp) if self.tn + self.fp else math.nan

    @property
    def accuracy(self) -> float:
        total = self.tp + self.fp + self.tn + self.fn
        return (self.tp + self.tn) / total if total else math.nan

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    def reason(self, name: str) -> str | None:
        """Why a rate is undefined at this threshold (None when it is defined)."""
        empty = {
            "sensitivity": (self.tp + self.fn, "no pneumonia case"),
            "specificity": (self.tn + self.fp, "no normal case"),
            "precision": (self.tp + self.fp, "no case predicted positive"),
            "accuracy": (self.tp + self.fp + self.tn + self.fn, "no cases"),
        }
        total, why = empty[name]
        return None if total else why

    def matrix(self) -> np.ndarray:
        """[[tn, fp], [fn, tp]]: rows are the true label, columns the prediction (scikit-learn's order)."""
        return np.array([[self.tn, self.fp], [self.fn, self.tp]])


def operating_point(labels: np.ndarray, scores: np.ndarray, threshold: float) -> OperatingPoint:
    """Counts at one threshold; labels (n,) in {0, 1}, scores (n,) P(positive)."""
    labels = np.asarray(labels).astype(int)
    predicted = np.asarray(scores) >= threshold
    positive = labels == 1
    return OperatingPoint(
        threshold=float(threshold),
        tp=int(np.sum(predicted & positive)),
        fp=int(np.sum(predicted & ~positive)),
        tn=int(np.sum(~predicted & ~positive)),
        fn=int(np.sum(~predicted & positive)),
    )


def both_classes(labels: np.ndarray) -> bool:
    return len(np.unique(np.asarray(labels))) == 2


def roc_points(labels: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """False- and true-positive rates along the thresholds (empty when one class is missing)."""
    if not both_classes(labels):
        return pd.DataFrame(columns=["fpr", "tpr", "threshold"])
    fpr, tpr, thresholds = roc_curve(labels, scores)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thresholds})


def pr_points(labels: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    if not both_classes(labels):
        return pd.DataFrame(columns=["recall", "precision"])
    precision, recall, _ = precision_recall_curve(labels, scores)
    return pd.DataFrame({"recall": recall, "precision": precision})


def reliability_bins(labels: np.ndarray, scores: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Mean predicted probability vs observed positive rate per equal-width bin (empty bins dropped)."""
    scores = np.clip(np.asarray(scores, dtype=float), 0.0, 1.0)
    bins = np.minimum((scores * n_bins).astype(int), n_bins - 1)
    frame = pd.DataFrame({"bin": bins, "score": scores, "label": np.asarray(labels, dtype=float)})
    grouped = frame.groupby("bin").agg(
        predicted=("score", "mean"), observed=("label", "mean"), n=("label", "size")
    )
    return grouped.reset_index(drop=True)


def safe_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(roc_auc_score(labels, scores)) if both_classes(labels) else math.nan


def slice_table(frame: pd.DataFrame, column: str, threshold: float | None) -> pd.DataFrame:
    """Per value of `column`: n, positives, AUROC, sensitivity, specificity, accuracy (frame has label, score)."""
    from pedclip.eval.curves import decisions
    from pedclip.eval.curves import operating_point as counts

    rows = []
    for value, part in frame.dropna(subset=["label"]).groupby(column, dropna=False):
        point = counts(part["label"].to_numpy(), decisions(part, threshold))
        rows.append(
            {
                column: value,
                "n": len(part),
                "positives": int(part["label"].sum()),
                "auroc": safe_auroc(part["label"].to_numpy(), part["score"].to_numpy()),
                "sensitivity": point.sensitivity,
                "specificity": point.specificity,
                "accuracy": point.accuracy,
            }
        )
    return pd.DataFrame(rows)


def errors_of(frame: pd.DataFrame, threshold: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(false positives by descending score, false negatives by ascending score): most confident first."""
    labelled = frame.dropna(subset=["label"])
    predicted = labelled["score"] >= threshold
    false_pos = labelled[predicted & (labelled["label"] == 0)].sort_values(
        ["score", "case_id"], ascending=[False, True]
    )
    false_neg = labelled[~predicted & (labelled["label"] == 1)].sort_values(["score", "case_id"])
    return false_pos, false_neg


def flipped_cases(current: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """Cases whose prediction differs between two runs: case_id, label, both scores, which way it went."""
    keys = ["dataset", "case_id"]
    merged = current[[*keys, "label", "score", "predicted"]].merge(
        baseline[[*keys, "score", "predicted"]], on=keys, suffixes=("", "_baseline")
    )
    flipped = merged[merged["predicted"] != merged["predicted_baseline"]].copy()
    correct_now = flipped["predicted"] == flipped["label"]
    correct_before = flipped["predicted_baseline"] == flipped["label"]
    flipped["change"] = np.select(
        [correct_now & ~correct_before, ~correct_now & correct_before], ["fixed", "broken"], "changed"
    )
    return flipped.sort_values(["change", "case_id"]).reset_index(drop=True)


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


def headline(metrics: dict, name: str) -> tuple[float | None, float | None, float | None]:
    """(value, low, high) for a metric in any of the shapes a run's metrics JSON may use.

    Understood: {name: v}, {name: v, name_ci: [lo, hi]}, {name: {value|point|estimate, ci|low/high}},
    {name: [v, lo, hi]}, and any of these under a "test" or "metrics" key.
    """
    for nest in ("metrics", "test"):
        if name not in metrics and isinstance(metrics.get(nest), dict):
            metrics = metrics[nest]
    value = metrics.get(name)
    low = high = None
    if isinstance(value, dict):
        ci = value.get("ci") or [value.get("low", value.get("lo")), value.get("high", value.get("hi"))]
        value = next((value[k] for k in ("value", "point", "estimate", "mean") if k in value), None)
        low, high = (ci + [None, None])[:2]
    elif isinstance(value, list | tuple) and len(value) == 3:
        value, low, high = value
    ci = metrics.get(f"{name}_ci")
    if isinstance(ci, list | tuple) and len(ci) == 2:
        low, high = ci
    return _number(value), _number(low), _number(high)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def headline_reason(metrics: dict, name: str) -> str | None:
    """The reason a run stored for an undefined metric (`{name: {"reason": ...}}`), if any."""
    for nest in ("metrics", "test"):
        if name not in metrics and isinstance(metrics.get(nest), dict):
            metrics = metrics[nest]
    value = metrics.get(name)
    reason = value.get("reason") if isinstance(value, dict) else None
    return str(reason) if reason else None


def format_metric(metrics: dict, name: str, ci: bool = True) -> str:
    """'value [low, high]' (or 'value' without `ci`), or 'n/a (reason)' when the run stored why it is undefined."""
    value, low, high = headline(metrics, name)
    text = format_ci(value, low, high) if ci else format_ci(value, None, None)
    reason = headline_reason(metrics, name)
    return f"n/a ({reason})" if text == "n/a" and reason else text


def format_rate(value: float | None) -> str:
    """A rate with 3 decimals, 'n/a' when undefined (never 'nan')."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}"


def format_distance(distance: float) -> str:
    """Neighbour distance (1 - cosine) with enough digits to tell close neighbours apart."""
    if distance != distance:
        return "n/a"
    return f"{distance:.4f}" if abs(distance) >= 1e-3 or distance == 0 else f"{distance:.3e}"


def format_ci(value: float | None, low: float | None, high: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def split_label_counts(cases: pd.DataFrame, class_names: list[str]) -> pd.DataFrame:
    """Cases per split (rows) and label (columns named by class; 'unlabelled' for NULL), with totals."""
    names = {i: n for i, n in enumerate(class_names)}
    labels = cases["label"].map(
        lambda v: names.get(int(v), str(v)) if v == v and v is not None else "unlabelled"
    )
    table = pd.crosstab(cases["split"].fillna("none"), labels, margins=True, margins_name="total")
    table.columns.name = None
    return table.reset_index().rename(columns={"split": "split"})


def patients_across_splits(cases: pd.DataFrame) -> pd.DataFrame:
    """Patients whose images sit in more than one split (a leak): patient_id, splits, images."""
    known = cases.dropna(subset=["patient_id"])
    grouped = known.groupby("patient_id").agg(
        splits=("split", lambda s: ", ".join(sorted(set(s.dropna())))),
        images=("case_id", "size"),
        n_splits=("split", "nunique"),
    )
    leaks = grouped[grouped["n_splits"] > 1].drop(columns="n_splits")
    return leaks.sort_values("images", ascending=False).reset_index()


def duplicate_images(cases: pd.DataFrame) -> pd.DataFrame:
    """Identical images (same sha256) listed more than once, with the splits and datasets they sit in."""
    dup = cases[cases.duplicated("image_sha256", keep=False)]
    if dup.empty:
        return pd.DataFrame(columns=["image_sha256", "cases", "splits", "datasets"])
    grouped = dup.groupby("image_sha256").agg(
        cases=("case_id", lambda s: ", ".join(s)),
        splits=("split", lambda s: ", ".join(sorted(set(s.dropna())))),
        datasets=("dataset", lambda s: ", ".join(sorted(set(s)))),
    )
    return grouped.reset_index()


def duplicates_across_splits(cases: pd.DataFrame) -> pd.DataFrame:
    """Within one dataset: identical images whose copies sit in different splits (a leak, like `data audit`)."""
    dups = duplicate_images(cases)
    return dups[dups["splits"].str.contains(",", regex=False)].reset_index(drop=True)


def shared_with_other_datasets(cases: pd.DataFrame, all_cases: pd.DataFrame) -> pd.DataFrame:
    """Other datasets holding identical images (same sha256) as `cases`: dataset, images (distinct shas).

    Information, not leakage: two datasets may hold the same films on purpose (e.g. with other texts).
    """
    mine = set(cases["image_sha256"])
    name = cases["dataset"].iat[0] if len(cases) else None
    others = all_cases[(all_cases["dataset"] != name) & all_cases["image_sha256"].isin(mine)]
    counts = others.groupby("dataset")["image_sha256"].nunique()
    return counts.rename("images").reset_index().sort_values(["images", "dataset"], ascending=[False, True])


def run_threshold(run: dict) -> float:
    """The decision threshold a run used (config threshold value), else 0.5."""
    threshold = (run.get("config") or {}).get("threshold", 0.5)
    value = threshold.get("value", 0.5) if isinstance(threshold, dict) else threshold
    return float(value) if isinstance(value, int | float) else 0.5
