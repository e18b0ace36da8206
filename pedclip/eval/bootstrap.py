"""95% bootstrap confidence intervals for every metric, vectorised over resamples.

A resample draws units (patients when patient ids exist, cases otherwise) with replacement. Instead of
materialising each resample, it becomes a (B, n) matrix of case weights (how often each case was drawn),
and every metric is computed for all B resamples at once from weighted sums; AUROC and AUPRC come from
cumulative weights over the cases sorted once by score (rank statistics), not from B sorts.
`resample_units` is the single source of randomness, so a naive loop over the same draws gives the same
intervals (tests check this).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pedclip.eval.metrics import (
    ALL_METRICS,
    DEFAULT_SPECIFICITY,
    ECE_BINS,
    Metric,
    binary_metrics,
    calibration_bin,
)

N_RESAMPLES = 1000
CI_LEVEL = 0.95


@dataclass(frozen=True)
class Units:
    """How cases group into resampling units: `unit_of_case` (n,) in [0, n_units), and what they are."""

    unit_of_case: np.ndarray
    n_units: int
    kind: str  # "patient" or "case"


def resampling_units(patient_ids: np.ndarray | None, n_cases: int) -> Units:
    """Patients when every case has a patient id, else cases."""
    if patient_ids is not None and len(patient_ids) == n_cases and n_cases:
        ids = np.asarray(patient_ids, dtype=object)
        if all(v is not None and v == v and str(v) != "" for v in ids):  # v == v rejects NaN
            _, inverse = np.unique(ids.astype(str), return_inverse=True)
            return Units(inverse.astype(np.int64), int(inverse.max()) + 1, "patient")
    return Units(np.arange(n_cases, dtype=np.int64), n_cases, "case")


def resample_units(n_units: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n_units) unit indices drawn with replacement."""
    rng = np.random.default_rng(seed)
    return rng.integers(
        0, n_units, size=(n_resamples, n_units), dtype=np.int32 if n_units < 2**31 else np.int64
    )


def case_weights(draws: np.ndarray, units: Units) -> np.ndarray:
    """(B, n_cases) float weights: how many times each case appears in each resample."""
    b, n_units = draws.shape
    flat = (draws + np.arange(b, dtype=np.int64)[:, None] * n_units).ravel()
    per_unit = np.bincount(flat, minlength=b * n_units).reshape(b, n_units).astype(np.float64)
    return per_unit[:, units.unit_of_case]


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _threshold_metrics(w: np.ndarray, y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    tp, fp = w @ (y & p), w @ (~y & p)
    tn, fn = w @ (~y & ~p), w @ (y & ~p)
    total = tp + fp + tn + fn
    return {
        "accuracy": _safe_div(tp + tn, total),
        "precision": _safe_div(tp, tp + fp),
        "recall": _safe_div(tp, tp + fn),
        "specificity": _safe_div(tn, tn + fp),
        "f1": _safe_div(2 * tp, 2 * tp + fp + fn),
    }


def _group_starts(s_sorted: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])


def _ranking_metrics(
    ws: np.ndarray, ys: np.ndarray, starts: np.ndarray, target_spec: float
) -> dict[str, np.ndarray]:
    """AUROC, AUPRC and sensitivity at specificity from weights `ws` (B, n) of cases sorted by ascending score;
    `starts` marks where each distinct score begins. Cumulative sums replace per-resample sorting."""
    pos = np.add.reduceat(ws * ys, starts, axis=1)  # (B, G) positive weight per distinct score
    neg = np.add.reduceat(ws, starts, axis=1)
    neg -= pos
    n_pos, n_neg = pos.sum(1), neg.sum(1)
    cum = np.cumsum(neg, axis=1)
    # Mann-Whitney: each positive beats the negatives strictly below it and ties half of those level with it
    wins = np.einsum("ij,ij->i", pos, cum) - 0.5 * np.einsum("ij,ij->i", pos, neg)
    auroc = _safe_div(wins, n_pos * n_neg)
    # predicting positive at score >= group g: tp/fp are the weights at or above g (in place: large arrays)
    fp_ge = np.subtract(n_neg[:, None], cum, out=cum)
    fp_ge += neg
    tp_ge = np.cumsum(pos, axis=1)
    np.subtract(n_pos[:, None], tp_ge, out=tp_ge)
    tp_ge += pos
    precision = tp_ge + fp_ge
    np.divide(tp_ge, precision, out=precision, where=precision > 0)  # 0 stays 0 where nothing is called
    auprc = _safe_div(np.einsum("ij,ij->i", pos, precision), n_pos)
    # fp_ge falls as g rises, tp_ge too: the best sensitivity meeting the specificity is at the first g allowed
    allowed = fp_ge <= (1.0 - target_spec + 1e-12) * n_neg[:, None]
    first = np.argmax(allowed, axis=1)
    tpr = np.take_along_axis(tp_ge, first[:, None], axis=1)[:, 0]
    sens = np.where(allowed.any(1), _safe_div(tpr, n_pos), 0.0)  # none allowed: only "call nobody" (tpr 0)
    sens = np.where((n_pos > 0) & (n_neg > 0), sens, np.nan)
    return {"auroc": np.where(n_neg > 0, auroc, np.nan), "auprc": auprc, "sens_at_spec": sens}


