"""Find cases: films of a dataset ranked by words through the model's text tower (`eval.search`)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pedclip.dashboard import ui
from pedclip.eval.search import query_vector, search_cases, words_query
from pedclip.eval.verdicts import verdict_summary


def hit_caption(case: dict) -> str:
    return f"#{case['rank']} · {ui.case_caption(case)} · cosine {case['similarity']:.4f} · {case['runs']}"


def render() -> None:
    st.title("Find cases")
    picked = ui.pick_model_dataset("fc")
    if picked is None:
        return
    model, dataset = picked
    classes = ui.class_names(dataset)
    text = st.text_input("Words", "right lower lobe consolidation", key="fc_text")
    left, right = st.columns(2)
    k = left.slider("Films (k)", 4, 96, 24, step=4, key="fc_k")
    about = right.selectbox("The words describe", classes, index=len(classes) - 1, key="fc_about")
    if not text.strip():
        st.info("Type some words to search the films with.")
        return
    encoder = ui.model_encoder(model)
    vec = query_vector(ui.workspace(ui.home()).texts.vectors(encoder, [text.strip()]))
    result = search_cases(ui.store(), model["fingerprint"], dataset, words_query(text, about), vec, k=k)
    hits = result.hits.assign(dataset=dataset)
    hits["runs"] = hits["verdicts"].map(lambda v: verdict_summary(pd.DataFrame(v)))
    if result.precision is not None:
        st.metric(f"Precision at {k} for {about}", f"{result.precision:.3f}")
        st.caption(
            f"share of {about} among the {result.n_searched} films searched: {result.base_rate:.3f} · "
            f"ranked by {result.source}"
        )
    ui.gallery(hits, hit_caption, key="fc")
    columns = ["rank", "case_id", "similarity", "class", "split", "patient_id", "runs"]
    ui.table(hits[columns], key="find_cases")


if __name__ == "__main__":
    ui.guard(render)
