"""Two sets of predictions on the same cases: metric deltas with paired bootstrap CIs, and flipped cases."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pedclip.errors import PedclipError
from pedclip.eval.bootstrap import (
    BootstrapConfig,
    case_weights,
    percentile_interval,
    resample_units,
    resampling_units,
    weighted_metrics,
)
from pedclip.eval.evaluation import auc_score_of
from pedclip.eval.metrics import ALL_METRICS, Metric, binary_metrics

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


def flipped_cases(merged: pd.DataFrame) -> pd.DataFrame:
    changed = merged[merged["predicted_a"] != merged["predicted_b"]].copy()
    changed["now"] = np.where(changed["predicted_b"] == changed["label"], "fixed", "broken")
    return changed[FLIP_COLUMNS].sort_values(["now", "case_id"]).reset_index(drop=True)


def compare_predictions(
    a: pd.DataFrame, b: pd.DataFrame, config: BootstrapConfig = BootstrapConfig()
) -> Comparison:
    """Deltas (b - a) on the common cases, resampling patients when b carries patient ids."""
    m = align(a, b)
    y = m["label"].to_numpy()
    sa, sb = m["auc_a"].to_numpy(float), m["auc_b"].to_numpy(float)
    pa, pb = m["predicted_a"].to_numpy(), m["predicted_b"].to_numpy()
    point_a, point_b = binary_metrics(y, sa, pa), binary_metrics(y, sb, pb)
    units = resampling_units(m["patient_id"].to_numpy() if "patient_id" in m else None, len(m))
    samples = None
    if config.n_resamples > 0:
        w = case_weights(resample_units(units.n_units, config.n_resamples, config.seed), units)
        wa, wb = weighted_metrics(w, y, sa, pa), weighted_metrics(w, y, sb, pb)
        samples = {k: wb[k] - wa[k] for k in ALL_METRICS}
    deltas = {}
    for name in ALL_METRICS:
        ma, mb = point_a[name], point_b[name]
        if not (ma.defined and mb.defined):
            deltas[name] = Metric(None, reason=mb.reason or ma.reason)
            continue
        lo, hi = percentile_interval(samples[name], config.level) if samples else (None, None)
        deltas[name] = Metric(mb.value - ma.value, lo=lo, hi=hi)
    return Comparison(deltas=deltas, flipped=flipped_cases(m), n_common=len(m))
