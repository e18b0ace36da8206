"""Metrics: ROC and PR with the operating point, calibration, confusion matrix and slices for chosen runs."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from pedclip.dashboard import analysis, labels, ui
from pedclip.dashboard.labels import short_run_id
from pedclip.eval import curves as eval_curves


def curves(frames: dict, threshold: float | None) -> None:
    roc, pr, cal = go.Figure(), go.Figure(), go.Figure()
    roc.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, name="chance")
    cal.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, name="perfect")
    for run_id, frame in frames.items():
        name = short_run_id(run_id)  # unique, and short enough for a legend
        y, s = frame["label"].to_numpy(), frame["score"].to_numpy()
        point = eval_curves.operating_point(y, eval_curves.decisions(frame, threshold), threshold)
        auc = analysis.safe_auroc(y, s)
        r = analysis.roc_points(y, s)
        roc.add_scatter(
            x=r["fpr"], y=r["tpr"], mode="lines", name=f"{name} (AUROC {analysis.format_rate(auc)})"
        )
        roc.add_scatter(
            x=[1 - point.specificity],
            y=[point.sensitivity],
            mode="markers",
            marker={"size": 11},
            name=_point_name(threshold),
        )
        p = analysis.pr_points(y, s)
        pr.add_scatter(x=p["recall"], y=p["precision"], mode="lines", name=name)
        pr.add_scatter(
            x=[point.sensitivity],
            y=[point.precision],
            mode="markers",
            marker={"size": 11},
            name=_point_name(threshold),
        )
        b = analysis.reliability_bins(y, s)
        cal.add_scatter(
            x=b["predicted"],
            y=b["observed"],
            mode="lines+markers",
            name=name,
            text=b["n"].map(lambda n: f"n={n}"),
        )
    layout = {
        "height": 420,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "legend": {"orientation": "h", "y": -0.3, "yanchor": "top"},
    }
    roc.update_layout(title="ROC", xaxis_title="1 - specificity", yaxis_title="sensitivity", **layout)
    pr.update_layout(title="Precision-recall", xaxis_title="recall", yaxis_title="precision", **layout)
    cal.update_layout(
        title="Calibration", xaxis_title="mean predicted P(pneumonia)", yaxis_title="observed rate", **layout
    )
    for col, fig in zip(st.columns(3), (roc, pr, cal), strict=True):
        col.plotly_chart(fig, width="stretch")


def _point_name(threshold: float | None) -> str:
    return "operating point (stored)" if threshold is None else f"operating point @ {threshold:.2f}"


def operating_points(frames: dict, threshold: float | None, label) -> None:
    st.subheader("Each run's stored predictions" if threshold is None else f"At threshold {threshold:.2f}")
    for run_id, frame in frames.items():
        point = eval_curves.operating_point(
            frame["label"].to_numpy(), eval_curves.decisions(frame, threshold)
        )
        left, right = st.columns([2, 1])
        with left:
            st.markdown(f"**{label(run_id)}**")
            rates = (
                ("Sensitivity", "sensitivity"),
                ("Specificity", "specificity"),
                ("Precision", "precision"),
                ("Accuracy", "accuracy"),
            )
            for col, (title, name) in zip(st.columns(4), rates, strict=True):
                col.metric(title, analysis.format_rate(getattr(point, name)))
                if point.reason(name):
                    col.caption(f"undefined: {point.reason(name)}")
        matrix = go.Figure(
            go.Heatmap(
                z=point.matrix(),
                x=["predicted normal", "predicted pneumonia"],
                y=["normal", "pneumonia"],
                text=point.matrix(),
                texttemplate="%{text}",
                colorscale="Blues",
                showscale=False,
            )
        )
        matrix.update_layout(
            height=220, margin={"l": 10, "r": 10, "t": 10, "b": 10}, yaxis={"autorange": "reversed"}
        )
        right.plotly_chart(matrix, width="stretch", key=f"confusion_{run_id}")


def slices(frames: dict, threshold: float | None) -> None:
    st.subheader("Metrics by slice")
    first = next(iter(frames.values()))
    columns = analysis.slice_columns(first)
    column = st.selectbox("Slice by", columns, key="metrics_slice")
    for run_id, frame in frames.items():
        st.caption(run_id)
        table = analysis.slice_table(frame, column, threshold)
        for name in ("auroc", "sensitivity", "specificity", "accuracy"):  # "n/a" where a slice lacks a class
            table[name] = table[name].map(analysis.format_rate)
        st.dataframe(table, hide_index=True)


def render() -> None:
    st.title("Metrics")
    runs = ui.runs_with_predictions()
    if runs.empty:
        st.info("No runs yet: run `pedclip eval zeroshot` (or `pedclip demo`).")
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
    frames = {
        run_id: analysis.expand_attributes(ui.run_cases(run_id).dropna(subset=["label"])) for run_id in chosen
    }
    frames = {k: v for k, v in frames.items() if not v.empty}
    if not frames:
        st.warning("These runs have no labelled predictions to measure.")
        return
    word = "the run's" if len(frames) == 1 else "each run's"
    threshold = ui.decision_threshold(ui.run_info(chosen[0]), key="metrics_threshold", runs_word=word)
    curves(frames, threshold)
    operating_points(frames, threshold, ui.run_label(runs))
    slices(frames, threshold)


if __name__ == "__main__":
    ui.guard(render)
