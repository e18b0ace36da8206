"""Embedding map: a 2-D projection of one model's cached image embeddings, coloured by what you choose."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from pedclip.dashboard import analysis, ui

PCA, UMAP = "PCA", "UMAP"


@st.cache_data(ttl=ui.READ_TTL_S * 12, show_spinner="projecting ...", max_entries=16)
def projection(home_dir: str, fingerprint: str, datasets: tuple[str, ...], method: str) -> pd.DataFrame:
    """Cases of these datasets with x, y coordinates of their embeddings (cached vectors, never re-encoded)."""
    frames, vectors = [], []
    for dataset in datasets:
        frame, vecs = ui.case_vectors(fingerprint, dataset)
        frames.append(frame)
        vectors.append(vecs)
    cases = pd.concat(frames, ignore_index=True)
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, 2))
    if method == UMAP and len(cases) > 15:
        import umap

        coords = umap.UMAP(n_components=2, random_state=0).fit_transform(matrix)
    else:
        coords = analysis.pca_2d(matrix)
    cases["x"], cases["y"] = coords[:, 0], coords[:, 1]
    return analysis.expand_attributes(cases)


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
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if not points:
        return None
    dataset, case_id = points[0]["customdata"][:2]
    match = cases[(cases["dataset"] == dataset) & (cases["case_id"] == case_id)]
    return match.iloc[0].to_dict() if len(match) else None


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
    methods = [PCA] + ([UMAP] if importlib.util.find_spec("umap") else [])
    method = cols[1].radio(
        "Projection",
        methods,
        horizontal=True,
        key="map_method",
        help=None if UMAP in methods else "install umap-learn for UMAP",
    )
    cases = projection(ui.home(), model["fingerprint"], tuple(datasets), method)
    runs = ui.runs_with_predictions()
    runs = runs[runs["eval_dataset"].isin(datasets)]
    colour = cols[2].selectbox("Colour by", colour_options(cases, runs), key="map_colour")
    if colour in ("prediction", "correctness"):
        run_id = ui.pick_run(runs, "map_run")
        cases = with_run(cases, run_id, ui.class_names(dataset))
        st.caption(f"Predictions as the run stored them, at its own threshold · {ui.SCORE_NOTE}")
    names = dict(enumerate(ui.class_names(dataset)))
    cases["label"] = cases["label"].map(names).astype(object).fillna("unlabelled")
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
        height=560,
        color_discrete_sequence=px.colors.qualitative.D3,
        labels={"x": f"{method} 1", "y": f"{method} 2"},
    )
    fig.update_traces(marker={"size": 8, "opacity": 0.8})
    fig.update_layout(legend_title_text=colour, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    st.caption(
        f"{len(cases)} cases · {method} of {ui.model_label(model['spec'])} embeddings · click a point to open it"
    )
    event = st.plotly_chart(fig, on_select="rerun", selection_mode="points", key="map_chart", width="stretch")
    case = selected_case(event, cases)
    if case is not None:
        left, right = st.columns([1, 4])
        image = ui.thumbnail(case)
        if image is not None:
            left.image(image)
        right.markdown(f"**{ui.case_caption(case)}** · split {case.get('split')}")
        if right.button("Open its neighbors", key="map_open"):
            ui.open_neighbors(case["dataset"], case["case_id"])


if __name__ == "__main__":
    ui.guard(render)
