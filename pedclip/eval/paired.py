"""Two models scored on the same cases: paired differences and the tests a reviewer expects.

- DeLong's test for two correlated ROC curves (DeLong, DeLong & Clarke-Pearson 1988) with the fast midrank
  algorithm of Sun & Xu (2014): O(k (m + n) log(m + n)) for k score vectors over m positives, n negatives.
- McNemar's exact test on the discordant pairs of two classifiers' decisions (binomial, p = 1/2).
- Paired bootstrap CIs of A - B for every metric: the same resamples (patients when ids exist) for both.
- Seeds: the CI of a mean over training seeds from a bootstrap over patients and seeds together.
- Holm's step-down adjustment across a table's rows.
All pure functions of arrays; `eval/paired_runs.py` turns stored runs into these arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pedclip.eval.bootstrap import (
    BootstrapConfig,
    case_weights,
    percentile_interval,
    resample_units,
    resampling_units,
    weighted_metrics,
)
from pedclip.eval.metrics import ALL_METRICS, Metric, average_ranks, binary_metrics


@dataclass(frozen=True)
class DeLong:
    """DeLong's test of AUROC(A) = AUROC(B); `variance` is that of the difference A - B."""

    auc_a: float
    auc_b: float
    delta: float  # auc_a - auc_b
    variance: float
    z: float | None  # None when the variance is 0 (identical rankings)
    p: float

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("auc_a", "auc_b", "delta", "variance", "z", "p")}


