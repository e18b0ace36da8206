"""Models side by side: two runs on the same films compared once by `pedclip compare`'s own `paired_runs`
(AUROC difference with a paired CI, DeLong, McNemar), their scores against each other, and which run got
which case right."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from pedclip.dashboard import analysis, ui
from pedclip.eval.paired_runs import QUADRANTS, quadrants
from pedclip.eval.record import RunRecord

RESAMPLES = 1000  # paired bootstrap draws, as `pedclip compare`: about 0.6 s for 1,000 cases on 2 busy cores
GALLERY = 24  # films shown per quadrant; its table lists them all
ORDER = {
    "Both right": "closest calls first",
    "Only A right": "run B's most confident errors first",
    "Only B right": "run A's most confident errors first",
    "Both wrong": "most confident errors of both first",
}


def pick_pair(runs: pd.DataFrame) -> tuple[str, str] | None:
    """Run A, and run B among the runs that scored the same films (another model's first)."""
    left, right = st.columns(2)
    with left:
        run_a = ui.pick_run(runs, "sbs_a", "Run A")
    partners = analysis.partner_runs(runs, run_a)
    if not partners:
        row = runs.set_index("run_id").loc[run_a]
        st.info(
            f"No other run scored the films of {run_a} ({row['eval_dataset']}/{row['split']}): evaluate "
            "another model on the same dataset and split (`pedclip zeroshot`, `pedclip probe`), or pick "
            "another run A."
        )
        return None
    start = ui.kept("sbs_b", partners, partners[0])
    run_b = right.selectbox(
        "Run B", partners, index=partners.index(start), format_func=ui.run_label(runs), key="sbs_b"
    )
    ui.keep("sbs_b", run_b)
    return run_a, run_b


def dropped_words(dropped: dict[str, int]) -> str:
    words = {"only_in_a": "only in A", "only_in_b": "only in B", "unlabelled": "unlabelled",
             "label_differs": "labels differ"}  # fmt: skip
    parts = [f"{n} {words.get(k, k)}" for k, n in dropped.items() if n]
    return f"dropped: {', '.join(parts)}" if parts else "none dropped"


def headline(doc: dict, dropped: dict[str, int]) -> None:
    """AUROC of each run, the paired difference, DeLong's test and the cases compared."""
    cols = st.columns(5)
    for col, name in zip(cols[:2], ("a", "b"), strict=True):
        col.metric(f"AUROC {name.upper()}", analysis.format_rate(doc[f"auroc_{name}"]))
        lo, hi = doc[f"auroc_{name}_ci"]
        col.caption(f"95% CI [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else "no CI")
    cols[2].metric("ΔAUROC (A − B)", analysis.format_delta(doc["delta_auroc"]))
    lo, hi = doc["ci"]
    cols[2].caption(
        f"paired 95% CI [{lo:+.3f}, {hi:+.3f}] · {doc['resampled']}s resampled"
        if lo is not None and hi is not None
        else "no paired CI"
    )
    cols[3].metric("DeLong p", analysis.format_p(doc["delong_p"]))
    z = doc["delong_z"]
    cols[3].caption(f"z = {z:+.2f}" if z is not None else "z undefined")
    cols[4].metric("Cases compared", doc["n"])
    cols[4].caption(f"{doc['n_positive']} positive · {dropped_words(dropped)}")


def decisions(doc: dict, thresholds: tuple[float, float]) -> None:
    """Sensitivity and specificity at each run's own threshold: A − B, paired CI, McNemar's exact test."""
    cols = st.columns(4)
    for col, name in zip(cols[:2], ("sensitivity", "specificity"), strict=True):
        d = doc[name]
        col.metric(f"Δ{name.capitalize()} (A − B)", analysis.format_delta(d["delta"]))
        lo, hi = d["ci"]
        ci = f" · CI [{lo:+.3f}, {hi:+.3f}]" if lo is not None and hi is not None else ""
        col.caption(
            f"A {analysis.format_rate(d['a'])} · B {analysis.format_rate(d['b'])}{ci} · McNemar exact p "
            f"{analysis.format_p(d['mcnemar_p'])} ({d['a_right_b_wrong']} A-only vs {d['a_wrong_b_right']} B-only)"
        )
    cols[2].metric("Accuracy McNemar p", analysis.format_p(doc["mcnemar_p"]))
    cols[2].caption(
        f"{doc['n_flipped']} cases decided differently: {doc['n_a_right']} A right, {doc['n_b_right']} B right"
    )
    cols[3].metric("Thresholds", f"{thresholds[0]:.2f} / {thresholds[1]:.2f}")
    cols[3].caption("each run's own, on P(pneumonia): A / B")


def scatter(cases: pd.DataFrame, runs: tuple[RunRecord, RunRecord], names: list[str]):
    """Run A's score against run B's, coloured by label, with each run's threshold as a dashed line."""
    shown = cases.assign(label_name=cases["label"].map(dict(enumerate(names))).astype(object).fillna("?"))
    axes = [f"run {k} score ({'top-1 prob.' if r.auc_score_kind != 'p_positive' else 'P(pneumonia)'})"
            for k, r in zip("AB", runs, strict=True)]  # fmt: skip
    fig = px.scatter(
        shown,
        x="score_a",
        y="score_b",
        color="label_name",
        custom_data=["dataset", "case_id"],
        hover_data={
            "case_id": True,
            "quadrant": True,
            "score_a": ":.3f",
            "score_b": ":.3f",
            "label_name": False,
        },
        category_orders={"label_name": names},
        color_discrete_sequence=px.colors.qualitative.D3,
        labels={"score_a": axes[0], "score_b": axes[1], "label_name": "label"},
        height=520,
    )
    fig.update_traces(marker={"size": 8, "opacity": 0.8})
    # a threshold is on P(pneumonia): drawn only where the axis is that score
    if runs[0].auc_score_kind == "p_positive":
        fig.add_vline(x=runs[0].threshold, line_dash="dash", line_color="grey", annotation_text="A threshold")
    if runs[1].auc_score_kind == "p_positive":
        fig.add_hline(y=runs[1].threshold, line_dash="dash", line_color="grey", annotation_text="B threshold")
    fig.update_layout(margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def caption(names: list[str]):
    def text(case: dict) -> str:
        label = dict(enumerate(names)).get(case["label"], "?")
        return f"{case['case_id']} · {label} · A {case['score_a']:.3f} · B {case['score_b']:.3f}"

    return text


def quadrant_tabs(cases: pd.DataFrame, names: list[str]) -> None:
    """One tab per quadrant: a gallery of at most GALLERY films and a table of all its cases."""
    counts = cases["quadrant"].value_counts()
    titles = [f"{q} ({int(counts.get(q, 0))})" for q in QUADRANTS]
    cases = cases.assign(**{"class": cases["label"].map(dict(enumerate(names)))})
    columns = ["case_id", "class", "score_a", "predicted_a", "score_b", "predicted_b", "margin_a", "margin_b",
               "patient_id", "split"]  # fmt: skip
    for tab, quadrant in zip(st.tabs(titles), QUADRANTS, strict=True):
        mine = cases[cases["quadrant"] == quadrant]
        key = "sbs_" + quadrant.lower().replace(" ", "_")
        with tab:
            if mine.empty:
                st.caption("No case here.")
                continue
            st.caption(f"{ORDER[quadrant]} · showing {min(len(mine), GALLERY)} of {len(mine)}")
            ui.gallery(mine.head(GALLERY), caption(names), key=key)
            ui.table(mine[[c for c in columns if c in mine]], key=key)


def render() -> None:
    st.title("Models side by side")
    runs = ui.runs_with_predictions()
    if runs.empty:
        st.info("No runs yet: run `pedclip zeroshot` (or `pedclip demo`).")
        return
    pair = pick_pair(runs)
    if pair is None:
        return
    comparison = ui.paired_comparison(*pair, RESAMPLES)
    records = (RunRecord.from_row(comparison.run_a), RunRecord.from_row(comparison.run_b))
    doc = comparison.as_dict(max_flips=0)
    headline(doc, comparison.aligned.dropped)
    decisions(doc, (records[0].threshold, records[1].threshold))
    st.caption(
        f"Computed once by `pedclip compare`'s analysis: {RESAMPLES} paired bootstrap resamples (seed 0), "
        "DeLong's test on the AUROCs, McNemar's exact test on each run's stored decisions."
    )
    for note in doc["notes"]:
        st.warning(note)
    dataset = records[0].eval_dataset
    names = ui.class_names(dataset)
    # a top-1 axis is the probability of the class picked: how sure a run was is its distance from one half
    thresholds = [r.threshold if r.auc_score_kind == "p_positive" else 0.5 for r in records]
    cases = quadrants(comparison.aligned.frame, *thresholds)
    films = ui.dataset_cases(dataset).drop(columns=["label", "patient_id"], errors="ignore")
    cases = cases.merge(films, on=["dataset", "case_id"], how="left")
    st.subheader("Scores")
    st.caption(f"{len(cases)} cases · click a point to see its film")
    fig = scatter(cases, records, names)
    event = st.plotly_chart(fig, on_select="rerun", selection_mode="points", key="sbs_chart", width="stretch")
    chosen = ui.selected_cases(event, cases)
    if len(chosen):
        case = chosen.iloc[0].to_dict()
        right = ui.film_beside(case, f"**{caption(names)(case)}** · {case['quadrant']}")
        if right.button("Open its case card", key="sbs_open"):
            ui.open_case(case["dataset"], case["case_id"])
    st.subheader("Who got which case right")
    quadrant_tabs(cases, names)


if __name__ == "__main__":
    ui.guard(render)
