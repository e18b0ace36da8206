"""The audit: class balance per split, patients across splits, identical images across splits."""

from __future__ import annotations

import pandas as pd

from pedclip.eval.leakage import audit_cases


def _cases(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["case_id", "label", "patient_id", "split", "image_sha256"])


def test_clean_dataset_has_no_leakage_and_counts_per_split():
    report = audit_cases(_cases([
        ("a", 0, "P1", "train", "h1"), ("b", 1, "P1", "train", "h2"), ("c", 1, "P2", "test", "h3"),
        ("d", None, None, "val", "h4"), ("e", 0, None, None, "h5"),
    ]))  # fmt: skip
    assert not report.leakage
    assert report.balance["train"] == {"normal": 1, "pneumonia": 1, "unlabelled": 0, "total": 2}
    assert report.balance["val"]["unlabelled"] == 1
    assert report.balance["(none)"]["total"] == 1
    assert list(report.balance) == ["train", "val", "test", "(none)"]


def test_shared_patients_and_identical_images_are_found():
    report = audit_cases(_cases([
        ("a", 0, "P1", "train", "same"), ("b", 0, "P1", "test", "x"), ("c", 1, "P2", "val", "same"),
        ("d", 1, "P3", "train", "twin"), ("e", 1, "P4", "train", "twin"),
    ]))  # fmt: skip
    assert report.leakage
    assert report.shared_patients == {"P1": ["test", "train"]}
    assert report.cross_split_duplicates == [
        {"image_sha256": "same", "splits": ["train", "val"], "case_ids": ["a", "c"], "labels": [0, 1]}]  # fmt: skip
    assert report.within_split_duplicate_cases == 1
    assert report.conflicting_label_duplicates == 1
    document = report.as_dict(limit=0)
    assert document["n_shared_patients"] == 1 and document["shared_patients"] == {} and document["leakage"]


def test_the_stores_leak_counts_agree_with_the_full_audit(store):
    """`sound` runs check leakage with DuckDB's counts (store/cases.py); the audit lists the same leaks."""
    from pedclip.store.cases import CaseRow, replace_cases, split_leak_counts, upsert_dataset

    for name, rows in (
        ("clean", [("a", 0, "P1", "train", "h1"), ("b", 1, "P1", "train", "h2"), ("e", 0, None, None, "h5")]),
        (
            "leaky",
            [
                ("a", 0, "P1", "train", "same"),
                ("b", 0, "P1", "test", "x"),
                ("c", 1, "P2", "val", "same"),
                ("d", 1, "P3", "train", "twin"),
                ("e", 1, "P4", "train", "twin"),
                ("f", 1, "P5", None, "x"),
                ("g", 0, "P6", "val", "x"),
            ],
        ),
    ):
        upsert_dataset(store, name, "csv", "/x", ["normal", "pneumonia"])
        replace_cases(store, name, [
            CaseRow(case_id=c, path=f"/x/{c}", image_sha256=sha, width=1, height=1, mode="L", label=label,
                    patient_id=patient, split=split)
            for c, label, patient, split, sha in rows
        ])  # fmt: skip
        report = audit_cases(_cases(rows))
        assert split_leak_counts(store, name) == (
            len(report.shared_patients),
            len(report.cross_split_duplicates),
        )
    assert split_leak_counts(store, "leaky") == (1, 2)  # P1; "same" (train, val) and "x" (test, val)


def test_identical_images_in_other_datasets_are_shared_not_leaked():
    import pandas as pd

    from pedclip.eval.leakage import shared_images

    cases = pd.DataFrame(
        {
            "dataset": ["a"] * 5,
            "case_id": list("vwxyz"),
            "split": ["train", "test", "val", "val", "test"],
            "image_sha256": ["1", "1", "2", "2", "3"],
            "label": [0, 0, 1, 1, 0],
            "patient_id": [None] * 5,
        }
    )
    other = pd.DataFrame(
        {
            "dataset": ["b", "b", "c"],
            "case_id": list("pqr"),
            "split": ["train"] * 3,
            "image_sha256": ["1", "3", "3"],
        }
    )
    leaks = audit_cases(cases).cross_split_duplicates
    assert leaks == [
        {"image_sha256": "1", "splits": ["test", "train"], "case_ids": ["v", "w"], "labels": [0]}
    ]
    shared = shared_images(cases, pd.concat([cases, other]))
    assert shared.to_dict("records") == [{"dataset": "b", "images": 2}, {"dataset": "c", "images": 1}]
    assert not audit_cases(
        other[other["dataset"] == "b"].assign(label=0, patient_id=None)
    ).cross_split_duplicates
