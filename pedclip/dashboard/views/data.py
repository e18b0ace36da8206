"""Data: datasets, split sizes by label, patients, the leakage audit and ingest errors."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from pedclip.dashboard import analysis, ui


def datasets_overview(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[["name", "source_kind", "n_cases", "n_errors", "root", "updated"]].copy()
    out.insert(2, "classes", frame["class_names"].map(lambda t: ", ".join(json.loads(t))))
    return out


def patients(cases: pd.DataFrame) -> None:
    known = cases["patient_id"].notna()
    per_patient = cases[known].groupby("patient_id").size()
    cols = st.columns(4)
    cols[0].metric("Patients", f"{per_patient.size}")
    cols[1].metric("Images without a patient id", f"{int((~known).sum())}")
    cols[2].metric("Median images per patient", f"{per_patient.median():.0f}" if per_patient.size else "n/a")
    cols[3].metric("Most images of one patient", f"{per_patient.max()}" if per_patient.size else "n/a")


def leakage(cases: pd.DataFrame, all_cases: pd.DataFrame) -> None:
    st.subheader("Leakage audit")
    leaks = analysis.patients_across_splits(cases)
    if leaks.empty:
        st.success("No patient has images in more than one split.")
    else:
        who = "1 patient has" if len(leaks) == 1 else f"{len(leaks)} patients have"
        st.error(f"{who} images in more than one split; re-split by patient with `pedclip data split`.")
        st.dataframe(leaks, hide_index=True)
    dups = analysis.duplicates_across_splits(cases)
    if dups.empty:
        st.success("No image appears in more than one split.")
    else:
        st.warning(
            f"{len(dups)} images sit in more than one split (same bytes): a leak; "
            "re-split or drop the copies."
        )
        st.dataframe(dups, hide_index=True)
    within = len(analysis.duplicate_images(cases)) - len(dups)
    if within:
        st.caption(
            f"{within} images appear more than once within one split: not a leak, but they count twice."
        )
    shared(cases, all_cases)


def shared(cases: pd.DataFrame, all_cases: pd.DataFrame) -> None:
    """Identical images in other datasets: information (e.g. the same films with other texts), not leakage."""
    others = analysis.shared_with_other_datasets(cases, all_cases)
    for row in others.itertuples():
        images = "1 image" if row.images == 1 else f"{row.images} images"
        st.info(
            f"Shares {images} with {row.dataset} (same bytes). Not a leak within this dataset; it matters "
            f"only if a model is trained on one and evaluated on the other."
        )


def render() -> None:
    st.title("Data")
    datasets = ui.datasets_table()
    st.dataframe(datasets_overview(datasets), hide_index=True, width="stretch")
    name = st.selectbox("Dataset", datasets["name"].tolist(), key="data_dataset")
    cases = ui.dataset_cases(name)
    if cases.empty:
        st.info(f"{name} has no cases.")
    else:
        class_names = json.loads(datasets.set_index("name").loc[name, "class_names"])
        st.subheader("Split sizes by label")
        st.dataframe(analysis.split_label_counts(cases, class_names), hide_index=True)
        st.subheader("Patients")
        patients(cases)
        all_cases = pd.concat([ui.dataset_cases(n) for n in datasets["name"]], ignore_index=True)
        leakage(cases, all_cases)
    st.subheader("Ingest errors")
    errors = ui.ingest_errors()
    if errors.empty:
        st.success("No ingest errors.")
    else:
        st.dataframe(
            errors[["dataset", "path", "member", "reason", "created"]], hide_index=True, width="stretch"
        )


if __name__ == "__main__":
    ui.guard(render)
