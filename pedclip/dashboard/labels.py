"""Readable names for models and runs, and which run a page opens on: pure functions of the runs and models frames.

A fine-tuned model's spec is a checkpoint path (`local:/.../finetune-...-e8194a`), which says nothing to a
reader; its label says what it is: `demo:clip · fine-tuned on peds-a · sound · finetune-…-e8194a`, from the
finetune run that made it (named by `pedclip.eval.record.model_name`, as the CLI and the report do). Specs a user typed (`demo:clip`, `openclip:...`) are their own labels.
"""

from __future__ import annotations

import json

import pandas as pd

from pedclip.eval.record import LOCAL, RunRecord, model_name

# kinds a reader looks at first; a probe only after them
KEY_KINDS = ("zeroshot", "finetune", "transfer", "rescore", "knn")


def _config(text) -> dict:
    try:
        value = json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _aliases(runs: pd.DataFrame, specs: dict[str, str]) -> dict[str, str]:
    """fingerprint -> a spec a user typed for it (e.g. `demo:clip`, whose weights live in a local checkpoint)."""
    aliases = {fp: spec for fp, spec in specs.items() if not spec.startswith(LOCAL)}
    for run in runs.itertuples():
        model = str(run.model) if isinstance(run.model, str) else ""
        if not model or model.startswith(LOCAL):
            continue
        # a finetune run's fingerprint is its child's; its model is the parent's spec
        fingerprint = (
            _config(run.config).get("parent_fingerprint") if run.kind == "finetune" else run.fingerprint
        )
        if isinstance(fingerprint, str):
            aliases.setdefault(fingerprint, model)
    return aliases


def _made_by(runs: pd.DataFrame, specs: dict[str, str]) -> dict[str, dict]:
    """child fingerprint -> the finetune run that wrote it (run_id, parent spec, dataset, protocol)."""
    by_spec = {spec: fp for fp, spec in specs.items()}
    made = {}
    for run in runs[runs["kind"] == "finetune"].itertuples():
        child = _config(run.config).get("child_spec")
        fingerprint = by_spec.get(child) or (run.fingerprint if isinstance(run.fingerprint, str) else None)
        if fingerprint and fingerprint not in made:
            made[fingerprint] = {
                "run_id": run.run_id,
                "parent": run.model,
                "dataset": run.train_dataset,
                "protocol": run.protocol,
            }
    return made


def model_labels(models: pd.DataFrame, runs: pd.DataFrame) -> dict[str, str]:
    """Label of every model, keyed by fingerprint and by spec (both the models table's and the runs' specs)."""
    specs = {r.fingerprint: str(r.spec) for r in models.itertuples()}
    parents = {
        r.fingerprint: r.parent_fingerprint for r in models.itertuples() if "parent_fingerprint" in models
    }
    aliases, made = _aliases(runs, specs), _made_by(runs, specs)
    by_spec = {spec: fp for fp, spec in specs.items()}

    def label(fingerprint: str, depth: int = 0) -> str:
        if fingerprint in aliases:
            return aliases[fingerprint]
        spec = specs.get(fingerprint, fingerprint)
        if depth > 5:  # a cycle in recorded parents never hangs a page
            return model_name(spec)
        if fingerprint in made:
            info = made[fingerprint]
            parent = str(info["parent"])
            parent_label = label(by_spec[parent], depth + 1) if parent in by_spec else model_name(parent)
            return model_name(parent_label, info["dataset"], info["protocol"], info["run_id"])
        parent = parents.get(fingerprint)
        if isinstance(parent, str) and parent in specs:
            return f"{model_name(spec)} (from {label(parent, depth + 1)})"
        return model_name(spec)

    out = {}
    for fingerprint, spec in specs.items():
        out[fingerprint] = out[spec] = label(fingerprint)
    for run in runs.itertuples():
        if isinstance(run.model, str) and run.model not in out:
            out[run.model] = model_name(run.model)
    return out


def run_rank(run) -> tuple:
    """Sort key, larger first: defined AUROC, on a test split, sound, not a probe, predicts both classes."""
    record = RunRecord.from_row(run)
    recall, specificity = record.metric("recall").value, record.metric("specificity").value
    return (
        record.metric("auroc").value is not None,
        run["split"] == "test",
        run["protocol"] == "sound",
        run["kind"] in KEY_KINDS,
        bool(recall) and bool(specificity),  # neither everything negative nor everything positive
    )


def default_run(runs: pd.DataFrame) -> str | None:
    """The run a page opens on: the newest of the most informative (see `run_rank`); runs are newest first."""
    if runs.empty:
        return None
    best = max(range(len(runs)), key=lambda i: (run_rank(runs.iloc[i]), -i))
    return str(runs["run_id"].iat[best])
