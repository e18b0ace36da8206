"""Every run's verdict on some cases: which model said what, at which threshold, and whether it was wrong.

One reader for the search hits, the case card and the dashboard: the predictions of all runs for the given
cases (one store query), each run named by `RunRecord.model_name`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from pedclip.eval.record import RunRecord, short_run_id
from pedclip.store import Store
from pedclip.store.runs import case_predictions_frame

VERDICT_COLUMNS = [
    "case_id",
    "run_id",
    "run",
    "kind",
    "model",
    "protocol",
    "prompts",
    "eval_dataset",
    "split",
    "threshold",
    "score",
    "predicted",
    "label",
    "wrong",
]


def _prompts_name(record: RunRecord) -> str | None:
    prompts = record.config.get("prompts")
    return prompts.get("name") if isinstance(prompts, dict) else None


def case_verdicts(store: Store, dataset: str, case_ids: Sequence[str]) -> pd.DataFrame:
    """VERDICT_COLUMNS for every (case, run) with a prediction, newest run first; `wrong` is None where the
    case has no label."""
    frame = case_predictions_frame(store, dataset, list(case_ids))
    if frame.empty:
        return pd.DataFrame(columns=VERDICT_COLUMNS)
    records = {
        rid: RunRecord.from_row(row)
        for rid, row in frame.drop_duplicates("run_id").set_index("run_id", drop=False).iterrows()
    }
    out = pd.DataFrame(
        {
            "case_id": frame["case_id"],
            "run_id": frame["run_id"],
            "run": frame["run_id"].map(short_run_id),
            "kind": frame["kind"],
            "model": frame["run_id"].map(lambda r: records[r].model_name()),
            "protocol": frame["protocol"],
            "prompts": frame["run_id"].map(lambda r: _prompts_name(records[r])),
            "eval_dataset": frame["eval_dataset"],
            "split": frame["split"],
            "threshold": frame["run_id"].map(lambda r: records[r].threshold),
            "score": frame["score"].astype(float),
            "predicted": frame["predicted"].astype(int),
            "label": frame["label"].astype("Int64"),
        }
    )
    known = out["label"].notna()
    out["wrong"] = pd.Series([None] * len(out), dtype=object)
    out.loc[known, "wrong"] = (out.loc[known, "predicted"] != out.loc[known, "label"].astype(int)).tolist()
    return out[VERDICT_COLUMNS].reset_index(drop=True)


def verdict_summary(verdicts: pd.DataFrame) -> str:
    """`3 runs: 2 right, 1 wrong` (or `no runs`) for one case's verdicts."""
    if verdicts.empty:
        return "no runs"
    wrong = verdicts["wrong"].dropna()
    right = int((~wrong.astype(bool)).sum())
    return f"{len(verdicts)} runs: {right} right, {int(wrong.astype(bool).sum())} wrong"
