"""Every prompt set tried in the prompt lab on a model and dataset, with its AUROC: the lab's history."""

from __future__ import annotations

import hashlib
import json

import pandas as pd

from pedclip.store.db import Store, dumps


def prompts_document(classes: dict[str, list[str]], positive: str) -> dict:
    return {"positive": positive, "classes": {k: list(v) for k, v in classes.items()}}


def prompts_key(document: dict) -> str:
    return hashlib.sha256(dumps(document).encode()).hexdigest()


def record_trial(
    store: Store,
    fingerprint: str,
    dataset: str,
    split: str,
    document: dict,
    auroc: tuple[float | None, float | None, float | None],
    n_cases: int,
) -> None:
    """Add a trial, or count a repeat of the same prompts (its AUROC refreshed: the cases may have changed)."""
    value, lo, hi = auroc
    with store.write() as con:
        con.execute(
            """INSERT INTO prompt_trials (fingerprint, dataset, split, prompts_key, prompts, auroc, auroc_lo,
                   auroc_hi, n_cases) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT DO UPDATE SET tries = tries + 1, last_tried = now(),
                   auroc = excluded.auroc, auroc_lo = excluded.auroc_lo, auroc_hi = excluded.auroc_hi,
                   n_cases = excluded.n_cases""",
            [fingerprint, dataset, split, prompts_key(document), dumps(document), value, lo, hi, n_cases],
        )


def trials_frame(store: Store, fingerprint: str, dataset: str) -> pd.DataFrame:
    """The trials on (model, dataset), newest first: split, prompts (document), AUROC and CI, cases, tries."""
    with store.read() as con:
        frame = con.execute(
            """SELECT split, prompts_key, prompts, auroc, auroc_lo, auroc_hi, n_cases, tries, first_tried,
                      last_tried
               FROM prompt_trials WHERE fingerprint = ? AND dataset = ? ORDER BY last_tried DESC""",
            [fingerprint, dataset],
        ).df()
    frame["prompts"] = frame["prompts"].map(json.loads)
    return frame
