"""Stored runs as paired arrays: which cases both runs scored, which were dropped and why (`pedclip compare`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pedclip.errors import PedclipError
from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.evaluation import auc_score_of
from pedclip.eval.paired import PairedArrays, PairedComparison, compare_paired
from pedclip.store import Store
from pedclip.store.cases import cases_frame
from pedclip.store.runs import get_run, predictions_frame

KEY = ["dataset", "case_id"]


@dataclass(frozen=True)
class Aligned:
    """The cases both runs scored, in one frame, and the count of each kind of case left out."""

    frame: pd.DataFrame  # dataset, case_id, label, score_a, predicted_a, score_b, predicted_b, patient_id
    dropped: dict[str, int]

    def arrays(self) -> PairedArrays:
        f = self.frame
        ids = f["patient_id"].to_numpy(object) if "patient_id" in f else None
        return PairedArrays(
            f["label"].to_numpy(int),
            f["score_a"].to_numpy(float),
            f["predicted_a"].to_numpy(int),
            f["score_b"].to_numpy(float),
            f["predicted_b"].to_numpy(int),
            ids,
        )


def align_predictions(a: pd.DataFrame, b: pd.DataFrame) -> Aligned:
    """Inner join of two prediction frames on (dataset, case_id), keeping labelled cases both agree on; each
    run's `score` becomes the score its AUC is on (P(positive), or the protocol's own: evaluation.auc_score_of)."""
    a, b = a.assign(score=auc_score_of(a)), b.assign(score=auc_score_of(b))
    cols = [*KEY, "label", "score", "predicted"]
    merged = a[cols].merge(b[cols], on=KEY, how="outer", suffixes=("_a", "_b"), indicator=True)
    only_a = int((merged["_merge"] == "left_only").sum())
    only_b = int((merged["_merge"] == "right_only").sum())
    both = merged[merged["_merge"] == "both"]
    unlabelled = both["label_a"].isna() | both["label_b"].isna()
    disagree = ~unlabelled & (both["label_a"] != both["label_b"])
    kept = both[~unlabelled & ~disagree].copy()
    kept["label"] = kept["label_a"].astype(int)
    dropped = {
        "only_in_a": only_a,
        "only_in_b": only_b,
        "unlabelled": int(unlabelled.sum()),
        "label_differs": int(disagree.sum()),
    }
    keep = [*KEY, "label", "score_a", "predicted_a", "score_b", "predicted_b"]
    return Aligned(kept[keep].sort_values(KEY).reset_index(drop=True), dropped)


def with_patient_ids(store: Store, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with each case's patient id (NaN where the case has none)."""
    parts = [
        cases_frame(store, d)[["case_id", "patient_id"]].assign(dataset=d) for d in frame["dataset"].unique()
    ]
    if not parts:
        return frame.assign(patient_id=pd.Series(dtype=object))
    return frame.merge(pd.concat(parts), on=KEY, how="left")


def check_pairable(a: dict, b: dict) -> None:
    """Both runs must have scored the same dataset and split(s); one line saying which differs otherwise."""
    for field in ("eval_dataset", "split"):
        if a[field] != b[field]:
            raise PedclipError(
                f"runs {a['run_id']} and {b['run_id']} were evaluated on different {field.replace('_', ' ')}s "
                f"({a[field]!r} vs {b[field]!r}); compare two runs on the same dataset and split"
            )


def score_notes(a: dict, b: dict) -> list[str]:
    """What a reader must know about the scores compared (the study's top-1 'AUC' is not P(pneumonia))."""
    notes = []
    for name, run in (("A", a), ("B", b)):
        if run["config"].get("score") == "top1_probability":
            notes.append(
                f"run {name} ({run['run_id']}) is scored, as the study did, on the top-1 probability, so its "
                "AUROC here is the paper protocol's, not a discrimination AUROC"
            )
    return notes


