"""Two sets of predictions on the same cases: metric deltas with paired bootstrap CIs, and flipped cases."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pedclip.errors import PedclipError
from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.evaluation import auc_score_of
from pedclip.eval.metrics import Metric
from pedclip.eval.paired import PairedArrays, compare_paired

FLIP_COLUMNS = ["dataset", "case_id", "label", "score_a", "score_b", "predicted_a", "predicted_b", "now"]


@dataclass
class Comparison:
    """B minus A for every metric (value = point delta, lo/hi = paired bootstrap CI) and the flipped cases."""

    deltas: dict[str, Metric]
    flipped: pd.DataFrame  # FLIP_COLUMNS; `now` is "fixed" (B right, A wrong) or "broken"
    n_common: int

    def as_dict(self, max_flips: int = 50) -> dict:
        return {
            "n_common": self.n_common,
            "deltas": {k: v.as_dict() for k, v in self.deltas.items()},
            "n_flipped": len(self.flipped),
            "n_fixed": int((self.flipped["now"] == "fixed").sum()),
            "n_broken": int((self.flipped["now"] == "broken").sum()),
            "flipped": self.flipped.head(max_flips).to_dict(orient="records"),
        }


def align(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Cases present in both prediction frames: dataset, case_id, label, score, predicted and auc (the score
    each run's AUC is on), suffixed _a and _b [, patient_id]."""
    keep = ["dataset", "case_id", "label", "score", "predicted", "auc"]
    extra = ["patient_id"] if "patient_id" in b.columns else []
    a, b = a.assign(auc=auc_score_of(a)), b.assign(auc=auc_score_of(b))
    merged = a[keep].merge(b[keep + extra], on=["dataset", "case_id"], suffixes=("_a", "_b"))
    if merged.empty:
        raise PedclipError(
            "the two runs share no cases; compare runs evaluated on the same dataset and split"
        )
    merged["label"] = merged["label_b"].fillna(merged["label_a"]).astype(int)
    return merged


def flip_direction(predicted_b, label) -> np.ndarray:
    """For predictions that changed from A to B: "fixed" where B is right, "broken" where B is wrong."""
    return np.where(np.asarray(predicted_b) == np.asarray(label), "fixed", "broken")


def flipped_cases(merged: pd.DataFrame) -> pd.DataFrame:
    changed = merged[merged["predicted_a"] != merged["predicted_b"]].copy()
    changed["now"] = flip_direction(changed["predicted_b"], changed["label"])
    return changed[FLIP_COLUMNS].sort_values(["now", "case_id"]).reset_index(drop=True)


def compare_predictions(
    a: pd.DataFrame, b: pd.DataFrame, config: BootstrapConfig = BootstrapConfig()
) -> Comparison:
    """Deltas (b - a) on the common cases, resampling patients when b carries patient ids."""
    m = align(a, b)
    ids = m["patient_id"].to_numpy() if "patient_id" in m else None
    data = PairedArrays(
        m["label"].to_numpy(),
        m["auc_b"].to_numpy(float),
        m["predicted_b"].to_numpy(),
        m["auc_a"].to_numpy(float),
        m["predicted_a"].to_numpy(),
        ids,
    )
    deltas = compare_paired(data, config).deltas  # "a" there is b here: b - a
    return Comparison(deltas=deltas, flipped=flipped_cases(m), n_common=len(m))
