"""Neighbors: the k nearest cached cases to a case of the store or to an uploaded image."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pedclip.dashboard import access, analysis, door, thumbs, ui

FROM_CASE, FROM_UPLOAD = "A case of the dataset", "An uploaded image"
SEEN_PARAMS = "_nb_seen_params"


def take_focus() -> None:
    ui.take_focus(ui.FOCUS_KEY, SEEN_PARAMS, lambda d: ("nb_dataset", f"nb_case_{d}"))


def case_query(model: dict, dataset: str):
    case_ids = ui.dataset_cases(dataset)["case_id"].tolist()
    key = f"nb_case_{dataset}"
    case_id = st.selectbox(
        "Case id", case_ids, index=case_ids.index(ui.kept(key, case_ids, case_ids[0])), key=key
    )
    ui.keep(key, case_id)
    uid, vector = access.case_query(ui.store(), model["fingerprint"], dataset, case_id)
    case = ui.dataset_cases(dataset).set_index("case_id").loc[case_id].to_dict() | {"case_id": case_id}
    return vector, [uid], case


def upload_query(model: dict):
    if door.read_only():
        st.caption("Read-only dashboard: uploads are off; pick a case instead.")
        return None
    upload = st.file_uploader(
        "Chest radiograph",
        type=list(thumbs.UPLOAD_TYPES),
        key="nb_upload",
        help=f"PNG, JPEG or DICOM, up to {thumbs.MAX_UPLOAD_BYTES // 2**20} MB",
    )
    if upload is None:
        return None
    data = upload.getvalue()
    thumbs.check_upload(upload.name, len(data))
    image = access.decode_upload(data, upload.name)
    encoder = ui.model_encoder(model)
    st.image(thumbs.to_display(image, thumbs.THUMB_SIZE), caption=f"uploaded: {upload.name}")
    return access.encode_image(encoder, image), [], None


def neighbor_caption(case: dict) -> str:
    return (
        f"#{case['rank']} · {ui.case_caption(case)} · distance {analysis.format_distance(case['distance'])} "
        f"(cosine {case['similarity']:.6f})"
    )


def predictions_table(dataset: str, hits: pd.DataFrame) -> None:
    st.subheader("Every run's prediction for these cases")
    st.caption("distance = 1 - cosine similarity of the embeddings; scores are each run's P(pneumonia)")
    found = ui.predictions_for_cases(dataset, tuple(hits["case_id"]))
    table = hits[["rank", "case_id", "label", "similarity", "distance"]].copy()
    table["distance"] = table["distance"].map(analysis.format_distance)
    if found.empty:
        st.caption("No run has scored these cases.")
    else:
        scores = found.pivot_table(index="case_id", columns="run_id", values="score", aggfunc="first")
        table = table.merge(scores.round(3), left_on="case_id", right_index=True, how="left")
    config = {"similarity": st.column_config.NumberColumn("cosine", format="%.6f")}
    ui.table(table, "neighbors", column_config=config)


def render() -> None:
    st.title("Neighbors")
    take_focus()
    picked = ui.pick_model_dataset("nb")
    if picked is None:
        return
    model, dataset = picked
    source = st.radio("Query", [FROM_CASE, FROM_UPLOAD], horizontal=True, key="nb_source")
    k = st.slider("Neighbors (k)", 1, 24, 6, key="nb_k")
    query = case_query(model, dataset) if source == FROM_CASE else upload_query(model)
    if query is None:
        st.info("Upload an image to find its nearest cases.")
        return
    vector, exclude, case = query
    if case is not None:
        ui.film_beside(case, f"**Query:** {ui.case_caption(case)} · split {case.get('split')}")
    hits = access.neighbors(ui.store(), model["fingerprint"], dataset, vector, k, exclude)
    served = access.served_by(hits.attrs.get("index", {}))
    hits["dataset"] = dataset
    hits["rank"] = hits["rank"] + 1  # #1 is the nearest, in the gallery and the table alike
    hits = hits.merge(ui.dataset_cases(dataset)[["case_id", "patient_id"]], on="case_id", how="left")
    st.subheader(f"{len(hits)} nearest cases")
    st.caption(served)
    ui.gallery(hits, neighbor_caption, key="nb")
    predictions_table(dataset, hits)


if __name__ == "__main__":
    ui.guard(render)
