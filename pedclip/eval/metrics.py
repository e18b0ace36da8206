"""Binary classification metrics as pure functions of arrays.

Conventions: `y_true` is (n,) of 0/1 labels (1 = pneumonia); `y_score` is (n,) of scores where higher
means more likely positive (normally P(positive)); `y_pred` is (n,) of 0/1 predictions. Every function
returns a `Metric`: a value, or `value=None` with the reason it is undefined (one class present, no
predicted positives, no cases), never a crash and never a silent 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

ECE_BINS = 10
DEFAULT_SPECIFICITY = 0.9


@dataclass(frozen=True)
class Metric:
    """A metric value with an optional 95% CI; `value is None` means undefined and `reason` says why."""

    value: float | None
    reason: str | None = None
    lo: float | None = None
    hi: float | None = None

    @property
    def defined(self) -> bool:
        return self.value is not None

    def with_ci(self, lo: float | None, hi: float | None) -> Metric:
        return replace(self, lo=lo, hi=hi)

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict | float | None) -> Metric:
        if isinstance(d, dict):
            return cls(value=d.get("value"), reason=d.get("reason"), lo=d.get("lo"), hi=d.get("hi"))
        return cls(value=None if d is None else float(d))

    def format(self, digits: int = 4) -> str:
        if self.value is None:
            return f"undefined ({self.reason})"
        text = f"{self.value:.{digits}f}"
        if self.lo is not None and self.hi is not None:
            text += f" [{self.lo:.{digits}f}-{self.hi:.{digits}f}]"
        return text


def undefined(reason: str) -> Metric:
    return Metric(value=None, reason=reason)


def _arrays(*arrays: np.ndarray) -> list[np.ndarray]:
    out = [np.asarray(a).ravel() for a in arrays]
    if len({len(a) for a in out}) > 1:
        raise ValueError(f"arrays of different lengths: {[len(a) for a in out]}")
    return out


def _ratio(num: float, den: float, reason: str) -> Metric:
    return Metric(float(num / den)) if den > 0 else undefined(reason)


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[int, int, int, int]:
    """(tp, fp, tn, fn) for 0/1 arrays of shape (n,)."""
    y, p = (a.astype(bool) for a in _arrays(y_true, y_pred))
    return int(np.sum(y & p)), int(np.sum(~y & p)), int(np.sum(~y & ~p)), int(np.sum(y & ~p))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> Metric:
    """Fraction of (n,) predictions equal to the (n,) labels."""
    y, p = _arrays(y_true, y_pred)
    return _ratio(np.sum(y == p), len(y), "no cases")


def precision(y_true: np.ndarray, y_pred: np.ndarray) -> Metric:
    """tp / (tp + fp); undefined when nothing is predicted positive."""
    tp, fp, _, _ = confusion_counts(y_true, y_pred)
    return _ratio(tp, tp + fp, "no case predicted positive")


def recall(y_true: np.ndarray, y_pred: np.ndarray) -> Metric:
    """Sensitivity tp / (tp + fn); undefined without positive cases."""
    tp, _, _, fn = confusion_counts(y_true, y_pred)
    return _ratio(tp, tp + fn, "no positive cases")


sensitivity = recall


def specificity(y_true: np.ndarray, y_pred: np.ndarray) -> Metric:
    """tn / (tn + fp); undefined without negative cases."""
    _, fp, tn, _ = confusion_counts(y_true, y_pred)
    return _ratio(tn, tn + fp, "no negative cases")


def f1(y_true: np.ndarray, y_pred: np.ndarray) -> Metric:
    """2tp / (2tp + fp + fn); undefined when there are no positives and none predicted."""
    tp, fp, _, fn = confusion_counts(y_true, y_pred)
    return _ratio(2 * tp, 2 * tp + fp + fn, "no positive cases and none predicted")


def _one_class_reason(y: np.ndarray) -> str | None:
    if len(y) == 0:
        return "no cases"
    n_pos = int(np.sum(y == 1))
    if n_pos in (0, len(y)):
        return f"only one class present ({len(y)} cases, all label {int(y[0])})"
    return None


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of (n,) values with ties given their average rank (midranks), O(n log n)."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    avg = (starts + ends + 1) / 2.0  # mean of 1-based positions start+1 .. end
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def auroc(y_true: np.ndarray, y_score: np.ndarray) -> Metric:
    """Area under the ROC curve (Mann-Whitney U / n_pos n_neg, ties count one half)."""
    y, s = _arrays(y_true, y_score)
    reason = _one_class_reason(y)
    if reason:
        return undefined(reason)
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    rank_sum = average_ranks(s.astype(np.float64))[pos].sum()
    return Metric(float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)))


def auprc(y_true: np.ndarray, y_score: np.ndarray) -> Metric:
    """Average precision: sum over distinct thresholds of (recall step) x precision, as scikit-learn."""
    y, s = _arrays(y_true, y_score)
    if len(y) == 0:
        return undefined("no cases")
    if not np.any(y == 1):
        return undefined("no positive cases")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], (y[order] == 1)
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # last index of each distinct score
    tp = np.cumsum(y_sorted)[last]
    fp = np.cumsum(~y_sorted)[last]
    step = np.diff(np.r_[0, tp]) / tp[-1]
    return Metric(float(np.sum(step * tp / (tp + fp))))


def brier(y_true: np.ndarray, y_score: np.ndarray) -> Metric:
    """Mean squared error between (n,) probabilities and (n,) 0/1 labels."""
    y, s = _arrays(y_true, y_score)
    return _ratio(np.sum((s - y) ** 2), len(y), "no cases")


def ece(y_true: np.ndarray, y_score: np.ndarray, n_bins: int = ECE_BINS) -> Metric:
    """Expected calibration error of P(positive): sum over equal-width bins of (n_b/n)|mean(y)-mean(p)|."""
    y, s = _arrays(y_true, y_score)
    if len(y) == 0:
        return undefined("no cases")
    bins = calibration_bin(s, n_bins)
    gap = np.abs(np.bincount(bins, s - y, minlength=n_bins))
    return Metric(float(gap.sum() / len(y)))


def calibration_bin(y_score: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """(n,) bin index in [0, n_bins) of each probability; 1.0 falls in the last bin."""
    return np.clip((np.asarray(y_score) * n_bins).astype(int), 0, n_bins - 1)


def roc_points(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) at every distinct score, from (0, 0) to (1, 1); predict positive if >= t."""
    y, s = _arrays(y_true, y_score)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], (y[order] == 1)
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True] if len(s) else np.zeros(0, bool)
    tp = np.r_[0, np.cumsum(y_sorted)[last]]
    fp = np.r_[0, np.cumsum(~y_sorted)[last]]
    thresholds = np.r_[np.inf, s_sorted[last]]
    n_pos, n_neg = max(int(y_sorted.sum()), 1), max(int((~y_sorted).sum()), 1)
    return fp / n_neg, tp / n_pos, thresholds


