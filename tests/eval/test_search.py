"""Search by words and every run's verdict on the hits, on a store built directly (tiny real model)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pedclip.cli import main
from pedclip.errors import PedclipError
from pedclip.eval.prompts import load_prompt_set
from pedclip.eval.search import (
    precision_at_k,
    prompt_set_query,
    query_vector,
    rank_by_text,
    search_cases,
    words_query,
)
from pedclip.eval.verdicts import case_verdicts
from pedclip.store.embeddings import case_vectors
from pedclip.store.runs import save_run
from tests.eval.conftest import add_dataset, unit

TINY = "openclip:pedclip-tiny"


@pytest.fixture
def site(store, tiny_encoder, pneumonia_direction):
    add_dataset(store, "ucsd", tiny_encoder.fingerprint, pneumonia_direction, n=80, seed=5, signal=0.5)
    return store


def test_rank_by_text_matches_a_full_sort():
    rng = np.random.default_rng(0)
    images, query = unit(rng.normal(size=(300, 16))), unit(rng.normal(size=16))
    idx, sims = rank_by_text(images, query, 10)
    naive = np.argsort(-(images @ query), kind="stable")[:10]
    assert idx.tolist() == naive.tolist()
    assert np.allclose(sims, (images @ query)[naive], atol=1e-6)


def test_precision_at_k_is_the_relevant_share_of_the_top_k():
    labels = pd.Series([1, 1, 0, None, 1, 0], dtype="Int64")
    assert precision_at_k(labels, 1, 4) == 0.5  # an unlabelled hit is not relevant
    assert precision_at_k(labels, 0, 6) == pytest.approx(2 / 6)
    assert precision_at_k(labels.head(0), 1, 4) is None


def test_query_vector_is_the_unit_mean():
    vectors = unit(np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert np.allclose(query_vector(vectors), [2**-0.5, 2**-0.5])
    with pytest.raises(PedclipError, match="cancel"):
        query_vector(np.array([[1.0, 0.0], [-1.0, 0.0]]))


def test_prompt_set_search_finds_the_class_and_faiss_agrees_with_exact(site, tiny_encoder):
    query = prompt_set_query(load_prompt_set("pneumonia"))
    vec = query_vector(tiny_encoder.encode_texts(list(query.texts)))
    faiss_result = search_cases(site, tiny_encoder.fingerprint, "ucsd", query, vec, k=12)
    exact = search_cases(site, tiny_encoder.fingerprint, "ucsd", query, vec, k=12, use_index=False)
    assert faiss_result.source == "faiss" and exact.source == "exact"
    assert faiss_result.hits["case_id"].tolist() == exact.hits["case_id"].tolist()
    assert np.allclose(faiss_result.hits["similarity"], exact.hits["similarity"], atol=1e-5)
    assert faiss_result.relevant == 1 and faiss_result.precision > faiss_result.base_rate
    assert faiss_result.precision == pytest.approx((exact.hits["label"] == 1).mean())
    assert set(exact.hits["split"]) <= {"train", "val", "test"} and exact.hits["patient_id"].notna().all()
    # the normal class of the same set ranks the other way
    normal = prompt_set_query(load_prompt_set("pneumonia"), "normal")
    nvec = query_vector(tiny_encoder.encode_texts(list(normal.texts)))
    assert search_cases(site, tiny_encoder.fingerprint, "ucsd", normal, nvec, k=12).relevant == 0


def test_verdicts_name_each_run_and_say_which_are_wrong(site, tiny_encoder):
    frame, _ = case_vectors(site, tiny_encoder.fingerprint, "ucsd", ["test"])
    labels = frame["label"].astype(int).to_numpy()
    predicted = labels.copy()
    predicted[0] = 1 - predicted[0]
    preds = pd.DataFrame({"dataset": "ucsd", "case_id": frame["case_id"], "score": predicted * 0.8 + 0.1,
                          "predicted": predicted, "label": labels})  # fmt: skip
    run = {"run_id": "zeroshot-20260101-000000-aaaaaa", "kind": "zeroshot", "protocol": "sound", "model": TINY,
           "fingerprint": tiny_encoder.fingerprint, "eval_dataset": "ucsd", "split": "test",
           "config": {"threshold": {"value": 0.6, "rule": "fixed"}, "prompts": {"name": "pneumonia"}}}  # fmt: skip
    save_run(site, run, preds)
    verdicts = case_verdicts(site, "ucsd", frame["case_id"].head(2).tolist())
    assert len(verdicts) == 2 and set(verdicts["model"]) == {TINY}
    assert verdicts["wrong"].tolist() == [True, False]
    assert verdicts["threshold"].tolist() == [0.6, 0.6] and verdicts["prompts"].tolist() == ["pneumonia"] * 2


def test_cli_search_json_and_table(site, home, capsys):
    code = main(["--home", str(home), "search", "--model", TINY, "--dataset", "ucsd", "--prompts", "pneumonia",
                 "--k", "10", "--json"])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    doc = json.loads(out.out)
    assert len(doc["hits"]) == 10 and doc["precision_at_k"] > doc["base_rate"]
    assert {"case_id", "similarity", "label", "split", "patient_id", "verdicts"} <= set(doc["hits"][0])
    code = main(["--home", str(home), "search", "consolidation in the right lower lobe", "--model", TINY,
                 "--dataset", "ucsd", "--k", "5"])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "precision at 5 for pneumonia" in out.out


def test_cli_search_bad_input_is_one_line(site, home, capsys):
    code = main(["--home", str(home), "search", "--model", TINY, "--dataset", "ucsd"])
    err = capsys.readouterr().err
    assert code == 1 and "give exactly one query" in err and "Traceback" not in err
    code = main(["--home", str(home), "search", "--model", TINY, "--dataset", "ucsd", "--prompts", "pneumonia",
                 "--class", "covid"])  # fmt: skip
    assert code == 1 and "has no class 'covid'" in capsys.readouterr().err


def test_words_query_refuses_empty_words():
    with pytest.raises(PedclipError, match="empty"):
        words_query("  ")
    assert words_query(" lobar consolidation ").texts == ("lobar consolidation",)
