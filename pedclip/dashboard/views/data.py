"""Data: datasets, split sizes by label, patients, the leakage audit and ingest errors."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from pedclip.dashboard import ui
from pedclip.eval.leakage import AuditReport, audit_cases, shared_images


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


def split_sizes(report: AuditReport) -> pd.DataFrame:
    """The audit's class balance as a table: one row per split, one column per class, and totals."""
    table = pd.DataFrame(report.balance).T
    if "unlabelled" in table and not table["unlabelled"].any():
        table = table.drop(columns="unlabelled")
    table.loc["total"] = table.sum()
    return table.rename_axis("split").reset_index()


def leakage(report: AuditReport, cases: pd.DataFrame, all_cases: pd.DataFrame) -> None:
    st.subheader("Leakage audit")
    if not report.shared_patients:
        st.success("No patient has images in more than one split.")
    else:
        n = len(report.shared_patients)
        who = "1 patient has" if n == 1 else f"{n} patients have"
        st.error(f"{who} images in more than one split; re-split by patient with `pedclip data split`.")
        rows = [{"patient_id": p, "splits": ", ".join(s)} for p, s in report.shared_patients.items()]
        ui.table(pd.DataFrame(rows), "shared_patients")
    dups = report.cross_split_duplicates
    if not dups:
        st.success("No image appears in more than one split.")
    else:
        st.warning(
            f"{len(dups)} images sit in more than one split (same bytes): a leak; re-split or drop the copies."
        )
        rows = [{**d, "splits": ", ".join(d["splits"]), "case_ids": ", ".join(d["case_ids"])} for d in dups]
        ui.table(pd.DataFrame(rows).drop(columns="labels"), "cross_split_duplicates")
    if report.within_split_duplicate_cases:
        st.caption(
            f"{report.within_split_duplicate_cases} cases repeat an image already in their split: not a leak, "
            "but they count twice."
        )
    for row in shared_images(cases, all_cases).itertuples():
        images = "1 image" if row.images == 1 else f"{row.images} images"
        st.info(
            f"Shares {images} with {row.dataset} (same bytes). Not a leak within this dataset; it matters "
            f"only if a model is trained on one and evaluated on the other."
        )


def render() -> None:
    st.title("Data")
    datasets = ui.datasets_table()
    ui.table(datasets_overview(datasets), "datasets", width="stretch")
    name = st.selectbox("Dataset", datasets["name"].tolist(), key="data_dataset")
    cases = ui.dataset_cases(name)
    if cases.empty:
        st.info(f"{name} has no cases.")
    else:
        report = audit_cases(cases, tuple(ui.class_names(name)))
        st.subheader("Split sizes by label")
        ui.table(split_sizes(report), "split_sizes")
        st.subheader("Patients")
        patients(cases)
        all_cases = pd.concat([ui.dataset_cases(n) for n in datasets["name"]], ignore_index=True)
        leakage(report, cases, all_cases)
    st.subheader("Ingest errors")
    errors = ui.ingest_errors()
    if errors.empty:
        st.success("No ingest errors.")
    else:
        ui.table(errors[["dataset", "path", "member", "reason", "created"]], "ingest_errors", width="stretch")


if __name__ == "__main__":
    ui.guard(render)