def sensitivity_at_specificity(
    y_true: np.ndarray, y_score: np.ndarray, target: float = DEFAULT_SPECIFICITY
) -> Metric:
    """Highest sensitivity over thresholds whose specificity is at least `target`."""
    y, s = _arrays(y_true, y_score)
    reason = _one_class_reason(y)
    if reason:
        return undefined(reason)
    fpr, tpr, _ = roc_points(y, s)
    ok = (1.0 - fpr) >= target - 1e-12
    return Metric(float(tpr[ok].max()))


def youden_threshold(y_true: np.ndarray, y_score: np.ndarray) -> float | None:
    """The score threshold maximising sensitivity + specificity - 1 (None when one class is present)."""
    y, s = _arrays(y_true, y_score)
    if _one_class_reason(y):
        return None
    fpr, tpr, thresholds = roc_points(y, s)
    finite = np.isfinite(thresholds)
    best = np.argmax(np.where(finite, tpr - fpr, -np.inf))
    return float(thresholds[best])


THRESHOLD_METRICS = ("accuracy", "precision", "recall", "specificity", "f1")
SCORE_METRICS = ("auroc", "auprc", "brier", "ece", "sens_at_spec")
ALL_METRICS = THRESHOLD_METRICS + SCORE_METRICS


def binary_metrics(
    y_true: np.ndarray,
    y_score: np.ndarray,
    y_pred: np.ndarray,
    target_specificity: float = DEFAULT_SPECIFICITY,
) -> dict[str, Metric]:
    """Every metric of ALL_METRICS for (n,) labels, scores and predictions."""
    y, s, p = _arrays(y_true, y_score, y_pred)
    if len(y) == 0:
        return {name: undefined("no cases") for name in ALL_METRICS}
    return {
        "accuracy": accuracy(y, p),
        "precision": precision(y, p),
        "recall": recall(y, p),
        "specificity": specificity(y, p),
        "f1": f1(y, p),
        "auroc": auroc(y, s),
        "auprc": auprc(y, s),
        "brier": brier(y, s),
        "ece": ece(y, s),
        "sens_at_spec": sensitivity_at_specificity(y, s, target_specificity),
    }