def _calibration_metrics(w: np.ndarray, y: np.ndarray, s: np.ndarray, n_bins: int) -> dict[str, np.ndarray]:
    total = w.sum(1)
    brier = _safe_div(w @ (s - y) ** 2, total)
    onehot = np.zeros((len(s), n_bins))
    onehot[np.arange(len(s)), calibration_bin(s, n_bins)] = 1.0
    gap = np.abs(w @ ((s - y)[:, None] * onehot))
    return {"brier": brier, "ece": _safe_div(gap.sum(1), total)}


def weighted_metrics(
    weights: np.ndarray,
    y_true: np.ndarray,
    y_score: np.ndarray,
    y_pred: np.ndarray,
    target_specificity: float = DEFAULT_SPECIFICITY,
    n_bins: int = ECE_BINS,
) -> dict[str, np.ndarray]:
    """Every metric for each of B case weightings: weights (B, n) -> {name: (B,)}, NaN where undefined."""
    s = np.asarray(y_score, dtype=np.float64)
    order = np.argsort(s, kind="mergesort")  # sort the cases once; every metric below is order-free
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    w = w if _is_identity(order) else w[:, order]
    return _sorted_metrics(
        w, np.asarray(y_true)[order], s[order], np.asarray(y_pred)[order], target_specificity, n_bins
    )


def _is_identity(order: np.ndarray) -> bool:
    return bool(np.all(order == np.arange(len(order))))


def _sorted_metrics(w, y_true, s, y_pred, target_specificity, n_bins) -> dict[str, np.ndarray]:
    """weighted_metrics for cases already sorted by ascending score."""
    y, p = y_true.astype(bool), y_pred.astype(bool)
    out = _threshold_metrics(w, y, p)
    out.update(_ranking_metrics(w, y, _group_starts(s), target_specificity))
    out.update(_calibration_metrics(w, y.astype(np.float64), s, n_bins))
    return {name: out[name] for name in ALL_METRICS}


def percentile_interval(values: np.ndarray, level: float = CI_LEVEL) -> tuple[float | None, float | None]:
    """The central `level` percentile interval of the finite values, None when fewer than 2."""
    finite = values[np.isfinite(values)]
    if len(finite) < 2:
        return None, None
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(finite, [tail, 100.0 - tail])
    return float(lo), float(hi)


@dataclass(frozen=True)
class BootstrapConfig:
    n_resamples: int = N_RESAMPLES  # resamples drawn
    seed: int = 0  # the only source of randomness
    level: float = CI_LEVEL  # central interval
    target_specificity: float = DEFAULT_SPECIFICITY  # for sens_at_spec


def metrics_with_ci(
    y_true: np.ndarray,
    y_score: np.ndarray,
    y_pred: np.ndarray,
    patient_ids: np.ndarray | None = None,
    config: BootstrapConfig = BootstrapConfig(),
) -> tuple[dict[str, Metric], Units]:
    """Point estimates of every metric with bootstrap CIs (patients resampled when ids exist)."""
    y, s, p = (np.asarray(a).ravel() for a in (y_true, y_score, y_pred))
    point = binary_metrics(y, s, p, config.target_specificity)
    units = resampling_units(patient_ids, len(y))
    if config.n_resamples <= 0 or units.n_units == 0:
        return point, units
    draws = resample_units(units.n_units, config.n_resamples, config.seed)
    # build the weights directly in score order (one gather instead of two)
    order = np.argsort(s, kind="mergesort")
    weights = case_weights(draws, Units(units.unit_of_case[order], units.n_units, units.kind))
    samples = _sorted_metrics(
        weights, y[order], s[order].astype(np.float64), p[order], config.target_specificity, ECE_BINS
    )
    out = {}
    for name, metric in point.items():
        out[name] = (
            metric.with_ci(*percentile_interval(samples[name], config.level)) if metric.defined else metric
        )
    return out, units
