"""Runs: every run with its model, protocol, datasets, split and headline metrics with CIs; the paper tables."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from pedclip.dashboard import access, analysis, ui

HEADLINES = (
    ("auroc", "AUROC"),
    ("recall", "sensitivity"),
    ("specificity", "specificity"),
    ("accuracy", "accuracy"),
)


def runs_overview(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run with its headline metrics formatted as 'value [low, high]'."""
    rows = []
    for run in runs.itertuples():
        metrics = json.loads(run.metrics or "{}")
        row = {"run_id": run.run_id, "kind": run.kind, "protocol": run.protocol, "model": run.model,
               "train": run.train_dataset, "eval": run.eval_dataset, "split": run.split}  # fmt: skip
        for name, title in HEADLINES:
            row[title] = analysis.format_ci(*analysis.headline(metrics, name))
        row["created"] = run.created
        rows.append(row)
    return pd.DataFrame(rows)


def filtered(runs: pd.DataFrame) -> pd.DataFrame:
    cols = st.columns(5)
    for col, (column, title) in zip(cols, (("kind", "Kind"), ("protocol", "Protocol"), ("model", "Model"),
                                           ("eval_dataset", "Evaluated on")), strict=False):  # fmt: skip
        options = sorted(runs[column].dropna().astype(str).unique())
        chosen = col.multiselect(title, options, key=f"runs_{column}")
        if chosen:
            runs = runs[runs[column].astype(str).isin(chosen)]
    text = cols[4].text_input("Run id contains", key="runs_text")
    if text:
        runs = runs[runs["run_id"].str.contains(text, case=False, regex=False)]
    return runs


def paper_tables() -> None:
    tables = access.paper_tables(ui.paths())
    st.subheader("The study's tables")
    if not tables:
        st.info("No paper tables yet: `pedclip paper` writes Tables 1-4 (ours beside the published numbers).")
        return
    for path in tables:
        with st.expander(str(path.relative_to(ui.paths().reports)), expanded=path.suffix == ".csv"):
            if path.suffix == ".csv":
                st.dataframe(pd.read_csv(path), hide_index=True)
            elif path.suffix == ".md":
                st.markdown(path.read_text())
            else:
                st.json(json.loads(path.read_text()))


def render() -> None:
    st.title("Runs")
    runs = ui.runs_table()
    if runs.empty:
        st.info("No runs yet: run `pedclip eval zeroshot` (or `pedclip demo`).")
    else:
        shown = filtered(runs)
        st.caption(f"{len(shown)} of {len(runs)} runs · metrics as value [95% CI]")
        st.dataframe(runs_overview(shown), hide_index=True, width="stretch")
    paper_tables()


if __name__ == "__main__":
    ui.guard(render)
