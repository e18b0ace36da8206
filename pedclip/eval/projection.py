"""2-D maps of a model's cached image vectors (PCA, or UMAP with umap-learn), computed once per
(model, datasets, embedded state, method) and kept in the store; every surface reads them from here."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from pedclip.errors import PedclipError
from pedclip.store import Store
from pedclip.store.embeddings import embedded_state
from pedclip.store.projections import put_projection, stored_projection

METHODS = ("pca", "umap")
# cosine: the vectors are compared by cosine everywhere else; a fixed seed (which makes UMAP single-threaded)
# so a recomputed map looks the same
UMAP_PARAMS = {"n_neighbors": 15, "min_dist": 0.1, "metric": "cosine", "random_state": 0, "n_jobs": 1}
UMAP_MIN_CASES = 16  # fewer points than UMAP's neighbourhood: PCA is what a user gets (and is told)

VectorLoader = Callable[[str], tuple[pd.DataFrame, np.ndarray]]  # dataset -> (cases, vectors)


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """(n, 2) coordinates on the two leading principal components (signs fixed so reruns agree)."""
    if len(vectors) == 0:
        return np.zeros((0, 2))
    centred = vectors - vectors.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:2]
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    coords = centred @ (components * signs[:, None]).T
    return coords if coords.shape[1] == 2 else np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))


def umap_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("umap") is not None


EXACT_KNN_MAX = 50_000  # up to this many films the neighbour graph is exact (FAISS); above, UMAP's own


def exact_knn(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosine distances) of each unit vector's k nearest, itself first, by exact inner product."""
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    sims, ids = index.search(vectors, k)
    return ids.astype(np.int64), np.maximum(1.0 - sims, 0.0).astype(np.float32)


def umap_2d(vectors: np.ndarray, params: dict = UMAP_PARAMS) -> np.ndarray:
    """UMAP of unit vectors. Up to EXACT_KNN_MAX films the kNN graph comes from an exact FAISS search (0.14 s
    at 5,856 x 512), which skips pynndescent: its first call in a process compiles for ~20 s on 2 cores."""
    try:
        import umap
    except ImportError as exc:
        raise PedclipError("UMAP needs umap-learn: pip install 'pedclip[dashboard]'; or use PCA") from exc
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    options = dict(params)
    if len(x) <= EXACT_KNN_MAX:
        ids, distances = exact_knn(x, params["n_neighbors"])
        options["precomputed_knn"] = (ids, distances, None)
    with warnings.catch_warnings():  # no search index is passed: only `transform` of new data needs one
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        return umap.UMAP(n_components=2, **options).fit_transform(x)


def method_used(method: str, n: int) -> str:
    """The method a map of n points is made with: UMAP needs more points than its neighbourhood."""
    if method not in METHODS:
        raise PedclipError(f"unknown projection {method!r}; use one of {', '.join(METHODS)}")
    return "pca" if method == "umap" and n < UMAP_MIN_CASES else method


def project(vectors: np.ndarray, method: str) -> np.ndarray:
    return umap_2d(vectors) if method_used(method, len(vectors)) == "umap" else pca_2d(vectors)


def selection_key(states: Sequence[tuple[str, tuple]], method: str) -> str:
    """What a stored map was made from: each dataset's embedded state and the method's parameters."""
    params = UMAP_PARAMS if method == "umap" else {}
    doc = {"states": [[d, list(s)] for d, s in states], "method": method, "params": params}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def case_map(
    store: Store,
    fingerprint: str,
    datasets: Sequence[str],
    method: str,
    load: VectorLoader,
    keep: bool = True,
) -> tuple[pd.DataFrame, bool]:
    """(cases of `datasets` with x, y and `method` columns, whether it came from the store). Computed, and
    stored with `keep`, when no map of this exact embedded state exists; `load(dataset)` gives (cases,
    vectors)."""
    datasets = sorted(set(datasets))
    key_datasets = ",".join(datasets)
    states = [(d, embedded_state(store, fingerprint, d)) for d in datasets]
    selection = selection_key(states, method)
    frames, vectors = zip(*(load(d) for d in datasets), strict=True) if datasets else ((), ())
    cases = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["dataset", "case_id"])
    stored = stored_projection(store, fingerprint, key_datasets, method, selection)
    if stored is not None and len(stored) == len(cases):
        out = cases.merge(stored, on=["dataset", "case_id"], how="left")
        if not out["x"].isna().any():
            return out.assign(method=method_used(method, len(out))), True
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, 2))
    coords = project(matrix, method)
    out = cases.assign(x=coords[:, 0], y=coords[:, 1])
    params = UMAP_PARAMS if method_used(method, len(out)) == "umap" else {}
    if keep:
        put_projection(store, fingerprint, key_datasets, method, selection, params, out)
    return out.assign(method=method_used(method, len(out))), False
