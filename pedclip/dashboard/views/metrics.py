"""Metrics: ROC, PR and calibration small multiples with each run's operating point, confusion matrices
and metrics by slice for chosen runs. Every figure and number comes from `pedclip.eval`."""

from __future__ import annotations

import streamlit as st

from pedclip.dashboard import analysis, labels, ui
from pedclip.eval import figures
from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.curves import decisions
from pedclip.eval.record import RunRecord
from pedclip.eval.slices import metrics_by, pathogen_auroc

RATES = (
    ("Sensitivity", "sensitivity"),
    ("Specificity", "specificity"),
    ("Precision", "precision"),
    ("Accuracy", "accuracy"),
)


def scored_runs(chosen: list[str]) -> list[figures.ScoredRun]:
    out = []
    for run_id in chosen:
        frame = analysis.expand_attributes(ui.run_cases(run_id).dropna(subset=["label"]))
        if frame.empty:
            continue
        run = RunRecord.from_row(ui.run_info(run_id))
        names = tuple(ui.class_names(run.eval_dataset)) if run.eval_dataset else figures.CLASS_NAMES
        out.append(figures.ScoredRun(run, frame.reset_index(drop=True), ui.model_label(run.model), names))
    return out


def curves(runs: list[figures.ScoredRun], threshold: float | None) -> None:
    st.plotly_chart(figures.roc_figure(runs, threshold), width="stretch")
    st.plotly_chart(figures.pr_figure(runs, threshold), width="stretch")
    st.plotly_chart(figures.calibration_figure(runs), width="stretch")


def operating_points(runs: list[figures.ScoredRun], threshold: float | None, label) -> None:
    st.subheader("Each run's stored predictions" if threshold is None else f"At threshold {threshold:.2f}")
    for run in runs:
        point = run.point(threshold)
        left, right = st.columns([2, 1])
        with left:
            st.markdown(f"**{label(run.run.run_id)}**")
            for col, (title, name) in zip(st.columns(4), RATES, strict=True):
                col.metric(title, analysis.format_rate(getattr(point, name)))
                if point.reason(name):
                    col.caption(f"undefined: {point.reason(name)}")
        right.plotly_chart(
            figures.confusion_figure(point, run.class_names),
            width="stretch",
            key=f"confusion_{run.run.run_id}",
        )


def slices(runs: list[figures.ScoredRun], threshold: float | None) -> None:
    st.subheader("Metrics by slice")
    column = st.selectbox("Slice by", analysis.slice_columns(runs[0].predictions), key="metrics_slice")
    for run in runs:
        st.caption(run.run.run_id)
        frame = run.predictions.assign(predicted=decisions(run.predictions, threshold))
        table = metrics_by(frame, column, BootstrapConfig(n_resamples=0))
        table = table.rename(columns={"group": column, "n_positive": "positives", "recall": "sensitivity"})
        table = table[[column, "n", "positives", "auroc", "sensitivity", "specificity", "accuracy"]]
        for name in ("auroc", "sensitivity", "specificity", "accuracy"):  # "n/a" where a slice lacks a class
            table[name] = table[name].map(analysis.format_rate)
        ui.table(table, f"slices_{run.run.run_id}")
        contrasts = pathogen_auroc(frame, BootstrapConfig(n_resamples=200))
        if not contrasts.empty:
            st.caption("Per pathogen: each pathogen's pneumonia films against the site's normal films")
            ui.table(contrasts, f"pathogens_{run.run.run_id}")


def render() -> None:
    st.title("Metrics")
    runs = ui.runs_with_predictions()
    if runs.empty:
        st.info("No runs yet: run `pedclip zeroshot` (or `pedclip demo`).")
        return
    options = runs["run_id"].tolist()
    default = ui.kept("metrics_runs", options, [labels.default_run(runs)])
    chosen = st.multiselect(
        "Runs",
        options,
        default=default,
        format_func=ui.run_label(runs),
        key="metrics_runs",
        help="opens on the newest sound test run with a defined AUROC",
    )
    ui.keep("metrics_runs", chosen)
    if not chosen:
        st.info("Choose one or more runs.")
        return
    scored = scored_runs(chosen)
    if not scored:
        st.warning("These runs have no labelled predictions to measure.")
        return
    word = "the run's" if len(scored) == 1 else "each run's"
    threshold = ui.decision_threshold(ui.run_info(chosen[0]), key="metrics_threshold", runs_word=word)
    curves(scored, threshold)
    operating_points(scored, threshold, ui.run_label(runs))
    slices(scored, threshold)


if __name__ == "__main__":
    ui.guard(render)
