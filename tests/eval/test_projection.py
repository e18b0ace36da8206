"""Maps of cached vectors: PCA against scikit-learn, computed once and served from the store after, and
recomputed (never served stale) when the embedded films change."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from pedclip.errors import PedclipError
from pedclip.eval.projection import case_map, exact_knn, method_used, pca_2d, umap_available
from pedclip.store.embeddings import case_vectors
from tests.eval.conftest import add_dataset

FP = "fp-map"


def test_pca_matches_scikit_learn_up_to_sign():
    vectors = np.random.default_rng(1).normal(size=(50, 8))
    ours = pca_2d(vectors)
    theirs = PCA(n_components=2).fit_transform(vectors)
    assert np.allclose(np.abs(ours), np.abs(theirs), atol=1e-8)


def test_the_exact_neighbour_graph_umap_is_given_matches_a_full_sort():
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(80, 12)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids, distances = exact_knn(vectors, 15)
    sims = vectors @ vectors.T
    naive = np.argsort(-sims, axis=1, kind="stable")[:, :15]
    assert (ids[:, 0] == np.arange(80)).all()  # itself first, as UMAP expects
    np.testing.assert_array_equal(ids, naive)
    np.testing.assert_allclose(distances, 1 - np.take_along_axis(sims, naive, axis=1), atol=1e-5)


@pytest.fixture
def mapped(store):
    rng = np.random.default_rng(3)
    add_dataset(store, "a", FP, rng.normal(size=16), n=30, seed=1)
    add_dataset(store, "b", FP, rng.normal(size=16), n=20, seed=2)
    return store


def loader(store, calls):
    def load(dataset):
        calls.append(dataset)
        return case_vectors(store, FP, dataset)

    return load


def test_a_map_is_computed_once_then_served_from_the_store(mapped):
    first, served = case_map(mapped, FP, ["b", "a"], "pca", loader(mapped, []))
    assert not served and len(first) == 50 and set(first["dataset"]) == {"a", "b"}
    again, served = case_map(mapped, FP, ["a", "b"], "pca", loader(mapped, []))
    assert served
    key = ["dataset", "case_id"]
    merged = first.merge(again, on=key, suffixes=("", "_again"))
    np.testing.assert_allclose(merged[["x", "y"]].to_numpy(), merged[["x_again", "y_again"]].to_numpy())
    # the stored coordinates are the projection of exactly these vectors
    frames = [case_vectors(mapped, FP, d) for d in ("a", "b")]
    expected = pca_2d(np.concatenate([v for _, v in frames]))
    order = np.concatenate([f["case_id"].to_numpy() for f, _ in frames])
    got = first.set_index("case_id").loc[order, ["x", "y"]].to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_new_embeddings_or_a_resplit_get_a_new_map(mapped):
    from pedclip.store.cases import set_splits

    case_map(mapped, FP, ["a"], "pca", loader(mapped, []))
    add_dataset(mapped, "a", FP, np.ones(16), n=36, seed=1)  # 6 more films embedded
    fresh, served = case_map(mapped, FP, ["a"], "pca", loader(mapped, []))
    assert not served and len(fresh) == 36
    assert case_map(mapped, FP, ["a"], "pca", loader(mapped, []))[1]
    set_splits(mapped, "a", {c: "test" for c in fresh["case_id"]})
    assert not case_map(mapped, FP, ["a"], "pca", loader(mapped, []))[1]


def test_umap_below_its_neighbourhood_is_pca_and_unknown_methods_are_refused():
    assert method_used("umap", 10) == "pca" and method_used("umap", 100) == "umap"
    with pytest.raises(PedclipError, match="unknown projection 'tsne'"):
        method_used("tsne", 100)


@pytest.mark.skipif(not umap_available(), reason="umap-learn is not installed")
def test_umap_map_is_kept_and_served(mapped):
    first, served = case_map(mapped, FP, ["a", "b"], "umap", loader(mapped, []))
    assert not served and (first["method"] == "umap").all() and np.isfinite(first[["x", "y"]]).all().all()
    again, served = case_map(mapped, FP, ["a", "b"], "umap", loader(mapped, []))
    assert served
    np.testing.assert_allclose(
        again.sort_values("case_id")[["x", "y"]].to_numpy(),
        first.sort_values("case_id")[["x", "y"]].to_numpy(),
    )
