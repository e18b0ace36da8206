"""Indexes chosen by size: IVF-PQ forced on small data, its measured recall, never trusted when stale."""

from __future__ import annotations

import json

import numpy as np
from test_index import FP, brute_force, fill, unit_rows

from pedclip.store.ann import IndexConfig, exact_top
from pedclip.store.cases import CaseRow, case_uid, replace_cases, upsert_dataset
from pedclip.store.embeddings import put_image_embeddings
from pedclip.store.index import ensure_index, index_path, neighbors

# IVF-PQ from 200 vectors on: 16 lists, 8-byte codes, every vector trains it
SMALL_IVFPQ = IndexConfig(exact_max=50, hnsw_max=200, ivf_lists=16, pq_bytes=8, nprobe=8, recall_queries=50)


def _other_dataset(store, n: int, vectors: np.ndarray) -> None:
    rows = [CaseRow(case_id=f"other{i:05d}", path=f"/y/{i}.png", image_sha256=f"{i:064x}", width=8, height=8,
                    mode="L", label=1, split="test") for i in range(n)]  # fmt: skip
    upsert_dataset(store, "other", "folders", "/y", ["normal", "pneumonia"])
    replace_cases(store, "other", rows)
    put_image_embeddings(store, FP, [r.image_sha256 for r in rows], vectors)


def test_kind_follows_size() -> None:
    config = IndexConfig(exact_max=10, hnsw_max=100)
    assert [config.kind_for(n) for n in (10, 11, 100, 101)] == ["flat", "hnsw", "hnsw", "ivfpq"]
    assert IndexConfig().kind_for(50_000) == "flat" and IndexConfig().kind_for(3_000_000) == "ivfpq"


def test_ivfpq_serves_only_the_right_datasets_cases_with_recall_recorded(store) -> None:
    rng = np.random.default_rng(10)
    vectors = unit_rows(rng, 600, 32, clusters=12)
    rows = fill(store, 600, vectors)
    _other_dataset(store, 300, vectors[:300] + 1e-3)  # near-copies of ds's vectors, in another dataset
    index = ensure_index(store, FP, "ds", SMALL_IVFPQ)
    assert (index.kind, index.action) == ("ivfpq", "built")
    found = index.search(vectors[:20], k=10)
    ours = {case_uid("ds", r.case_id) for r in rows}
    assert set(found["uid"]) <= ours and set(found["case_id"]) <= {r.case_id for r in rows}
    sidecar = json.loads(index_path(store, FP, "ds").with_suffix(".json").read_text())
    assert sidecar["params"] == {"lists": 16, "pq_bytes": 8, "train": len(rows)}
    assert sidecar["recall"]["recall_queries"] == 50 and 0.0 <= sidecar["recall"]["recall_at_10"] <= 1.0
    assert index.describe()["recall_at_10"] == sidecar["recall"]["recall_at_10"] >= 0.8  # reranked exactly
    loaded = ensure_index(store, FP, "ds", SMALL_IVFPQ)  # memory-mapped from the file
    assert loaded.action == "loaded"
    again = loaded.search(vectors[:20], k=10)
    assert list(again["uid"]) == list(found["uid"])
    hits = neighbors(store, FP, "ds", vectors[:1], k=5, config=SMALL_IVFPQ)
    assert hits.attrs["index"]["kind"] == "ivfpq" and hits.attrs["index"]["recall_at_10"] is not None


def test_ivfpq_similarities_are_exact_after_rerank(store) -> None:
    rng = np.random.default_rng(11)
    vectors = unit_rows(rng, 400, 16, clusters=8)
    fill(store, 400, vectors)
    found = ensure_index(store, FP, "ds", SMALL_IVFPQ).search(vectors[5:6], k=5)
    position = {f"case{i:05d}": i for i in range(400)}
    exact = vectors[[position[c] for c in found["case_id"]]] @ vectors[5]
    np.testing.assert_allclose(found["similarity"], exact, atol=1e-5)
    assert list(found["similarity"]) == sorted(found["similarity"], reverse=True)


def test_ivfpq_over_changed_vectors_is_rebuilt_never_trusted(store) -> None:
    rng = np.random.default_rng(12)
    vectors = unit_rows(rng, 400, 16, clusters=6)
    rows = fill(store, 400, vectors, start=40)
    assert ensure_index(store, FP, "ds", SMALL_IVFPQ).action == "built"
    put_image_embeddings(store, FP, [r.image_sha256 for r in rows[:40]], vectors[:40])
    grown = ensure_index(store, FP, "ds", SMALL_IVFPQ)
    assert (grown.action, grown.count) == ("built", 400)  # lists trained on the old vectors: rebuilt
    changed = vectors.copy()
    changed[7] = -changed[7]
    fill(store, 400, changed, version=1)  # same cases, new images
    rebuilt = ensure_index(store, FP, "ds", SMALL_IVFPQ)
    assert rebuilt.action == "built"
    assert rebuilt.search(changed[7:8], k=1)["case_id"].iloc[0] == "case00007"


def test_exact_top_equals_brute_force() -> None:
    rng = np.random.default_rng(13)
    vectors, queries = unit_rows(rng, 250, 8), unit_rows(rng, 4, 8)

    class Source:
        def take(self, rows):
            return vectors[rows]

    uids = np.arange(250, dtype=np.int64) * 3
    top = exact_top(Source(), np.arange(250), uids, queries, k=7, chunk=60)
    np.testing.assert_array_equal(top, uids[brute_force(vectors, queries, 7)[0]])


def test_ivfpq_scales_its_training_sample_and_lists_visited_with_the_lists():
    config = IndexConfig()
    assert config.train_for(4_000) == 160_000 and config.train_for(100) == 100_000  # >= train_max
    assert config.train_for(16_384) == 600_000  # capped
    assert config.nprobe_for(4_000) == 32 and config.nprobe_for(5_657) == 46 and config.nprobe_for(16) == 16
    assert config.rerank_for(1_999_999) == 20 and config.rerank_for(2_000_000) == 50


def test_an_hnsw_coarse_quantizer_searches_wide_while_adding_and_querying():
    import faiss

    from pedclip.store.ann import fill_index, inner_index, new_index, set_search_params

    class Rows:  # the matrix's `take`, over an array
        def __init__(self, vectors):
            self.vectors = vectors

        def take(self, rows):
            return self.vectors[rows]

    config = IndexConfig(ivf_lists=4_200, pq_bytes=4, train_max=4_300)
    vectors = np.random.default_rng(0).normal(size=(4_300, 8)).astype(np.float32)
    index = new_index(8, "ivfpq", len(vectors), config)
    quantizer = faiss.downcast_index(inner_index(index).quantizer)
    assert isinstance(quantizer, faiss.IndexHNSW) and quantizer.hnsw.efSearch == 16  # faiss's default
    fill_index(index, np.arange(len(vectors)), np.arange(len(vectors)), Rows(vectors), config)
    assert quantizer.hnsw.efSearch == 128  # set before the vectors were assigned to lists
    set_search_params(index, config)
    assert inner_index(index).nprobe == 34 and quantizer.hnsw.efSearch == 128
