"""Runs: every run with its model, protocol, datasets, split and headline metrics with CIs; the paper tables."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from pedclip.dashboard import access, analysis, ui
from pedclip.eval.record import RunRecord, short_run_id

METRICS = (
    ("recall", "sensitivity [95% CI]"),
    ("specificity", "specificity [95% CI]"),
    ("accuracy", "accuracy"),
    ("precision", "precision"),
    ("f1", "F1"),
    ("auprc", "AUPRC"),
    ("brier", "Brier"),
    ("ece", "ECE"),
)
KEY_COLUMNS = [
    "run",
    "kind",
    "model",
    "dataset",
    "protocol",
    "split",
    "n",
    "AUROC",
    "sensitivity",
    "specificity",
    "created",
]
MORE_COLUMNS = [
    "run id",
    "train dataset",
    "model spec",
    *(t for _, t in METRICS),
    "threshold",
    "fingerprint",
    "status",
]


def run_size(config: dict) -> int | None:
    """Cases the run was measured on, as its config records it (a finetune run under `evaluation`)."""
    for source in (config, config.get("evaluation") or {}):
        if isinstance(source, dict) and isinstance(source.get("n"), int):
            return source["n"]
    return None


def runs_overview(runs: pd.DataFrame, label=str) -> pd.DataFrame:
    """One row per run, key columns first; undefined metrics as 'n/a (why)'; AUROC (and the extras) with CIs."""
    rows = []
    for row_of_table in runs.to_dict("records"):
        record = RunRecord.from_row(row_of_table)
        run, config = pd.Series(row_of_table), record.config
        row = {
            "run": short_run_id(run.run_id),
            "kind": run.kind,
            "model": label(run.model),
            "dataset": run.eval_dataset,
            "protocol": run.protocol,
            "split": run.split,
            "n": run_size(config),
            "AUROC": analysis.format_metric(record.metric("auroc")),
            "sensitivity": analysis.format_metric(record.metric("recall"), ci=False),
            "specificity": analysis.format_metric(record.metric("specificity"), ci=False),
            "created": run.created,
            "run id": run.run_id,
            "train dataset": run.train_dataset,
            "model spec": run.model,
            "threshold": record.threshold,
            "fingerprint": run.fingerprint,
            "status": run.status,
        }
        row.update({title: analysis.format_metric(record.metric(name)) for name, title in METRICS})
        rows.append(row)
    return pd.DataFrame(rows, columns=KEY_COLUMNS + MORE_COLUMNS).astype({"n": "Int64"})


def filtered(runs: pd.DataFrame) -> pd.DataFrame:
    cols = st.columns(5)
    for col, (column, title) in zip(
        cols,
        (("kind", "Kind"), ("protocol", "Protocol"), ("model", "Model"), ("eval_dataset", "Evaluated on")),
        strict=False,
    ):
        options = sorted(runs[column].dropna().astype(str).unique())
        format_func = ui.model_label if column == "model" else str
        chosen = col.multiselect(title, options, key=f"runs_{column}", format_func=format_func)
        if chosen:
            runs = runs[runs[column].astype(str).isin(chosen)]
    text = cols[4].text_input("Run id contains", key="runs_text")
    if text:
        runs = runs[runs["run_id"].str.contains(text, case=False, regex=False)]
    return runs


def runs_table(shown: pd.DataFrame) -> None:
    """The key columns, plus whichever of the others the user picks."""
    more = st.multiselect(
        "More columns",
        MORE_COLUMNS,
        default=ui.kept("runs_more", MORE_COLUMNS, []),
        key="runs_more",
        placeholder="add columns: train dataset, model spec, accuracy, ...",
    )
    ui.keep("runs_more", more)
    table = runs_overview(shown, ui.model_label)[KEY_COLUMNS + [c for c in MORE_COLUMNS if c in more]]
    text = st.column_config.TextColumn
    config = {
        "run": text("run", width=130, help="kind-…-suffix; the full id is under More columns: run id"),
        "kind": text("kind", width=65),
        "model": text("model", width=165, help="spec: More columns"),
        "dataset": text("dataset", width=70),
        "protocol": text("protocol", width=65),
        "split": text("split", width=45),
        "n": st.column_config.NumberColumn("n", width=45),
        "AUROC": text("AUROC [95% CI]", width=145),
        "sensitivity": text("sens.", width=55, help="sensitivity (recall)"),
        "specificity": text("spec.", width=55, help="specificity"),
        "created": st.column_config.DatetimeColumn("created", format="MM-DD HH:mm", width=85),
    }
    ui.table(table, "runs", width="stretch", column_config=config)


def paper_tables() -> None:
    tables = access.paper_tables(ui.paths())
    st.subheader("The study's tables")
    if not tables:
        st.info("No paper tables yet: `pedclip paper` writes Tables 1-4 (ours beside the published numbers).")
        return
    for path in tables:
        with st.expander(str(path.relative_to(ui.paths().reports)), expanded=path.suffix == ".csv"):
            if path.suffix == ".csv":
                # as written: blank cells (a published row has no CI or run) stay blank instead of "None"
                key = str(path.relative_to(ui.paths().reports).with_suffix("")).replace("/", "_")
                ui.table(pd.read_csv(path, dtype=str, keep_default_na=False), key)
            elif path.suffix == ".md":
                st.markdown(path.read_text())
            else:
                st.json(json.loads(path.read_text()))


def render() -> None:
    st.title("Runs")
    runs = ui.runs_table()
    if runs.empty:
        st.info("No runs yet: run `pedclip zeroshot` (or `pedclip demo`).")
    else:
        shown = filtered(runs)
        st.caption(f"{len(shown)} of {len(runs)} runs · metrics as value [95% CI]")
        runs_table(shown)
    paper_tables()


if __name__ == "__main__":
    ui.guard(render)
