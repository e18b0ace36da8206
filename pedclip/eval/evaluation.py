"""What every evaluation shares: loading cached vectors, choosing a threshold, metrics with CIs, saving a run.

Zero-shot, rescoring, probes and kNN differ only in how they turn vectors into scores; everything around
that (which cases, which threshold, which metrics, where the result goes) lives here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pedclip.errors import PedclipError
from pedclip.eval.bootstrap import BootstrapConfig, metrics_with_ci
from pedclip.eval.metrics import Metric, youden_threshold
from pedclip.store import Store
from pedclip.store.cases import has_source_splits, split_names
from pedclip.store.embeddings import case_vectors
from pedclip.store.runs import new_run_id, save_run


@dataclass(frozen=True)
class Threshold:
    """The decision threshold on the score and how it was chosen (reports print `rule`)."""

    value: float
    rule: str  # e.g. "0.5", "youden on val (n=120)", "prompt set threshold 0.6"

    def as_dict(self) -> dict:
        return {"value": self.value, "rule": self.rule}


@dataclass
class EvalResult:
    """One evaluation: the run row, per-case predictions and metrics (with CIs)."""

    run: dict
    predictions: pd.DataFrame  # dataset, case_id, score, predicted, label (+ split, patient_id, attributes)
    metrics: dict[str, Metric]
    threshold: Threshold
    extra: dict = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.run["run_id"]

    def as_dict(self) -> dict:
        return {
            **{k: v for k, v in self.run.items() if k not in ("metrics",)},
            "metrics": {k: v.as_dict() for k, v in self.metrics.items()},
            "threshold": self.threshold.as_dict(),
            **self.extra,
        }


def split_label(splits: Sequence[str] | None) -> str:
    return "+".join(splits) if splits else "all"


def split_column_for(store: Store, dataset: str, wanted: str) -> str:
    """The split column to read: `wanted`, except `split` when the source gave no splits at all."""
    if wanted == "source_split" and not has_source_splits(store, dataset):
        return "split"
    return wanted


def labelled_vectors(
    store: Store,
    fingerprint: str,
    spec: str,
    dataset: str,
    splits: Sequence[str] | None,
    split_column: str = "split",
) -> tuple[pd.DataFrame, np.ndarray]:
    """Cases (with a label and an embedding) of these splits and their vectors; a clear error when none."""
    if splits:
        check_splits(store, dataset, splits, split_column)
    frame, vectors = case_vectors(
        store, fingerprint, dataset, list(splits) if splits else None, split_column=split_column
    )
    keep = frame["label"].notna().to_numpy()
    if not keep.all():  # a boolean index copies every vector (2 GB at 1M): only when a case is unlabelled
        frame, vectors = frame[keep].reset_index(drop=True), vectors[keep]
    if frame.empty:
        where = f"split {split_label(splits)} of " if splits else ""
        raise PedclipError(
            f"no labelled cases with embeddings in {where}dataset {dataset!r} for model {spec}; run "
            f"`pedclip embed --model {spec} --dataset {dataset}` (and `pedclip data split` if it has no splits)"
        )
    frame["label"] = frame["label"].astype(int)
    return frame, vectors


def check_splits(store: Store, dataset: str, splits: Sequence[str], split_column: str = "split") -> None:
    """Every requested split is one the dataset has; else one line naming it and the real choices."""
    known = split_names(store, dataset, split_column)
    unknown = [s for s in splits if s not in known]
    if not unknown:
        return
    if not known:
        raise PedclipError(
            f"dataset {dataset!r} has no splits, so split {unknown[0]!r} is empty; run `pedclip data split"
            f" {dataset}` or pass --split all"
        )
    raise PedclipError(
        f"unknown split {unknown[0]!r} for dataset {dataset!r}; use one of {', '.join(known)}, several joined"
        " by + (e.g. val+test) or all"
    )


def choose_threshold(
    rule: str | float, val_labels: np.ndarray | None, val_scores: np.ndarray | None, fallback: float
) -> Threshold:
    """`youden` (on validation scores; falls back with a note when impossible), `fixed`, or a number."""
    if isinstance(rule, int | float) or _is_number(rule):
        return Threshold(float(rule), f"fixed {float(rule):g}")
    if rule == "fixed":
        return Threshold(fallback, f"fixed {fallback:g}")
    if rule != "youden":
        raise PedclipError(f"unknown threshold rule {rule!r}; use youden, fixed or a number such as 0.5")
    if val_labels is None or len(val_labels) == 0:
        return Threshold(fallback, f"fixed {fallback:g} (youden impossible: no validation cases)")
    value = youden_threshold(val_labels, val_scores)
    if value is None:
        return Threshold(fallback, f"fixed {fallback:g} (youden impossible: one class in validation)")
    return Threshold(value, f"youden on val (n={len(val_labels)})")


def _is_number(text: object) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return True


def sound_run(kind: str, encoder, train: str, evaluate: str, split: str, config: dict) -> dict:
    """The run row of an evaluation trained on `train`'s vectors and scored on `evaluate`'s `split`, in the
    sound protocol (probes, k-NN, few-shot); `config` says how."""
    return {
        "kind": kind,
        "protocol": "sound",
        "model": encoder.spec,
        "fingerprint": encoder.fingerprint,
        "train_dataset": train,
        "eval_dataset": evaluate,
        "split": split,
        "config": config,
    }


def predictions_frame(
    frame: pd.DataFrame, scores: np.ndarray, predicted: np.ndarray, auc_scores: np.ndarray | None = None
) -> pd.DataFrame:
    """Per-case rows: `scores` are P(positive); `auc_scores` the protocol's AUC score where it differs."""
    out = frame[["dataset", "case_id", "label", "split", "patient_id", "attributes"]].copy()
    out["score"] = np.asarray(scores, dtype=np.float64)
    out["predicted"] = np.asarray(predicted, dtype=np.int64)
    if auc_scores is not None:
        out["auc_score"] = np.asarray(auc_scores, dtype=np.float64)
    return out


def auc_score_of(predictions: pd.DataFrame) -> np.ndarray:
    """The score a run's AUC is computed on: `auc_score` where the protocol set one, else P(positive)."""
    scores = predictions["score"].to_numpy(np.float64)
    if "auc_score" not in predictions:
        return scores
    own = predictions["auc_score"].to_numpy(np.float64)
    return np.where(np.isnan(own), scores, own)


def finish(
    run: dict,
    predictions: pd.DataFrame,
    threshold: Threshold,
    bootstrap: BootstrapConfig,
) -> EvalResult:
    """Metrics with CIs for `predictions` (AUC on their `auc_score` when a protocol set one) and the run row."""
    y = predictions["label"].to_numpy()
    scores = auc_score_of(predictions)
    metrics, units = metrics_with_ci(
        y, scores, predictions["predicted"].to_numpy(), predictions["patient_id"].to_numpy(), bootstrap
    )
    config = {
        **run.get("config", {}),
        "threshold": threshold.as_dict(),
        "resampled": units.kind,
        "n_resamples": bootstrap.n_resamples,
        "seed": bootstrap.seed,
        "n": len(y),
        "n_positive": int(y.sum()),
    }
    full = {
        **run,
        "run_id": run.get("run_id") or new_run_id(run["kind"]),
        "config": config,
        "metrics": {k: v.as_dict() for k, v in metrics.items()},
    }
    return EvalResult(run=full, predictions=predictions, metrics=metrics, threshold=threshold)


def save(store: Store, result: EvalResult) -> str:
    """Write the run and its predictions to the store."""
    return save_run(store, result.run, result.predictions)
