"""Runs of one cell over several training seeds: stacked on the films they all scored, summarised.

A cell of Tables 3-5 may hold one run per seed. Its AUROC is the mean over seeds, its sd the spread over
seeds, and its CI that of the mean from a bootstrap over patients and seeds together (eval/paired.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.evaluation import auc_score_of
from pedclip.eval.metrics import Metric
from pedclip.eval.paired import SeedSummary, seed_auroc_samples, summarise_seeds
from pedclip.eval.paired_runs import KEY, with_patient_ids
from pedclip.eval.pick import training_config
from pedclip.store import Store
from pedclip.store.runs import predictions_frame


@dataclass(frozen=True)
class Stacked:
    """S runs on the n labelled films every one of them scored (rows of `scores` follow `runs`)."""

    runs: list[dict]
    cases: pd.DataFrame  # dataset, case_id, label, patient_id
    scores: np.ndarray  # (S, n)
    predicted: np.ndarray  # (S, n)
    dropped: int  # labelled films some run scored but not all

    @property
    def y(self) -> np.ndarray:
        return self.cases["label"].to_numpy(int)

    @property
    def patient_ids(self) -> np.ndarray:
        return self.cases["patient_id"].to_numpy(object)


def stack_runs(store: Store, runs: list[dict]) -> Stacked | None:
    """The runs' predictions on the films all of them scored; None when a run has none stored."""
    frames = [predictions_frame(store, r["run_id"]) for r in runs]
    frames = [
        f[f["label"].notna()].assign(score=lambda g: auc_score_of(g)) for f in frames
    ]  # the AUC's score
    if not frames or any(f.empty for f in frames):
        return None
    union = pd.concat([f[KEY] for f in frames]).drop_duplicates()
    common = frames[0][[*KEY, "label"]]
    for f in frames[1:]:
        common = common.merge(f[[*KEY, "label"]], on=[*KEY, "label"])  # a label disagreement drops the film
    common = common.sort_values(KEY).reset_index(drop=True)
    aligned = [common[KEY].merge(f, on=KEY, how="left") for f in frames]
    return Stacked(
        runs,
        with_patient_ids(store, common.assign(label=common["label"].astype(int))),
        np.stack([a["score"].to_numpy(float) for a in aligned]),
        np.stack([a["predicted"].to_numpy(int) for a in aligned]),
        len(union) - len(common),
    )


def run_seed(run: dict) -> int | None:
    return training_config(run).get("seed")


def mean_auroc(stacked: Stacked, aurocs: list[float], bootstrap: BootstrapConfig) -> SeedSummary:
    """Mean AUROC over the stacked seeds with the CI of the mean (patients and seeds resampled)."""
    samples = None
    if bootstrap.n_resamples > 0 and len(stacked.y):
        samples = seed_auroc_samples(stacked.y, stacked.scores, stacked.patient_ids, bootstrap)
    return summarise_seeds(np.asarray(aurocs, float), samples, bootstrap)


def stored_value(run: dict, metric: str) -> float | None:
    return Metric.from_dict(run["metrics"].get(metric)).value


def seed_columns(runs: list[dict], auroc: SeedSummary | None) -> dict:
    """The seed columns of a Table 3/4 row: which seeds, the AUROC's sd and each seed's AUROC."""
    seeds = [run_seed(r) for r in runs]
    per_seed = [stored_value(r, "auroc") for r in runs]
    return {
        "seeds": ",".join("" if s is None else str(s) for s in seeds),
        "AUC sd": None if auroc is None or auroc.sd is None else round(auroc.sd, 4),
        "AUC per seed": "; ".join(
            f"{s}: {v:.4f}" for s, v in zip(seeds, per_seed, strict=True) if v is not None
        )
        if len(runs) > 1
        else "",
    }


def seeded_metrics(store: Store, runs: list[dict], keys, bootstrap: BootstrapConfig):
    """({metric: Metric} averaged over the runs, AUROC summary or None); one run: its stored metrics."""
    if len(runs) == 1:
        return {k: Metric.from_dict(v) for k, v in runs[0]["metrics"].items()}, None
    means = {}
    for key in keys:
        values = [stored_value(r, key) for r in runs]
        means[key] = Metric(float(np.mean(values))) if all(v is not None for v in values) else Metric(None)
    stacked = stack_runs(store, runs)
    aurocs = [stored_value(r, "auroc") for r in runs]
    if stacked is None or any(v is None for v in aurocs):
        return means, None
    summary = mean_auroc(stacked, aurocs, bootstrap)
    means["auroc"] = Metric(summary.mean, lo=summary.lo, hi=summary.hi)
    return means, summary
