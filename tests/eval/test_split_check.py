"""Defect 6 of issue 11: an unknown split is named with the dataset's real splits, not a hint to re-embed."""

from __future__ import annotations

import numpy as np
import pytest

from pedclip.errors import PedclipError
from pedclip.eval.evaluation import labelled_vectors
from pedclip.store.cases import CaseRow, replace_cases, upsert_dataset
from tests.eval.conftest import add_dataset


def test_unknown_split_names_the_real_choices(store) -> None:
    add_dataset(store, "a", "fp", np.ones(8), n=20)
    frame, _ = labelled_vectors(store, "fp", "demo:clip", "a", ("test",))
    assert len(frame) > 0
    with pytest.raises(
        PedclipError, match=r"unknown split 'tset' for dataset 'a'; use one of test, train, val"
    ):
        labelled_vectors(store, "fp", "demo:clip", "a", ("tset",))
    with pytest.raises(PedclipError, match="unknown split 'tset'"):  # one bad part of a pooled request
        labelled_vectors(store, "fp", "demo:clip", "a", ("test", "tset"))


def test_split_of_an_unsplit_dataset_says_to_split_it(store) -> None:
    upsert_dataset(store, "u", "synth", "/nowhere/u", ["normal", "pneumonia"])
    replace_cases(store, "u", [CaseRow("x.png", "/nowhere/x.png", "sha", 8, 8, "L", 0, None, None)])
    with pytest.raises(PedclipError, match="has no splits.*pedclip data split u.*--split all"):
        labelled_vectors(store, "fp", "demo:clip", "u", ("test",))
