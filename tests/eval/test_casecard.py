"""The case card: verdicts of every run, neighbors under each model that embedded the case, flips."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pedclip.cli import main
from pedclip.errors import PedclipError
from pedclip.eval.casecard import case_card, flip_pairs
from pedclip.store.embeddings import case_vectors, put_image_embeddings, register_model
from pedclip.store.runs import save_run
from tests.eval.conftest import add_dataset, unit

OTHER = {"fingerprint": "other-fp", "spec": "openclip:other", "family": "openclip", "dim": 8,
         "preprocess": {}, "dtype": "fp32"}  # fmt: skip


def _run(store, run_id, fingerprint, frame, predicted):
    preds = pd.DataFrame({"dataset": "ucsd", "case_id": frame["case_id"], "score": predicted * 0.6 + 0.2,
                          "predicted": predicted, "label": frame["label"].astype(int)})  # fmt: skip
    save_run(store, {"run_id": run_id, "kind": "zeroshot", "protocol": "sound", "model": "test",
                     "fingerprint": fingerprint, "eval_dataset": "ucsd", "split": "test", "config": {}}, preds)  # fmt: skip


@pytest.fixture
def card_store(store):
    rng = np.random.default_rng(3)
    add_dataset(store, "ucsd", "fp-a", unit(rng.normal(size=16)), n=40, seed=3)
    frame, _ = case_vectors(store, "fp-a", "ucsd")
    register_model(store, OTHER)
    put_image_embeddings(store, "other-fp", frame["image_sha256"].tolist()[:30],
                         unit(rng.normal(size=(30, 8))).astype(np.float32))  # fmt: skip
    test = frame[frame["split"] == "test"].reset_index(drop=True)
    y = test["label"].astype(int).to_numpy()
    _run(store, "zeroshot-20260101-000001-aaaaaa", "fp-a", test, 1 - y)  # all wrong
    _run(store, "zeroshot-20260101-000002-bbbbbb", "fp-a", test, y)  # all right
    return store, test


def test_case_card_has_verdicts_neighbors_and_flips(card_store):
    store, test = card_store
    case_id = test["case_id"].iloc[0]
    card = case_card(store, "ucsd", case_id, k=4)
    assert card.verdicts["wrong"].tolist() == [False, True]  # newest run first
    assert card.attributes.keys() == {"site", "view"} and card.class_name in ("normal", "pneumonia")
    under = card.neighbors["test"]
    assert (
        len(under) == 4
        and case_id not in under["case_id"].tolist()
        and under["rank"].tolist() == [1, 2, 3, 4]
    )
    assert under["similarity"].is_monotonic_decreasing
    assert len(card.flips) == 1 and card.flips["now"].tolist() == ["fixed"]
    assert card.flips["run_a"].iloc[0].endswith("aaaaaa")
    doc = json.loads(json.dumps(card.as_dict(), default=str))
    assert doc["n_wrong"] == 1 and doc["case"]["case_id"] == case_id


def test_only_models_that_embedded_the_case_give_neighbors(card_store):
    store, _ = card_store
    frame, _ = case_vectors(store, "fp-a", "ucsd")
    embedded_by_both, only_a = frame["case_id"].iloc[0], frame["case_id"].iloc[35]
    assert set(case_card(store, "ucsd", embedded_by_both).neighbors) == {"test", "openclip:other"}
    assert set(case_card(store, "ucsd", only_a).neighbors) == {"test"}


def test_flip_pairs_follow_the_compare_rule():
    verdicts = pd.DataFrame({"run_id": ["c", "b", "a"], "model": ["m"] * 3, "predicted": [1, 0, 1],
                             "label": pd.array([1, 1, 1], dtype="Int64")})  # fmt: skip
    pairs = flip_pairs(verdicts)
    assert list(zip(pairs["run_a"], pairs["run_b"], pairs["now"], strict=True)) == [
        ("a", "b", "broken"),
        ("b", "c", "fixed"),
    ]


def test_unknown_case_is_a_clear_error(card_store, home, capsys):
    store, _ = card_store
    with pytest.raises(PedclipError, match="has no case 'nope'"):
        case_card(store, "ucsd", "nope")
    assert main(["--home", str(home), "case", "ucsd", "nope"]) == 1
    assert "has no case 'nope'" in capsys.readouterr().err


def test_cli_case_json_and_text(card_store, home, capsys):
    _, test = card_store
    case_id = test["case_id"].iloc[1]
    assert main(["--home", str(home), "case", "ucsd", case_id, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["verdicts"]) == 2 and doc["flips"][0]["now"] == "fixed"
    assert main(["--home", str(home), "case", "ucsd", case_id, "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "verdicts (1 wrong)" in out and "neighbors under test" in out and "flipped" in out