@dataclass(frozen=True)
class RunComparison:
    run_a: dict
    run_b: dict
    aligned: Aligned
    result: PairedComparison

    def flipped(self) -> pd.DataFrame:
        """Cases the two runs decided differently, with which run was right."""
        f = self.aligned.frame
        out = f[f["predicted_a"] != f["predicted_b"]].copy()
        out["right"] = np.where(out["predicted_a"] == out["label"], "a", "b")
        cols = [*KEY, "label", "score_a", "score_b", "predicted_a", "predicted_b", "right"]
        return out[cols].sort_values(["right", *KEY]).reset_index(drop=True)

    def as_dict(self, max_flips: int = 20) -> dict:
        brief = ("run_id", "kind", "protocol", "model", "eval_dataset", "split")
        doc = self.result.as_dict()
        flipped = self.flipped()
        return {
            **{k: v for k, v in doc.items() if k != "notes"},
            "dropped": self.aligned.dropped,
            "deltas": {k: v.as_dict() for k, v in self.result.deltas.items()},
            "a": {k: self.run_a.get(k) for k in brief},
            "b": {k: self.run_b.get(k) for k in brief},
            "n_flipped": len(flipped),
            "n_a_right": int((flipped["right"] == "a").sum()),
            "n_b_right": int((flipped["right"] == "b").sum()),
            "flipped": flipped.head(max_flips).to_dict(orient="records"),
            "notes": doc["notes"],
        }


def paired_runs(
    store: Store, run_a: str, run_b: str, config: BootstrapConfig = BootstrapConfig()
) -> RunComparison:
    """A - B on the cases both runs scored: AUROC difference with a paired CI, DeLong, McNemar."""
    a, b = get_run(store, run_a), get_run(store, run_b)
    check_pairable(a, b)
    aligned = align_predictions(predictions_frame(store, a["run_id"]), predictions_frame(store, b["run_id"]))
    if aligned.frame.empty:
        raise PedclipError(
            f"runs {a['run_id']} and {b['run_id']} share no labelled cases (dropped: {aligned.dropped}); "
            "were their predictions saved?"
        )
    aligned = Aligned(with_patient_ids(store, aligned.frame), aligned.dropped)
    result = compare_paired(aligned.arrays(), config)
    notes = score_notes(a, b) + list(result.notes)
    if sum(aligned.dropped.values()):
        notes.append(f"{sum(aligned.dropped.values())} cases dropped: {aligned.dropped}")
    result = PairedComparison(**{**result.__dict__, "notes": notes})
    return RunComparison(a, b, aligned, result)


QUADRANTS = ("Both right", "Only A right", "Only B right", "Both wrong")


def quadrants(aligned: pd.DataFrame, threshold_a: float, threshold_b: float) -> pd.DataFrame:
    """Two runs' aligned cases (label, score_a, predicted_a, score_b, predicted_b) with `quadrant` (one of
    QUADRANTS, judged on each run's stored decision) and margin_a/_b = |score - threshold|, how sure each run
    was. Ordered by quadrant, then most confident errors first: by the wrong run's margin (both wrong: the sum
    of the two); both right: the closest call (smaller margin) first. Ties by dataset and case_id."""
    right_a = (aligned["predicted_a"] == aligned["label"]).to_numpy()
    right_b = (aligned["predicted_b"] == aligned["label"]).to_numpy()
    out = aligned.assign(
        margin_a=(aligned["score_a"] - threshold_a).abs(), margin_b=(aligned["score_b"] - threshold_b).abs()
    )
    out["quadrant"] = np.select(
        [right_a & right_b, right_a & ~right_b, ~right_a & right_b], QUADRANTS[:3], QUADRANTS[3]
    )
    surest_error = np.select(
        [right_a & right_b, right_a & ~right_b, ~right_a & right_b],
        [-np.minimum(out["margin_a"], out["margin_b"]), out["margin_b"], out["margin_a"]],
        out["margin_a"] + out["margin_b"],
    )
    order = pd.Categorical(out["quadrant"], categories=QUADRANTS, ordered=True)
    out = out.assign(_q=order, _key=-surest_error).sort_values(["_q", "_key", "dataset", "case_id"])
    return out.drop(columns=["_q", "_key"]).reset_index(drop=True)
