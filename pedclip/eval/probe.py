"""Linear probes on cached embeddings: logistic regression (scikit-learn), C chosen on validation by AUROC.

`LinearProbe` is an estimator over arrays; `probe_eval` and `fewshot_eval` load the cached vectors of a
train dataset (train + val splits) and an evaluation dataset (its test split), so `--train A --eval B`
evaluates a probe across datasets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from pedclip.errors import PedclipError
from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.evaluation import (
    EvalResult,
    choose_threshold,
    finish,
    labelled_vectors,
    predictions_frame,
    sound_run,
)
from pedclip.eval.metrics import Metric, auroc

DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


def _fit(X: np.ndarray, y: np.ndarray, C: float, max_iter: int, random_state: int) -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=max_iter, random_state=random_state).fit(X, y)


class LinearProbe:
    """Logistic regression whose C is the one with the best validation AUROC (3-fold CV on train without one)."""

    def __init__(self, Cs=DEFAULT_CS, max_iter: int = 1000, random_state: int = 0):
        self.Cs = Cs
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X, y, X_val=None, y_val=None) -> LinearProbe:
        X, y = np.asarray(X, dtype=np.float32), np.asarray(y).astype(int)
        if len(np.unique(y)) < 2:
            raise PedclipError(
                f"a probe needs both classes in its training cases; got only label {int(y[0])}"
            )
        has_val = y_val is not None and len(np.unique(y_val)) == 2
        self.sweep_ = (
            sweep_c(X, y, X_val, y_val, self.Cs, self.max_iter, self.random_state)
            if has_val
            else (cv_sweep(X, y, self.Cs, self.max_iter, self.random_state))
        )
        self.selection_ = (
            "validation auroc" if has_val else "3-fold CV auroc on train (no usable validation split)"
        )
        best = max(self.sweep_, key=lambda row: -1.0 if row["auroc"] is None else row["auroc"])
        self.C_ = best["C"]
        self.model_ = _fit(
            X, y, self.C_, self.max_iter, self.random_state
        )  # refit on train with the chosen C
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X) -> np.ndarray:
        return self.model_.predict_proba(np.asarray(X, dtype=np.float32))

    def positive_score(self, X) -> np.ndarray:
        return self.predict_proba(X)[:, list(self.classes_).index(1)]


def sweep_c(X, y, X_val, y_val, Cs, max_iter: int = 1000, random_state: int = 0) -> list[dict]:
    """Validation AUROC of a probe fitted on (X, y) for each C: [{C, auroc}]."""
    rows = []
    for C in Cs:
        model = _fit(X, y, C, max_iter, random_state)
        rows.append({"C": float(C), "auroc": auroc(y_val, model.predict_proba(X_val)[:, 1]).value})
    return rows


def cv_sweep(X, y, Cs, max_iter: int = 1000, random_state: int = 0) -> list[dict]:
    """Mean 3-fold cross-validated AUROC per C on the training cases (when there is no validation split)."""
    n_splits = int(min(3, np.bincount(y).min()))
    if n_splits < 2:
        return [{"C": float(C), "auroc": None} for C in Cs[len(Cs) // 2 : len(Cs) // 2 + 1]]
    folds = list(StratifiedKFold(n_splits, shuffle=True, random_state=random_state).split(X, y))
    rows = []
    for C in Cs:
        values = [
            sweep_c(X[tr], y[tr], X[va], y[va], [C], max_iter, random_state)[0]["auroc"] for tr, va in folds
        ]
        rows.append({"C": float(C), "auroc": float(np.mean([v for v in values if v is not None]))})
    return rows


@dataclass(frozen=True)
class ProbeConfig:
    Cs: tuple[float, ...] = DEFAULT_CS  # regularisation grid (inverse strength)
    eval_split: str = "test"  # split of the evaluation dataset
    threshold: str = "youden"  # youden on the train dataset's validation split, fixed, or a number
    k_shots: tuple[int, ...] = (1, 2, 4, 8, 16)  # few-shot: examples per class
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # few-shot: draws averaged per k
    max_iter: int = 1000
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)


def _load(store, encoder, dataset, split):
    try:
        return labelled_vectors(store, encoder.fingerprint, encoder.spec, dataset, (split,))
    except PedclipError:
        if split == "val":
            return None, None
        raise


def probe_eval(
    store, encoder, train: str, evaluate: str | None, config: ProbeConfig = ProbeConfig()
) -> EvalResult:
    """Fit on `train`'s train split (C on its val split), evaluate on `evaluate`'s eval split (not saved)."""
    evaluate = evaluate or train
    tr, Xtr = _load(store, encoder, train, "train")
    va, Xva = _load(store, encoder, train, "val")
    te, Xte = _load(store, encoder, evaluate, config.eval_split)
    yva = None if va is None else va["label"].to_numpy()
    probe = LinearProbe(config.Cs, config.max_iter).fit(Xtr, tr["label"].to_numpy(), Xva, yva)
    threshold = choose_threshold(
        config.threshold, yva, None if va is None else probe.positive_score(Xva), 0.5
    )
    scores = probe.positive_score(Xte)
    run = sound_run(
        "probe",
        encoder,
        train,
        evaluate,
        config.eval_split,
        {
            "C": probe.C_,
            "sweep": probe.sweep_,
            "selection": probe.selection_,
            "n_train": len(tr),
            "score": "p_positive",
        },
    )
    preds = predictions_frame(te, scores, (scores >= threshold.value).astype(np.int64))
    return finish(run, preds, threshold, config.bootstrap)


def _draw(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(labels == c), size=k, replace=False) for c in (0, 1)]
    return np.concatenate(picks)


def fewshot_eval(
    store, encoder, train: str, evaluate: str | None, k: int, config: ProbeConfig = ProbeConfig()
):
    """k examples per class from `train`'s train split, one probe per seed; metrics averaged over seeds.

    Predictions hold the seed-averaged score; each metric's value is the mean over seeds and the run's
    config keeps every seed's value and the standard deviation.
    """
    evaluate = evaluate or train
    tr, Xtr = _load(store, encoder, train, "train")
    va, Xva = _load(store, encoder, train, "val")
    te, Xte = _load(store, encoder, evaluate, config.eval_split)
    ytr = tr["label"].to_numpy()
    if np.bincount(ytr, minlength=2).min() < k:
        raise PedclipError(
            f"k={k} shots per class needs at least {k} cases of each class in {train}'s train split"
        )
    yva = None if va is None else va["label"].to_numpy()
    runs = []
    for seed in config.seeds:
        rows = _draw(ytr, k, seed)
        probe = LinearProbe(config.Cs, config.max_iter, random_state=seed).fit(Xtr[rows], ytr[rows], Xva, yva)
        scores = probe.positive_score(Xte)
        runs.append(
            finish(
                {"kind": "fewshot"},
                predictions_frame(te, scores, (scores >= 0.5).astype(int)),
                choose_threshold("fixed", None, None, 0.5),
                BootstrapConfig(n_resamples=0),
            )
        )
    return _average_seeds(runs, te, encoder, train, evaluate, k, config)


def _average_seeds(runs, te, encoder, train, evaluate, k, config) -> EvalResult:
    per_seed = {name: [r.metrics[name].value for r in runs] for name in runs[0].metrics}
    mean_score = np.mean([r.predictions["score"].to_numpy() for r in runs], axis=0)
    threshold = choose_threshold("fixed", None, None, 0.5)
    preds = predictions_frame(te, mean_score, (mean_score >= 0.5).astype(np.int64))
    run = sound_run(
        "fewshot",
        encoder,
        train,
        evaluate,
        config.eval_split,
        {
            "k": k,
            "seeds": list(config.seeds),
            "per_seed": per_seed,
            "score": "p_positive (seed mean)",
            "sd": {n: _sd(v) for n, v in per_seed.items()},
        },
    )
    result = finish(run, preds, threshold, BootstrapConfig(n_resamples=0))
    result.metrics = {n: _mean_metric(v, runs[0].metrics[n].reason) for n, v in per_seed.items()}
    result.run["metrics"] = {n: m.as_dict() for n, m in result.metrics.items()}
    return result


def _sd(values: list) -> float | None:
    finite = [v for v in values if v is not None]
    return float(np.std(finite, ddof=1)) if len(finite) > 1 else None


def _mean_metric(values: list, reason: str | None) -> Metric:
    finite = [v for v in values if v is not None]
    if not finite:
        return Metric(None, reason=reason or "undefined for every seed")
    return Metric(float(np.mean(finite)))  # spread over seeds: config['sd'], not a CI
