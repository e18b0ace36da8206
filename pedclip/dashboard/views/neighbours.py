"""Neighbours: the k nearest cached cases to a case of the store or to an uploaded image."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pedclip.dashboard import access, thumbs, ui

FROM_CASE, FROM_UPLOAD = "A case of the dataset", "An uploaded image"


def focus_case(dataset: str) -> str | None:
    """The case another page asked for (query parameters, then session state), if it is in this dataset."""
    asked = st.query_params.get("case")
    if asked and st.query_params.get("dataset") == dataset:
        return asked
    focus = st.session_state.get(ui.FOCUS_KEY) or {}
    return focus.get("case_id") if focus.get("dataset") == dataset else None


def case_query(model: dict, dataset: str):
    case_ids = ui.dataset_cases(dataset)["case_id"].tolist()
    wanted = focus_case(dataset)
    index = case_ids.index(wanted) if wanted in case_ids else 0
    case_id = st.selectbox("Case id", case_ids, index=index, key=f"nb_case_{dataset}")
    uid, vector = access.case_query(ui.store(), model["fingerprint"], dataset, case_id)
    case = ui.dataset_cases(dataset).set_index("case_id").loc[case_id].to_dict() | {"case_id": case_id}
    return vector, [uid], case


def upload_query(model: dict):
    upload = st.file_uploader("Chest radiograph", type=list(thumbs.UPLOAD_TYPES), key="nb_upload",
                              help=f"PNG, JPEG or DICOM, up to {thumbs.MAX_UPLOAD_BYTES // 2**20} MB")  # fmt: skip
    if upload is None:
        return None
    data = upload.getvalue()
    thumbs.check_upload(upload.name, len(data))
    image = access.decode_upload(data, upload.name)
    encoder = ui.model_encoder(model)
    st.image(thumbs.to_display(image, thumbs.THUMB_SIZE), caption=f"uploaded: {upload.name}")
    return access.encode_image(encoder, image), [], None


def predictions_table(dataset: str, hits: pd.DataFrame) -> None:
    st.subheader("Every run's prediction for these cases")
    found = ui.predictions_for_cases(dataset, tuple(hits["case_id"]))
    if found.empty:
        st.caption("No run has scored these cases.")
        return
    table = found.pivot_table(index="case_id", columns="run_id", values="score", aggfunc="first")
    table = hits[["rank", "case_id", "label", "distance"]].merge(
        table, left_on="case_id", right_index=True, how="left"
    )
    st.dataframe(table.round(3), hide_index=True)


def render() -> None:
    st.title("Neighbours")
    picked = ui.pick_model_dataset("nb")
    if picked is None:
        return
    model, dataset = picked
    source = st.radio("Query", [FROM_CASE, FROM_UPLOAD], horizontal=True, key="nb_source")
    k = st.slider("Neighbours (k)", 1, 24, 6, key="nb_k")
    query = case_query(model, dataset) if source == FROM_CASE else upload_query(model)
    if query is None:
        st.info("Upload an image to find its nearest cases.")
        return
    vector, exclude, case = query
    if case is not None:
        left, right = st.columns([1, 4])
        image = ui.thumbnail(case)
        if image is not None:
            left.image(image)
        right.markdown(f"**Query:** {ui.case_caption(case)} · split {case.get('split')}")
    hits = access.neighbours(ui.store(), model["fingerprint"], dataset, vector, k, exclude)
    hits["dataset"] = dataset
    hits = hits.merge(ui.dataset_cases(dataset)[["case_id", "patient_id"]], on="case_id", how="left")
    st.subheader(f"{len(hits)} nearest cases")
    ui.gallery(
        hits, lambda c: f"#{c['rank'] + 1} · {ui.case_caption(c)} · distance {c['distance']:.3f}", key="nb"
    )
    predictions_table(dataset, hits)


if __name__ == "__main__":
    ui.guard(render)
