"""Made splits: grouped by patient, stratified by label, seeded, on ratio, and the study's balancing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pedclip.data.splits import STUDY_COUNTS, SplitSpec, apportion, make_splits, parse_balance, parse_ratios
from pedclip.errors import PedclipError


def cases_with_patients(n_patients: int = 120, seed: int = 0, singles: int = 80) -> pd.DataFrame:
    """Patients with 1-4 images each (one label per patient) plus cases without a patient id."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        label = int(rng.random() < 0.6)
        for k in range(int(rng.integers(1, 5))):
            rows.append(
                {"case_id": f"p{p}_{k}", "label": label, "patient_id": f"P{p}", "source_split": "train"}
            )
    for i in range(singles):
        rows.append({"case_id": f"s{i}", "label": i % 2, "patient_id": None, "source_split": "test"})
    return pd.DataFrame(rows)


def _counts(cases: pd.DataFrame, splits: dict) -> pd.DataFrame:
    frame = cases.assign(split=cases["case_id"].map(splits))
    return frame.groupby(["label", "split"]).size().unstack(fill_value=0)


def test_no_patient_is_in_two_splits():
    cases = cases_with_patients()
    splits = make_splits(cases, SplitSpec(seed=3))
    per_patient = cases.assign(split=cases["case_id"].map(splits)).dropna(subset=["patient_id"])
    assert per_patient.groupby("patient_id")["split"].nunique().max() == 1
    assert set(splits.values()) == {"train", "val", "test"}
    assert len(splits) == len(cases)


@pytest.mark.parametrize("ratios", [(0.64, 0.16, 0.20), (0.7, 0.1, 0.2), (0.5, 0.0, 0.5)])
def test_each_stratum_is_within_one_case_of_its_ratio(ratios):
    cases = cases_with_patients(seed=1)
    splits = make_splits(cases, SplitSpec(ratios=ratios, seed=7))
    counts = _counts(cases, splits)
    for label, row in counts.iterrows():
        n = int((cases["label"] == label).sum())
        for split, ratio in zip(("train", "val", "test"), ratios, strict=True):
            assert abs(row.get(split, 0) - n * ratio) < 1 + 1e-9, (label, split, row.to_dict())


def test_same_seed_same_splits_whatever_the_row_order_and_other_seeds_differ():
    cases = cases_with_patients(seed=2)
    first = make_splits(cases, SplitSpec(seed=11))
    shuffled = cases.sample(frac=1.0, random_state=5).reset_index(drop=True)
    assert make_splits(shuffled, SplitSpec(seed=11)) == first
    assert make_splits(cases, SplitSpec(seed=12)) != first


def test_a_patient_with_both_labels_stays_together():
    cases = cases_with_patients(n_patients=30, singles=20)
    mixed = pd.DataFrame([{"case_id": f"m{k}", "label": k % 2, "patient_id": "MIX", "source_split": None}
                          for k in range(4)])  # fmt: skip
    splits = make_splits(pd.concat([cases, mixed], ignore_index=True), SplitSpec(seed=0))
    assert len({splits[f"m{k}"] for k in range(4)}) == 1


@pytest.mark.parametrize("preset", sorted(STUDY_COUNTS))
def test_study_balance_reproduces_table_1_exactly(preset):
    cases = pd.DataFrame({"case_id": [f"c{i}" for i in range(4300)], "label": [int(i < 2300) for i in range(4300)],
                          "patient_id": None, "source_split": "train"})  # fmt: skip
    splits = make_splits(cases, SplitSpec(seed=0, balance=preset))
    counts = _counts(cases, splits)
    for label, per_split in STUDY_COUNTS[preset].items():
        assert counts.loc[label].to_dict() == per_split
    totals = pd.Series([s for s in splits.values() if s]).value_counts().to_dict()
    expected = {
        "study-ucsd": {"train": 1967, "val": 493, "test": 616},
        "study-ori": {"train": 526, "val": 132, "test": 165},
    }
    assert totals == expected[preset]
    assert sum(s is None for s in splits.values()) == 4300 - sum(expected[preset].values())


def test_explicit_and_equal_balancing():
    cases = cases_with_patients(n_patients=0, singles=0)
    cases = pd.DataFrame({"case_id": [f"c{i}" for i in range(60)], "label": [int(i < 40) for i in range(60)],
                          "patient_id": None, "source_split": None})  # fmt: skip
    explicit = _counts(cases, make_splits(cases, SplitSpec(balance="normal=10,pneumonia=25")))
    assert explicit.sum(axis=1).to_dict() == {0: 10, 1: 25}
    equal = _counts(cases, make_splits(cases, SplitSpec(balance="equal")))
    assert equal.sum(axis=1).to_dict() == {0: 20, 1: 20}
    with pytest.raises(PedclipError, match="wants 30 normal cases but the dataset has 20"):
        make_splits(cases, SplitSpec(balance="normal=30,pneumonia=5"))


def test_keep_source_returns_the_source_splits():
    cases = cases_with_patients(n_patients=5, singles=3)
    kept = make_splits(cases, SplitSpec(keep_source=True))
    assert kept == dict(zip(cases["case_id"], cases["source_split"], strict=True))


@pytest.mark.parametrize("text, expected", [("64/16/20", (0.64, 0.16, 0.2)), ("0.7,0.1,0.2", (0.7, 0.1, 0.2)),
                                            ("8/0/2", (0.8, 0.0, 0.2))])  # fmt: skip
def test_parse_ratios(text, expected):
    assert parse_ratios(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["64/36", "a/b/c", "-1/1/1", "0/50/50"])
def test_bad_ratios_are_rejected(text):
    with pytest.raises(PedclipError, match="--ratios"):
        parse_ratios(text)


def test_bad_balance_is_rejected():
    with pytest.raises(PedclipError, match="--balance"):
        parse_balance("lots")


@pytest.mark.parametrize("n", [0, 1, 7, 101, 3076])
def test_apportion_sums_and_stays_within_one(n):
    ratios = (0.64, 0.16, 0.20)
    counts = apportion(n, ratios)
    assert sum(counts) == n
    assert all(abs(c - n * r) < 1 for c, r in zip(counts, ratios, strict=True))
