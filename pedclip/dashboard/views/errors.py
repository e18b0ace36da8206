"""Errors: a run's false positives and false negatives as galleries, most confident first."""

from __future__ import annotations

import streamlit as st

from pedclip.dashboard import analysis, ui
from pedclip.eval import curves


def slice_filter(frame):
    """Keep the rows of one slice (any attribute, split or dataset), or all of them."""
    left, right = st.columns(2)
    column = left.selectbox("Filter by", ["(all cases)", *analysis.slice_columns(frame)], key="errors_slice")
    if column == "(all cases)":
        return frame
    values = sorted(frame[column].dropna().astype(str).unique())
    chosen = right.multiselect(f"{column} is", values, default=values[:1], key=f"errors_values_{column}")
    return frame[frame[column].astype(str).isin(chosen)] if chosen else frame


def render() -> None:
    st.title("Errors")
    runs = ui.runs_with_predictions()
    if runs.empty:
        st.info("No runs yet: run `pedclip zeroshot` (or `pedclip demo`).")
        return
    run_id = ui.pick_run(runs, "errors_run")
    frame = analysis.expand_attributes(ui.run_cases(run_id))
    threshold = ui.decision_threshold(ui.run_info(run_id), key=f"errors_threshold_{run_id}")
    frame = slice_filter(frame)
    limit = st.slider("Show at most", 6, 60, 12, 6, key="errors_limit")
    false_pos, false_neg = curves.errors(frame, curves.decisions(frame, threshold))
    st.caption(f"{len(frame)} cases · {len(false_pos)} false positives · {len(false_neg)} false negatives")
    st.subheader(f"False positives ({len(false_pos)}): normal cases scored as pneumonia, highest score first")
    if false_pos.empty:
        st.success("No false positives.")
    ui.gallery(false_pos.head(limit), ui.case_caption, key="fp")
    st.subheader(f"False negatives ({len(false_neg)}): pneumonia cases scored as normal, lowest score first")
    if false_neg.empty:
        st.success("No false negatives.")
    ui.gallery(false_neg.head(limit), ui.case_caption, key="fn")


if __name__ == "__main__":
    ui.guard(render)
