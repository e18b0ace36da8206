"""FAISS neighbor indexes per (model fingerprint, dataset), mapped to cases by their stable `uid`.

`indexes/<fingerprint>/<dataset>.faiss` holds an IndexIDMap over case uids (never row order): exact
inner product (IndexFlatIP) up to `IndexConfig.exact_max` vectors, HNSW above. A sidecar
`<dataset>.json` records how many vectors it holds and a hash of the (uid, image sha256) pairs it was
built from; an index is used only when that hash equals the store's current one. When cases were only
added the index is extended; any other change rebuilds it. Files are written to a temporary name and
renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np
import pandas as pd

from pedclip.errors import PedclipError
from pedclip.store.cases import cases_frame
from pedclip.store.db import Store
from pedclip.store.embeddings import case_vectors
from pedclip.threads import thread_count

LOOKUP_COLUMNS = ["uid", "case_id", "label", "split", "path", "member", "image_sha256"]


@dataclass(frozen=True)
class IndexConfig:
    exact_max: int = 20_000  # up to this many vectors exact search; above, HNSW (exact is ~18 ms at 100k)
    hnsw_m: int = 32  # HNSW graph degree
    ef_construction: int = 40  # HNSW build breadth (faiss default)
    ef_search: int = 128  # HNSW query breadth: recall vs latency (see tests/store/test_index.py)

    def kind_for(self, count: int) -> str:
        return "flat" if count <= self.exact_max else "hnsw"


def index_path(store: Store, fingerprint: str, dataset: str) -> Path:
    return store.paths.indexes / fingerprint / f"{dataset}.faiss"


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".json")


def embedded_listing(store: Store, fingerprint: str, dataset: str) -> tuple[np.ndarray, list[str]]:
    """(uids sorted, their image shas) of the dataset's cases that have a vector for this model."""
    with store.read() as con:
        table = con.sql(
            """SELECT c.uid, c.image_sha256 FROM cases c JOIN image_embeddings e
                 ON e.image_sha256 = c.image_sha256 AND e.fingerprint = ?
               WHERE c.dataset = ? ORDER BY c.uid""",
            params=[fingerprint, dataset],
        ).to_arrow_table()
    uids = table.column("uid").to_numpy().astype(np.int64)
    return uids, table.column("image_sha256").to_pylist()


def listing_hash(uids: np.ndarray, shas: Sequence[str]) -> str:
    """Content hash of (uid, sha) pairs in uid order: what an index file was built from."""
    order = np.argsort(uids, kind="stable")
    digest = hashlib.sha256(np.asarray(uids, dtype="<i8")[order].tobytes())
    digest.update("\n".join(shas[i] for i in order).encode())
    return digest.hexdigest()


def _new_index(dim: int, kind: str, config: IndexConfig) -> faiss.Index:
    if kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    else:
        inner = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = config.ef_construction
    return faiss.IndexIDMap(inner)


def _set_search_params(index: faiss.Index, config: IndexConfig) -> None:
    inner = faiss.downcast_index(faiss.downcast_index(index).index)
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = config.ef_search


def _write_atomic(index: faiss.Index, path: Path, sidecar: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    faiss.write_index(index, str(tmp))
    sidecar = {**sidecar, "index_bytes": tmp.stat().st_size}
    os.replace(tmp, path)
    side_tmp = tmp.with_suffix(".json.tmp")
    side_tmp.write_text(json.dumps(sidecar, sort_keys=True))
    os.replace(side_tmp, sidecar_path(path))


def _read_trusted(path: Path) -> tuple[faiss.Index, dict] | None:
    """The index and its sidecar when both exist and agree on the file size; else None (rebuild)."""
    try:
        sidecar = json.loads(sidecar_path(path).read_text())
        if path.stat().st_size != sidecar.get("index_bytes"):
            return None
        return faiss.read_index(str(path)), sidecar
    except (OSError, ValueError, RuntimeError):
        return None


@dataclass
class NeighborIndex:
    """A loaded index and the case lookup its ids map to (columns as arrays, rows sorted by uid)."""

    index: faiss.Index
    lookup: dict[str, np.ndarray]  # LOOKUP_COLUMNS -> arrays, sorted by uid
    kind: str
    action: str  # how ensure_index got it: loaded | built | extended

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int = 10, exclude_uids: Sequence[int] = ()) -> pd.DataFrame:
        """Top-k cases per query row by inner product (cosine on unit vectors), best first."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.index.d:
            raise PedclipError(
                f"query vectors have dimension {queries.shape[1]}; this index holds {self.index.d}"
            )
        if k < 1:
            raise PedclipError(f"k must be at least 1; got {k}")
        sims, ids = self._search(queries, min(k + len(exclude_uids), self.count))
        keep = (ids >= 0) & ~np.isin(ids, np.asarray(exclude_uids, dtype=np.int64))
        rank = np.cumsum(keep, axis=1) - 1
        keep &= rank < k
        query = np.broadcast_to(np.arange(len(queries))[:, None], ids.shape)[keep]
        uids = ids[keep]
        rows = np.searchsorted(self.lookup["uid"], uids)
        out = {"query": query, "rank": rank[keep], "uid": uids, "similarity": sims[keep]}
        out.update({c: self.lookup[c][rows] for c in LOOKUP_COLUMNS if c != "uid"})
        out["distance"] = 1.0 - out["similarity"]
        return pd.DataFrame(out)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        # One query gains nothing from OpenMP threads, and their start-up and barriers cost more than the
        # search itself on a busy 2-core machine, so single queries run on one thread.
        if len(queries) > 1:
            return self.index.search(queries, k)
        with thread_count("faiss").limit(1):  # process-wide: set and restored once across sessions
            return self.index.search(queries, k)


def _lookup(store: Store, dataset: str) -> dict[str, np.ndarray]:
    frame = cases_frame(store, dataset)[LOOKUP_COLUMNS].sort_values("uid")
    lookup = {c: frame[c].to_numpy() for c in LOOKUP_COLUMNS}
    # Labels as ints with None for unknown (DuckDB hands a nullable INTEGER column over as float NaN).
    lookup["label"] = np.array([None if pd.isna(v) else int(v) for v in frame["label"]], dtype=object)
    lookup["uid"] = lookup["uid"].astype(np.int64)
    return lookup


def ensure_index(
    store: Store, fingerprint: str, dataset: str, config: IndexConfig = IndexConfig()
) -> NeighborIndex:
    """The index for (model, dataset) matching the store's current embeddings: loaded, extended or built."""
    uids, shas = embedded_listing(store, fingerprint, dataset)
    if len(uids) == 0:
        raise PedclipError(
            f"dataset {dataset!r} has no embeddings for model {fingerprint}; run `pedclip embed` for it first"
        )
    path = index_path(store, fingerprint, dataset)
    current = listing_hash(uids, shas)
    found = _read_trusted(path)
    kind = config.kind_for(len(uids))
    if found is not None and found[1].get("listing_hash") == current and _same_build(found[1], kind, config):
        index, action = found[0], "loaded"
    elif (
        found is not None and _same_build(found[1], kind, config) and _is_unchanged_subset(found, uids, shas)
    ):
        index, action = _extend(store, fingerprint, dataset, found[0], uids), "extended"
        _write_atomic(index, path, _sidecar(kind, uids, current, config))
    else:
        index, action = _build(store, fingerprint, dataset, kind, config, uids), "built"
        _write_atomic(index, path, _sidecar(kind, uids, current, config))
    _set_search_params(index, config)
    return NeighborIndex(index=index, lookup=_lookup(store, dataset), kind=kind, action=action)