def delong_components(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sun & Xu's fast structural components of k score vectors.

    y_true (N,) 0/1; scores (k, N). Returns (aucs (k,), v10 (k, m), v01 (k, n)): v10[r, i] is the fraction of
    negatives that positive i outranks under score r (ties count one half), v01[r, j] the fraction of positives
    that outrank negative j.
    """
    y = np.asarray(y_true).ravel().astype(bool)
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    pos, neg = s[:, y], s[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    tx = np.stack([average_ranks(row) for row in pos])  # ranks among positives
    ty = np.stack([average_ranks(row) for row in neg])  # ranks among negatives
    tz = np.stack([average_ranks(row) for row in np.hstack([pos, neg])])  # ranks among all
    aucs = tz[:, :m].sum(axis=1) / (m * n) - (m + 1.0) / (2.0 * n)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return aucs, v10, v01


def delong_covariance(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(aucs (k,), covariance (k, k)) of the k AUROC estimates: S10 / m + S01 / n."""
    aucs, v10, v01 = delong_components(y_true, scores)
    m, n = v10.shape[1], v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return aucs, s10 / m + s01 / n


def normal_two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


def delong_test(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> DeLong:
    """DeLong's z-test of two correlated AUROCs on the same (N,) cases; needs >= 2 of each class."""
    y = np.asarray(y_true).ravel()
    n_pos = int((y == 1).sum())
    if n_pos < 2 or len(y) - n_pos < 2:
        raise ValueError(
            f"DeLong's test needs at least 2 positives and 2 negatives; got {n_pos} and {len(y) - n_pos}"
        )
    aucs, cov = delong_covariance(y, np.vstack([score_a, score_b]))
    delta = float(aucs[0] - aucs[1])
    variance = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    if variance <= 1e-15:  # same ranking of every pair: no evidence of a difference
        return DeLong(float(aucs[0]), float(aucs[1]), delta, max(variance, 0.0), None, 1.0)
    z = delta / math.sqrt(variance)
    return DeLong(float(aucs[0]), float(aucs[1]), delta, variance, z, normal_two_sided_p(z))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p: b and c discordant pairs, each ~ Binomial(b + c, 1/2) under H0."""
    total = int(b) + int(c)
    if total == 0:
        return 1.0
    tail = sum(math.comb(total, i) for i in range(min(b, c) + 1)) / 2.0**total
    return min(1.0, 2.0 * tail)


def discordant_pairs(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int]:
    """(A right and B wrong, A wrong and B right) over (n,) boolean arrays."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    return int(np.sum(a & ~b)), int(np.sum(~a & b))


@dataclass(frozen=True)
class DecisionTest:
    """A threshold metric of both runs (each at its own threshold), A - B with its paired CI, and McNemar."""

    a: Metric
    b: Metric
    delta: Metric
    a_only: int  # discordant pairs: A right, B wrong
    b_only: int
    mcnemar_p: float

    def as_dict(self) -> dict:
        return {
            "a": self.a.value,
            "b": self.b.value,
            "delta": self.delta.value,
            "ci": [self.delta.lo, self.delta.hi],
            "a_right_b_wrong": self.a_only,
            "a_wrong_b_right": self.b_only,
            "mcnemar_p": self.mcnemar_p,
        }


@dataclass(frozen=True)
class PairedArrays:
    """Two runs on the same n cases: labels, each run's score and 0/1 decision, patient ids (or None)."""

    y: np.ndarray
    score_a: np.ndarray
    pred_a: np.ndarray
    score_b: np.ndarray
    pred_b: np.ndarray
    patient_ids: np.ndarray | None = None


@dataclass(frozen=True)
class PairedComparison:
    n: int
    n_positive: int
    resampled: str  # "patient" or "case"
    a: dict[str, Metric]  # every metric of run A, with its own bootstrap CI
    b: dict[str, Metric]
    deltas: dict[str, Metric]  # A - B with paired bootstrap CIs
    delong: DeLong | None
    sensitivity: DecisionTest
    specificity: DecisionTest
    accuracy_mcnemar_p: float
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        delta = self.deltas["auroc"]
        return {
            "n": self.n,
            "n_positive": self.n_positive,
            "auroc_a": self.a["auroc"].value,
            "auroc_b": self.b["auroc"].value,
            "auroc_a_ci": [self.a["auroc"].lo, self.a["auroc"].hi],
            "auroc_b_ci": [self.b["auroc"].lo, self.b["auroc"].hi],
            "delta_auroc": delta.value,
            "ci": [delta.lo, delta.hi],
            "resampled": self.resampled,
            "delong_z": self.delong.z if self.delong else None,
            "delong_p": self.delong.p if self.delong else None,
            "delong_variance": self.delong.variance if self.delong else None,
            "mcnemar_p": self.accuracy_mcnemar_p,
            "sensitivity": self.sensitivity.as_dict(),
            "specificity": self.specificity.as_dict(),
            "notes": self.notes,
        }


def _with_ci(point: dict[str, Metric], samples: dict[str, np.ndarray] | None, level: float) -> dict:
    if samples is None:
        return point
    return {
        k: m.with_ci(*percentile_interval(samples[k], level)) if m.defined else m for k, m in point.items()
    }


def _deltas(pa, pb, samples_a, samples_b, level) -> dict[str, Metric]:
    out = {}
    for name in ALL_METRICS:
        ma, mb = pa[name], pb[name]
        if not (ma.defined and mb.defined):
            out[name] = Metric(None, reason=ma.reason or mb.reason)
            continue
        ci = percentile_interval(samples_a[name] - samples_b[name], level) if samples_a else (None, None)
        out[name] = Metric(ma.value - mb.value, lo=ci[0], hi=ci[1])
    return out


def _decision_test(metric: str, cases: np.ndarray, data: PairedArrays, pa, pb, deltas) -> DecisionTest:
    right_a = data.pred_a[cases] == data.y[cases]
    right_b = data.pred_b[cases] == data.y[cases]
    b, c = discordant_pairs(right_a, right_b)
    return DecisionTest(pa[metric], pb[metric], deltas[metric], b, c, mcnemar_exact(b, c))


def compare_paired(data: PairedArrays, config: BootstrapConfig = BootstrapConfig()) -> PairedComparison:
    """Every metric of A and B, A - B with paired bootstrap CIs, DeLong's test and McNemar's exact tests."""
    y = np.asarray(data.y).astype(int)
    pa = binary_metrics(y, data.score_a, data.pred_a, config.target_specificity)
    pb = binary_metrics(y, data.score_b, data.pred_b, config.target_specificity)
    units = resampling_units(data.patient_ids, len(y))
    samples_a = samples_b = None
    if config.n_resamples > 0 and units.n_units:
        w = case_weights(resample_units(units.n_units, config.n_resamples, config.seed), units)
        samples_a = weighted_metrics(w, y, data.score_a, data.pred_a, config.target_specificity)
        samples_b = weighted_metrics(w, y, data.score_b, data.pred_b, config.target_specificity)
    deltas = _deltas(pa, pb, samples_a, samples_b, config.level)
    notes = []
    try:
        delong = delong_test(y, data.score_a, data.score_b)
    except ValueError as exc:
        delong, notes = None, [str(exc)]
    right_a, right_b = data.pred_a == y, data.pred_b == y
    return PairedComparison(
        n=len(y),
        n_positive=int(y.sum()),
        resampled=units.kind,
        a=_with_ci(pa, samples_a, config.level),
        b=_with_ci(pb, samples_b, config.level),
        deltas=deltas,
        delong=delong,
        sensitivity=_decision_test("recall", y == 1, data, pa, pb, deltas),
        specificity=_decision_test("specificity", y == 0, data, pa, pb, deltas),
        accuracy_mcnemar_p=mcnemar_exact(*discordant_pairs(right_a, right_b)),
        notes=notes,
    )


# ---- seeds ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedSummary:
    """A per-seed quantity (an AUROC, or a difference of AUROCs) summarised over training seeds."""

    values: tuple[float, ...]  # one per seed, in the order given
    mean: float
    sd: float | None  # sample sd (ddof 1); None with one seed
    lo: float | None  # CI of the mean: bootstrap over patients and seeds
    hi: float | None
    p: float | None  # two-sided bootstrap p of mean = 0 (meaningful for differences)
    n_above_zero: int
    n_below_zero: int


def seed_auroc_samples(
    y: np.ndarray, scores: np.ndarray, patient_ids: np.ndarray | None, config: BootstrapConfig
) -> np.ndarray:
    """(S, B) AUROC of each of S score vectors (S, n) under the same B resamples of patients (or cases)."""
    units = resampling_units(patient_ids, len(y))
    w = case_weights(resample_units(units.n_units, config.n_resamples, config.seed), units)
    pred = np.zeros(len(y), dtype=int)  # decisions do not enter the AUROC
    return np.stack([weighted_metrics(w, y, row, pred, config.target_specificity)["auroc"] for row in scores])


def summarise_seeds(values: np.ndarray, samples: np.ndarray | None, config: BootstrapConfig) -> SeedSummary:
    """Mean, sd and CI over seeds of (S,) `values` whose (S, B) patient-bootstrap `samples` share resamples.

    Each bootstrap replicate draws S seeds with replacement and averages their values under that replicate's
    patient resample, so the interval covers both the test-set and the training-seed variability.
    """
    v = np.asarray(values, dtype=np.float64)
    sd = float(np.std(v, ddof=1)) if len(v) > 1 else None
    lo = hi = p = None
    if samples is not None and samples.size:
        s, b = samples.shape
        picks = np.random.default_rng(config.seed + 1).integers(0, s, size=(b, s))
        picked = samples[picks, np.arange(b)[:, None]]  # (B, S); NaN where a resample had one class only
        counted = np.isfinite(picked).sum(axis=1)
        means = np.where(counted > 0, np.nansum(picked, axis=1) / np.maximum(counted, 1), np.nan)
        lo, hi = percentile_interval(means, config.level)
        finite = means[np.isfinite(means)]
        if len(finite):
            p = float(min(1.0, 2.0 * min(np.mean(finite <= 0), np.mean(finite >= 0))))
    return SeedSummary(
        tuple(float(x) for x in v),
        float(v.mean()),
        sd,
        lo,
        hi,
        p,
        int(np.sum(v > 0)),
        int(np.sum(v < 0)),
    )


# ---- many rows ------------------------------------------------------------------------------------------


def holm_adjust(pvalues: list[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (family-wise error), None entries skipped and kept."""
    present = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    k = len(present)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (k - rank) * p))
        out[i] = running
    return out
