"""Embedding map: a 2-D map (PCA or UMAP) of one model's cached image embeddings, computed once and kept in
the store, coloured by what you choose; box or lasso selection opens the chosen cases as a gallery, and a
second model's map of the same films can sit beside it."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from pedclip.dashboard import access, analysis, ui
from pedclip.eval.projection import umap_available

METHODS = {"PCA": "pca", "UMAP": "umap"}
GALLERY_MAX = 48


@st.cache_data(ttl=ui.READ_TTL_S * 12, show_spinner="mapping the embeddings ...", max_entries=16)
def projection(home_dir: str, fingerprint: str, datasets: tuple[str, ...], method: str):
    """(cases of these datasets with x, y, the seconds it took, whether the store served it)."""
    start = time.perf_counter()
    cases, served = access.case_map(access.open_store(home_dir), fingerprint, datasets, method)
    return analysis.expand_attributes(cases), time.perf_counter() - start, served


def colour_options(cases: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    base = ["label", "dataset", "split"] + [c for c in cases.columns if c.startswith("attr:")]
    return base + (["prediction", "correctness"] if not runs.empty else [])


def with_run(cases: pd.DataFrame, run_id: str, class_names: list[str]) -> pd.DataFrame:
    """The cases with the run's stored prediction (named by class) and whether it is right."""
    predictions = ui.run_cases(run_id)[["dataset", "case_id", "score", "predicted"]]
    out = cases.merge(predictions, on=["dataset", "case_id"], how="left")
    predicted = out["predicted"].astype("Int64")
    out["prediction"] = predicted.map(dict(enumerate(class_names))).astype(object).fillna("not scored")
    right = predicted == out["label"]
    out["correctness"] = np.where(
        out["score"].isna() | out["label"].isna(),
        "not scored",
        np.where(right.fillna(False), "correct", "wrong"),
    )
    return out


def selected_case(event, cases: pd.DataFrame) -> dict | None:
    chosen = ui.selected_cases(event, cases)
    return chosen.iloc[0].to_dict() if len(chosen) else None


