"""What a run's per-case predictions show: the operating point, ROC, PR and calibration curves, its errors.

Pure functions of prediction frames (dataset, case_id, label, score = P(positive), predicted [, auc_score])
and arrays; the report's and the dashboard's figures are drawn from these (`pedclip.eval.figures`).
A run's own decisions are its stored `predicted` column; a threshold given by a reader re-decides on
P(positive) (`decisions`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pedclip.eval.metrics import ECE_BINS, calibration_bin, confusion_counts, roc_points


@dataclass(frozen=True)
class OperatingPoint:
    """Confusion counts of one set of decisions; `threshold` None means the run's stored predictions."""

    threshold: float | None
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
        """Why a rate is undefined for these decisions (None when it is defined)."""
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


def decisions(predictions: pd.DataFrame, threshold: float | None = None) -> np.ndarray:
    """(n,) 0/1: the run's stored `predicted` when `threshold` is None, else P(positive) >= threshold."""
    if threshold is None:
        return predictions["predicted"].to_numpy().astype(np.int64)
    return (predictions["score"].to_numpy(np.float64) >= threshold).astype(np.int64)


def operating_point(
    labels: np.ndarray, predicted: np.ndarray, threshold: float | None = None
) -> OperatingPoint:
    """Counts of (n,) 0/1 decisions against (n,) 0/1 labels; `threshold` only records where they came from."""
    tp, fp, tn, fn = confusion_counts(np.asarray(labels).astype(int), np.asarray(predicted).astype(int))
    return OperatingPoint(
        threshold=None if threshold is None else float(threshold), tp=tp, fp=fp, tn=tn, fn=fn
    )


def both_classes(labels: np.ndarray) -> bool:
    return len(np.unique(np.asarray(labels))) == 2


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """fpr, tpr, threshold at every distinct score (empty when one class is missing)."""
    if not both_classes(labels):
        return pd.DataFrame(columns=["fpr", "tpr", "threshold"])
    fpr, tpr, thresholds = roc_points(labels, scores)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thresholds})


def pr_curve(labels: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """recall, precision at every distinct score, highest threshold first (empty without both classes)."""
    y, s = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if not both_classes(y):
        return pd.DataFrame(columns=["recall", "precision"])
    order = np.argsort(-s, kind="mergesort")
    ys, ss = y[order] == 1, s[order]
    last = np.r_[ss[1:] != ss[:-1], True]
    tp, fp = np.cumsum(ys)[last], np.cumsum(~ys)[last]
    return pd.DataFrame({"recall": tp / int(ys.sum()), "precision": tp / (tp + fp)})


def calibration_curve(labels: np.ndarray, scores: np.ndarray, n_bins: int = ECE_BINS) -> pd.DataFrame:
    """Mean predicted probability, observed positive rate and n per non-empty equal-width bin (as `ece`)."""
    s = np.asarray(scores, dtype=np.float64)
    frame = pd.DataFrame({"bin": calibration_bin(s, n_bins), "score": s, "label": np.asarray(labels, float)})
    grouped = frame.groupby("bin").agg(
        predicted=("score", "mean"), observed=("label", "mean"), n=("label", "size")
    )
    return grouped.reset_index(drop=True)


def errors(predictions: pd.DataFrame, predicted: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(false positives by descending score, false negatives by ascending score) of these decisions."""
    keep = predictions["label"].notna().to_numpy()
    labelled, decided = predictions[keep], np.asarray(predicted)[keep] == 1
    false_pos = labelled[decided & (labelled["label"] == 0).to_numpy()].sort_values(
        ["score", "case_id"], ascending=[False, True]
    )
    false_neg = labelled[~decided & (labelled["label"] == 1).to_numpy()].sort_values(["score", "case_id"])
    return false_pos, false_neg
