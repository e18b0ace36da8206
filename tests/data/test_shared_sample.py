"""The real samples in ../shared/data (skipped when absent): Kermany JPEGs and PneumoniaMNIST."""

from __future__ import annotations

import csv

import numpy as np

from pedclip.data.imaging import load_image
from pedclip.data.ingest import ingest
from pedclip.eval.leakage import audit_cases
from pedclip.store.cases import attributes_frame, cases_frame


def test_kermany_sample_one_case_per_file_with_label_and_patient(store, shared_data):
    root = shared_data / "kermany-sample"
    expected = {r["path"]: r for r in csv.DictReader((root / "files.csv").open())}
    summary = ingest(store, root, "ucsd-sample")
    assert (summary.source_kind, summary.cases, summary.errors) == ("kermany", len(expected), 0)
    cases = cases_frame(store, "ucsd-sample")
    cases["pathogen"] = attributes_frame(cases)["pathogen"]
    assert sorted(cases["case_id"]) == sorted(expected)
    for case in cases.itertuples():
        truth = expected[case.case_id]
        assert case.label == int(truth["label"] == "PNEUMONIA")
        assert (case.patient_id, case.split, case.pathogen) == (
            truth["patient_id"],
            truth["split"],
            truth["subtype"],
        )
        assert (case.width, case.height, case.mode) == (
            int(truth["width"]),
            int(truth["height"]),
            truth["mode"],
        )
        assert case.image_sha256 == truth["sha256"]
    assert not audit_cases(cases).leakage  # repeated patients sit within the test split only


def test_pneumoniamnist_official_splits_and_duplicates_across_them(store, shared_data):
    path = shared_data / "pneumoniamnist.npz"
    summary = ingest(store, path, "pmnist")
    assert (summary.cases, summary.errors) == (5856, 0)
    assert summary.by_split == {"test": 624, "train": 4708, "val": 524}
    cases = cases_frame(store, "pmnist")
    assert set(cases["mode"]) == {"L"} and set(cases["width"]) == {28}
    with np.load(path) as arrays:
        assert cases["label"].sum() == sum(int(arrays[f"{s}_labels"].sum()) for s in ("train", "val", "test"))
        np.testing.assert_array_equal(np.asarray(load_image(path, "val:17")), arrays["val_images"][17])
    report = audit_cases(cases)
    assert report.leakage and len(report.cross_split_duplicates) > 0
    assert all(len(d["splits"]) > 1 for d in report.cross_split_duplicates)