def map_figure(cases: pd.DataFrame, colour: str, method: str, height: int):
    fig = px.scatter(
        cases,
        x="x",
        y="y",
        color=cases[colour].astype(str),
        custom_data=["dataset", "case_id"],
        hover_data={
            "case_id": True,
            "label": True,
            "patient_id": True,
            "split": True,
            "x": False,
            "y": False,
        },
        height=height,
        color_discrete_sequence=px.colors.qualitative.D3,
        labels={"x": f"{method} 1", "y": f"{method} 2"},
    )
    fig.update_traces(marker={"size": 8, "opacity": 0.8})
    fig.update_layout(legend_title_text=colour, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


def model_map(model: dict, datasets: list[str], method: str) -> pd.DataFrame:
    cases, seconds, served = projection(ui.home(), model["fingerprint"], tuple(datasets), method)
    used = cases["method"].iat[0].upper() if len(cases) else method.upper()
    where = "served from the store" if served else f"computed in {seconds:.1f} s and kept in the store"
    note = f" (UMAP needs at least 16 films; this is {used})" if used.lower() != method else ""
    st.caption(f"{len(cases)} cases · {used} of {ui.model_label(model['spec'])} embeddings · {where}{note}")
    return cases


def coloured(cases: pd.DataFrame, colour: str, run_id: str | None, dataset: str) -> pd.DataFrame:
    if run_id is not None:
        cases = with_run(cases, run_id, ui.class_names(dataset))
    names = dict(enumerate(ui.class_names(dataset)))
    return cases.assign(label=cases["label"].map(names).astype(object).fillna("unlabelled"))


def second_model(model: dict, datasets: list[str]) -> dict | None:
    """Another model embedded on every mapped dataset, to map beside the first; None when not asked."""
    models = ui.embedded_models()
    covers = models.groupby("fingerprint")["dataset"].apply(lambda d: set(datasets) <= set(d))
    others = models[
        models["fingerprint"].isin(covers[covers].index) & (models["fingerprint"] != model["fingerprint"])
    ]
    others = others.drop_duplicates("fingerprint")
    if others.empty:
        return None
    if not st.toggle("Side by side with another model", key="map_pair"):
        return None
    specs = others["spec"].tolist()
    spec = st.selectbox("Second model", specs, format_func=ui.model_label, key="map_second")
    return others[others["spec"] == spec].iloc[0].to_dict()


def show_selection(chosen: pd.DataFrame) -> None:
    """One picked film: its thumbnail and links; several (box or lasso): a gallery and a table of them all."""
    if chosen.empty:
        st.caption("Click a point to open it, or draw a box or lasso (the chart's toolbar) to see a group.")
        return
    if len(chosen) == 1:
        case = chosen.iloc[0].to_dict()
        case["label"] = case["label_code"]  # the caption names the class from its code
        right = ui.film_beside(case, f"**{ui.case_caption(case)}** · split {case.get('split')}")
        if right.button("Open its neighbors", key="map_open"):
            ui.open_neighbors(case["dataset"], case["case_id"])
        if right.button("Open its case card", key="map_card"):
            ui.open_case(case["dataset"], case["case_id"])
        return
    counts = chosen["label"].value_counts().to_dict()
    summary = ", ".join(f"{n} {name}" for name, n in counts.items())
    shown = f"the first {GALLERY_MAX}" if len(chosen) > GALLERY_MAX else "all"
    st.subheader(f"{len(chosen)} selected films ({summary}); {shown} below")
    keep = [
        c
        for c in ("dataset", "case_id", "label", "split", "patient_id", "prediction", "score")
        if c in chosen
    ]
    ui.table(chosen[keep], "map_selection", height=220)
    gallery = chosen.head(GALLERY_MAX).assign(label=chosen["label_code"].head(GALLERY_MAX))
    ui.gallery(gallery, ui.case_caption, key="map_gallery")


def render() -> None:
    st.title("Embedding map")
    picked = ui.pick_model_dataset("map")
    if picked is None:
        return
    model, dataset = picked
    models = ui.embedded_models()
    mine = models[models["fingerprint"] == model["fingerprint"]]["dataset"].tolist()
    cols = st.columns(3)
    datasets = cols[0].multiselect("Datasets on the map", mine, default=[dataset], key="map_datasets") or [
        dataset
    ]
    names = ["PCA"] + (["UMAP"] if umap_available() else [])
    method = cols[1].radio(
        "Projection",
        names,
        horizontal=True,
        key="map_method",
        help=None if "UMAP" in names else "install umap-learn for UMAP: pip install 'pedclip[dashboard]'",
    )
    runs = ui.runs_with_predictions()
    runs = runs[runs["eval_dataset"].isin(datasets)]
    other = second_model(model, datasets)
    panels = [model] + ([other] if other else [])
    maps = []
    for column, shown in zip(st.columns(len(panels)), panels, strict=True):
        with column:
            maps.append(model_map(shown, datasets, METHODS[method]))
    colour = cols[2].selectbox("Colour by", colour_options(maps[0], runs), key="map_colour")
    run_id = None
    if colour in ("prediction", "correctness"):
        run_id = ui.pick_run(runs, "map_run")
        st.caption(f"Predictions as the run stored them, at its own threshold · {ui.SCORE_NOTE}")
    chosen = []
    for column, shown, cases, key in zip(
        st.columns(len(panels)), panels, maps, ("map_chart", "map_chart_b"), strict=False
    ):
        cases = coloured(cases.assign(label_code=cases["label"]), colour, run_id, dataset)
        fig = map_figure(cases, colour, method, 560 if len(panels) == 1 else 480)
        with column:
            if len(panels) > 1:
                st.markdown(f"**{ui.model_label(shown['spec'])}**")
            event = st.plotly_chart(
                fig, on_select="rerun", selection_mode=("points", "box", "lasso"), key=key, width="stretch"
            )
        chosen.append(ui.selected_cases(event, cases))
    picked_cases = pd.concat(chosen).drop_duplicates(["dataset", "case_id"]) if chosen else pd.DataFrame()
    show_selection(picked_cases)


if __name__ == "__main__":
    ui.guard(render)