def _same_build(sidecar: dict, kind: str, config: IndexConfig) -> bool:
    """The stored index is of the kind, and built with the parameters, that `config` asks for today."""
    built = sidecar.get("config", {})
    same_graph = all(built.get(f) == getattr(config, f) for f in ("hnsw_m", "ef_construction"))
    return sidecar.get("kind") == kind and (kind == "flat" or same_graph)


def _sidecar(kind: str, uids: np.ndarray, current: str, config: IndexConfig) -> dict:
    return {"kind": kind, "count": int(len(uids)), "listing_hash": current, "config": asdict(config)}


def _is_unchanged_subset(found: tuple[faiss.Index, dict], uids: np.ndarray, shas: list[str]) -> bool:
    """True when the stored index covers a subset of today's (uid, sha) pairs, unchanged: it can be extended."""
    old_ids = faiss.vector_to_array(faiss.downcast_index(found[0]).id_map).astype(np.int64)
    positions = np.searchsorted(uids, old_ids)
    if len(old_ids) != found[1].get("count") or np.any(positions >= len(uids)):
        return False
    if not np.array_equal(uids[positions], old_ids):
        return False
    return listing_hash(old_ids, [shas[p] for p in positions]) == found[1].get("listing_hash")


def _listed_vectors(
    store: Store, fingerprint: str, dataset: str, uids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(uids, vectors) of the listed cases only, so rows a concurrent writer adds meanwhile stay out."""
    frame, vectors = case_vectors(store, fingerprint, dataset)
    ids = frame["uid"].to_numpy(np.int64)
    keep = np.isin(ids, uids)
    return ids[keep], np.ascontiguousarray(vectors[keep])


def _extend(
    store: Store, fingerprint: str, dataset: str, index: faiss.Index, uids: np.ndarray
) -> faiss.Index:
    old = faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64)
    ids, vectors = _listed_vectors(store, fingerprint, dataset, np.setdiff1d(uids, old))
    index.add_with_ids(vectors, ids)
    return index


def _build(
    store: Store, fingerprint: str, dataset: str, kind: str, config: IndexConfig, uids: np.ndarray
) -> faiss.Index:
    ids, vectors = _listed_vectors(store, fingerprint, dataset, uids)
    index = _new_index(vectors.shape[1], kind, config)
    index.add_with_ids(vectors, ids)
    return index


def case_query(store: Store, fingerprint: str, dataset: str, case_id: str) -> tuple[int, np.ndarray]:
    """(uid, vector) of one case, to query its neighbors; a clear error when absent or not embedded."""
    with store.read() as con:
        row = con.execute(
            """SELECT c.uid, e.vector FROM cases c JOIN image_embeddings e
                 ON e.image_sha256 = c.image_sha256 AND e.fingerprint = ?
               WHERE c.dataset = ? AND c.case_id = ?""",
            [fingerprint, dataset, case_id],
        ).fetchone()
    if row is None:
        raise PedclipError(
            f"case {case_id!r} of dataset {dataset!r} has no embedding for model {fingerprint}; "
            f"check the case id (the image's path under the dataset's root, or SPLIT:INDEX for an npz) or run"
            f" `pedclip embed --model ... --dataset {dataset}` first"
        )
    return int(row[0]), np.asarray(row[1], dtype=np.float32)


def neighbors(
    store: Store,
    fingerprint: str,
    dataset: str,
    queries: np.ndarray,
    k: int = 10,
    exclude_uids: Sequence[int] = (),
    config: IndexConfig = IndexConfig(),
) -> pd.DataFrame:
    """Neighbors of each query row among the dataset's embedded cases: query, rank, case_id, label,
    split, similarity (inner product), distance (1 - similarity), path, member, uid, image_sha256."""
    return ensure_index(store, fingerprint, dataset, config).search(queries, k, exclude_uids)
