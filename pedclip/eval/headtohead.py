"""Table 5: CLIP against MedCLIP on identical test films, per site and regime (sound protocol).

Each row pairs the two models' runs of one regime (zero-shot, linear probe, fine-tuned, transferred) on one
site, keeps the films both scored, and reports both AUROCs with CIs, the difference MedCLIP - CLIP with its
paired CI and a p-value, Holm-adjusted across the table's rows. With one run a model, the p-value is
DeLong's; with several training seeds, the runs are paired seed by seed and the difference is the mean over
seeds, with the CI and p-value of a bootstrap over patients and seeds (eval/paired.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.paired import (
    PairedArrays,
    compare_paired,
    delong_test,
    holm_adjust,
    seed_auroc_samples,
    summarise_seeds,
)
from pedclip.eval.seeded import Stacked, run_seed, stack_runs
from pedclip.store import Store
from pedclip.store.runs import runs_frame

REGIMES = ("zero-shot", "linear probe", "fine-tuned", "transferred")
DELTA = "MedCLIP - CLIP [paired 95% CI]"


@dataclass
class Cell:
    """One row's inputs: each model's runs (one per seed, or a single run) and notes on how they were chosen."""

    site: str
    regime: str
    clip: list[dict] = field(default_factory=list)
    medclip: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _interval(value: float | None, lo: float | None, hi: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    f = "{:+.3f}" if signed else "{:.3f}"
    return f.format(value) + (f" [{f.format(lo)}, {f.format(hi)}]" if lo is not None else "")


def _paired_by_seed(cell: Cell) -> tuple[list[dict], list[dict], list[str]]:
    """Runs of both models with a seed in common, in seed order; notes on seeds only one model has."""
    if len(cell.clip) == 1 and len(cell.medclip) == 1:
        return cell.clip, cell.medclip, []
    clip = {run_seed(r): r for r in cell.clip}
    medclip = {run_seed(r): r for r in cell.medclip}
    common = sorted(set(clip) & set(medclip), key=lambda s: (s is None, s))
    notes = []
    if set(clip) != set(medclip):
        notes.append(f"seeds paired: {common}; CLIP had {sorted(clip)}, MedCLIP {sorted(medclip)}")
    return [clip[s] for s in common], [medclip[s] for s in common], notes


def _single_row(stacked: Stacked, bootstrap: BootstrapConfig) -> dict:
    y, ids = stacked.y, stacked.patient_ids
    data = PairedArrays(
        y, stacked.scores[1], stacked.predicted[1], stacked.scores[0], stacked.predicted[0], ids
    )
    out = compare_paired(data, bootstrap)
    med, clip, delta = out.a["auroc"], out.b["auroc"], out.deltas["auroc"]
    return {
        "CLIP AUC [95% CI]": _interval(clip.value, clip.lo, clip.hi),
        "MedCLIP AUC [95% CI]": _interval(med.value, med.lo, med.hi),
        DELTA: _interval(delta.value, delta.lo, delta.hi, signed=True),
        "p": out.delong.p if out.delong else None,
        "test": "DeLong" if out.delong else "; ".join(out.notes),
        "seeds favouring MedCLIP / CLIP": "",
        "delta per seed": "",
    }


def _seeded_row(stacked: Stacked, k: int, seeds: list, bootstrap: BootstrapConfig) -> dict:
    y, ids = stacked.y, stacked.patient_ids
    clip_scores, med_scores = stacked.scores[:k], stacked.scores[k:]
    tests = [delong_test(y, m, c) for m, c in zip(med_scores, clip_scores, strict=True)]
    samples_med = samples_clip = None
    if bootstrap.n_resamples > 0:
        samples_med = seed_auroc_samples(y, med_scores, ids, bootstrap)
        samples_clip = seed_auroc_samples(y, clip_scores, ids, bootstrap)
    med = summarise_seeds(np.array([t.auc_a for t in tests]), samples_med, bootstrap)
    clip = summarise_seeds(np.array([t.auc_b for t in tests]), samples_clip, bootstrap)
    diff = None if samples_med is None else samples_med - samples_clip
    delta = summarise_seeds(np.array([t.delta for t in tests]), diff, bootstrap)
    return {
        "CLIP AUC [95% CI]": _interval(clip.mean, clip.lo, clip.hi) + f" sd {clip.sd:.3f}",
        "MedCLIP AUC [95% CI]": _interval(med.mean, med.lo, med.hi) + f" sd {med.sd:.3f}",
        DELTA: _interval(delta.mean, delta.lo, delta.hi, signed=True),
        "p": delta.p,
        "test": f"bootstrap over patients and {k} seeds (per-seed DeLong p: "
        + ", ".join(f"{t.p:.3g}" for t in tests)
        + ")",
        "seeds favouring MedCLIP / CLIP": f"{delta.n_above_zero} / {delta.n_below_zero}",
        "delta per seed": "; ".join(f"{s}: {t.delta:+.3f}" for s, t in zip(seeds, tests, strict=True)),
    }


def head_to_head_row(store: Store, cell: Cell, bootstrap: BootstrapConfig) -> dict:
    """One row of Table 5; the comparison columns stay blank (with a note) when a model has no run."""
    row = {"dataset": cell.site, "regime": cell.regime, "n": "", "seeds": ""}
    clip, medclip, notes = _paired_by_seed(cell)
    notes = [*cell.notes, *notes]
    stacked = stack_runs(store, [*clip, *medclip]) if clip and medclip else None
    if stacked is None or not len(stacked.y):
        missing = [m for m, runs in (("CLIP", clip), ("MedCLIP", medclip)) if not runs]
        reason = f"no run of {' or '.join(missing)}" if missing else "no stored predictions on common films"
        return {**row, "p": None, "note": "; ".join([f"not compared: {reason}", *notes])}
    k = len(clip)
    row["n"] = len(stacked.y)
    row["seeds"] = ",".join(str(run_seed(r)) for r in clip) if k > 1 else ""
    row.update(
        _seeded_row(stacked, k, [run_seed(r) for r in clip], bootstrap)
        if k > 1
        else _single_row(stacked, bootstrap)
    )
    if stacked.dropped:
        notes.append(f"{stacked.dropped} films not scored by every run dropped")
    row["CLIP runs"] = ", ".join(r["run_id"] for r in clip)
    row["MedCLIP runs"] = ", ".join(r["run_id"] for r in medclip)
    row["note"] = "; ".join(notes)
    return row


def table5_rows(store: Store, cells: list[Cell], bootstrap: BootstrapConfig) -> list[dict]:
    """Every cell's row with Holm's adjustment of the p-values across the rows compared."""
    rows = [head_to_head_row(store, cell, bootstrap) for cell in cells]
    for row, adjusted in zip(rows, holm_adjust([r.get("p") for r in rows]), strict=True):
        row["Holm p"] = adjusted
    order = ["dataset", "regime", "n", "seeds", "CLIP AUC [95% CI]", "MedCLIP AUC [95% CI]", DELTA, "p",
             "Holm p", "test", "seeds favouring MedCLIP / CLIP", "delta per seed", "CLIP runs", "MedCLIP runs",
             "note"]  # fmt: skip
    return [{k: row.get(k, "") for k in order} for row in rows]


TABLE5_NOTES = [
    "Sound protocol: each regime's test split, P(pneumonia) scores; only films both models scored are compared.",
    "Difference = AUROC(MedCLIP) - AUROC(CLIP). One run a model: paired bootstrap CI (patients resampled) and "
    "DeLong's test for correlated ROC curves. Several seeds: runs paired by seed, mean difference over seeds, CI "
    "and two-sided p from a bootstrap over patients and seeds.",
    "Holm p: Holm's step-down adjustment of p across this table's rows (family-wise error 5%).",
]


def probe_runs(store: Store, fingerprint: str | None, dataset: str) -> tuple[list[dict], list[str]]:
    """The sound linear-probe run of a model on a site (fit on its train split, scored on its test split)."""
    from pedclip.store.runs import get_run

    if fingerprint is None:
        return [], []
    frame = runs_frame(store, kinds=["probe"])
    keep = (
        (frame["fingerprint"] == fingerprint)
        & (frame["train_dataset"] == dataset)
        & (frame["eval_dataset"] == dataset)
        & (frame["split"] == "test")
        & (frame["status"] == "done")
    )
    ids = sorted(frame.loc[keep, "run_id"])
    if not ids:
        return [], []
    notes = [f"{len(ids)} probe runs match ({', '.join(ids)}); took {ids[0]}"] if len(ids) > 1 else []
    return [get_run(store, ids[0])], notes
