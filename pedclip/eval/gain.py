"""Did fine-tuning help? Each model's sound-protocol fine-tuned run against its own zero-shot run on the same
test cases: both AUROCs with their CIs and the paired bootstrap CI of the difference.

Separate CIs overlap long before a difference is in doubt (both runs score the same films), so the verdict
comes from the paired interval only.
"""

from __future__ import annotations

import numpy as np

from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.compare import compare_predictions
from pedclip.eval.metrics import Metric
from pedclip.eval.paired import delong_test, seed_auroc_samples, summarise_seeds
from pedclip.eval.paired_runs import with_patient_ids
from pedclip.eval.seeded import stack_runs
from pedclip.store import Store
from pedclip.store.runs import get_run, predictions_frame

SOURCE = "sound"


def verdict(delta: Metric) -> str:
    """Higher / lower when the paired CI excludes zero, else no clear difference."""
    if delta.value is None or delta.lo is None:
        return f"undefined: {delta.reason}" if delta.reason else "undefined"
    if delta.lo > 0:
        return "fine-tuned higher"
    if delta.hi < 0:
        return "fine-tuned lower"
    return "no clear difference (CI of the difference includes 0)"


def _interval(metric: Metric, signed: bool = False) -> str:
    if metric.value is None or metric.lo is None:
        return metric.format(3)
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(metric.value)} [{f.format(metric.lo)}, {f.format(metric.hi)}]"


def gain_row(store: Store, zeroshot: dict, finetuned: dict, bootstrap: BootstrapConfig) -> dict | None:
    """One table row from a zero-shot and a fine-tuned row of the paper tables (same site, method, protocol)."""
    if ", " in str(finetuned["run_id"]):  # one fine-tuning run per seed
        return seeded_gain_row(store, zeroshot, finetuned, bootstrap)
    a, b = predictions_frame(store, zeroshot["run_id"]), predictions_frame(store, finetuned["run_id"])
    if a.empty or b.empty:  # a run computed but not saved (PaperConfig.save_runs=False)
        return None
    a, b = with_patient_ids(store, a), with_patient_ids(store, b)
    comparison = compare_predictions(a, b, bootstrap)
    delta = comparison.deltas["auroc"]
    return {
        "dataset": zeroshot["dataset"],
        "method": zeroshot["method"],
        "zero-shot AUC [95% CI]": _interval(_stored_auroc(store, zeroshot["run_id"])),
        "fine-tuned AUC [95% CI]": _interval(_stored_auroc(store, finetuned["run_id"])),
        "difference [paired 95% CI]": _interval(delta, signed=True),
        "n": comparison.n_common,
        "verdict": verdict(delta),
        "zero-shot run": zeroshot["run_id"],
        "fine-tuning run": finetuned["run_id"],
    }


def seeded_gain_row(store: Store, zeroshot: dict, finetuned: dict, bootstrap: BootstrapConfig) -> dict | None:
    """Fine-tuned over several seeds vs the (deterministic) zero-shot run: mean gain over seeds, its CI from a
    bootstrap over patients and seeds."""
    ids = str(finetuned["run_id"]).split(", ")
    stacked = stack_runs(store, [get_run(store, zeroshot["run_id"]), *(get_run(store, i) for i in ids)])
    if stacked is None:
        return None
    y, zs, ft = stacked.y, stacked.scores[0], stacked.scores[1:]
    gains = np.array([delong_test(y, s, zs).delta for s in ft])
    samples = None
    if bootstrap.n_resamples > 0:
        base = seed_auroc_samples(y, zs[None, :], stacked.patient_ids, bootstrap)
        samples = seed_auroc_samples(y, ft, stacked.patient_ids, bootstrap) - base
    summary = summarise_seeds(gains, samples, bootstrap)
    delta = Metric(summary.mean, lo=summary.lo, hi=summary.hi)
    return {
        "dataset": zeroshot["dataset"],
        "method": zeroshot["method"],
        "zero-shot AUC [95% CI]": _interval(_stored_auroc(store, zeroshot["run_id"])),
        "fine-tuned AUC [95% CI]": f"{finetuned['AUC']} [{finetuned['AUC 95% CI']}]",
        "difference [paired 95% CI]": _interval(delta, signed=True)
        + f" ({summary.n_above_zero}/{len(ids)} seeds gain)",
        "n": len(y),
        "verdict": verdict(delta),
        "zero-shot run": zeroshot["run_id"],
        "fine-tuning run": finetuned["run_id"],
    }


def _stored_auroc(store: Store, run_id: str) -> Metric:
    return Metric.from_dict(get_run(store, run_id)["metrics"].get("auroc"))


def gain_rows(store: Store, zeroshot_rows: list[dict], finetune_rows: list[dict], bootstrap: BootstrapConfig):
    """A row per (dataset, method) that has both a sound zero-shot run and a sound fine-tuning run."""
    finetuned = {
        (r["dataset"], r["method"]): r for r in finetune_rows if r["source"] == SOURCE and r["run_id"]
    }
    rows = []
    for zs in zeroshot_rows:
        ft = finetuned.get((zs["dataset"], zs["method"]))
        if zs["source"] == SOURCE and zs["run_id"] and ft is not None:
            rows.append(gain_row(store, zs, ft, bootstrap))
    return [row for row in rows if row is not None]
