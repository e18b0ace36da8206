"""FAISS neighbor indexes per (model fingerprint, dataset), mapped to cases by their stable `uid`.

`indexes/<fingerprint>/<dataset>.faiss` holds an IndexIDMap over case uids (never row order) of the kind
`IndexConfig` chooses by size (store/ann.py: exact, HNSW, IVF-PQ). A sidecar `<dataset>.json` records the
kind, its build parameters, how many vectors it holds, a hash of the (uid, image sha256) pairs it was built
from, and recall@10 against exact search measured at build time on held-out members; an index is used only
when that hash equals the store's current one. When cases were only added an exact or HNSW index is
extended; any other change (and any change to an IVF-PQ index, whose lists and codebooks were trained on
the old vectors) rebuilds it. Vectors are read from the scanning matrix (store/matrix.py). Files are
written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np
import pandas as pd

from pedclip.errors import PedclipError
from pedclip.store.ann import (
    IndexConfig,
    fill_index,
    held_out,
    measure_recall,
    new_index,
    set_search_params,
)
from pedclip.store.db import Store
from pedclip.store.embeddings import case_rows
from pedclip.store.matrix import VectorMatrix, open_matrix

__all__ = ["IndexConfig", "NeighborIndex", "case_query", "ensure_index", "index_path", "neighbors"]
from pedclip.threads import thread_count

LOOKUP_COLUMNS = ["uid", "case_id", "label", "split", "path", "member", "image_sha256"]


def index_path(store: Store, fingerprint: str, dataset: str) -> Path:
    return store.paths.indexes / fingerprint / f"{dataset}.faiss"


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".json")


@dataclass(frozen=True)
class Listing:
    """The dataset's cases that have a vector in the model's matrix, sorted by uid."""

    uids: np.ndarray  # int64
    rows: np.ndarray  # int64 row of each in the scanning matrix
    shas: list[str]


def embedded_listing(store: Store, fingerprint: str, dataset: str, below_row: int | None = None) -> Listing:
    frame = case_rows(store, fingerprint, dataset, columns=("uid", "image_sha256"), below_row=below_row)
    frame = frame.sort_values("uid", kind="stable")
    return Listing(
        frame["uid"].to_numpy(np.int64), frame["row_index"].to_numpy(np.int64), frame["image_sha256"].tolist()
    )


def listing_hash(uids: np.ndarray, shas: Sequence[str]) -> str:
    """Content hash of (uid, sha) pairs in uid order: what an index file was built from."""
    order = np.argsort(uids, kind="stable")
    digest = hashlib.sha256(np.asarray(uids, dtype="<i8")[order].tobytes())
    digest.update("\n".join(shas[i] for i in order).encode())
    return digest.hexdigest()


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
    """The index and its sidecar when both exist and agree on the file size; else None (rebuild). IVF-PQ
    indexes are memory-mapped: their inverted lists stay in the file and the page cache."""
    try:
        sidecar = json.loads(sidecar_path(path).read_text())
        if path.stat().st_size != sidecar.get("index_bytes"):
            return None
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if sidecar.get("kind") == "ivfpq" else 0
        return faiss.read_index(str(path), flags), sidecar
    except (OSError, ValueError, RuntimeError):
        return None


@dataclass
class NeighborIndex:
    """A loaded index, the case lookup its ids map to (columns as arrays, rows sorted by uid), and what it
    is: kind, how ensure_index got it, and the recall@10 measured when it was built."""

    index: faiss.Index
    lookup: dict[str, np.ndarray]  # LOOKUP_COLUMNS -> arrays, sorted by uid
    kind: str
    action: str  # how ensure_index got it: loaded | built | extended
    sidecar: dict
    listing: Listing | None = None  # uid -> matrix row, to rescore IVF-PQ candidates exactly
    matrix: VectorMatrix | None = None
    rerank: int = 1

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    @property
    def recall(self) -> float | None:
        """recall@10 against exact search measured at build time (1.0 for exact search)."""
        return self.sidecar.get("recall", {}).get("recall_at_10")

    def describe(self) -> dict:
        """Which index serves the queries and how good it measured: for `pedclip neighbors` and the dashboard."""
        recall = self.sidecar.get("recall", {})
        return {"kind": self.kind, "vectors": self.count, "action": self.action, "params": self.sidecar.get("params"),
                "recall_at_10": recall.get("recall_at_10"), "recall_queries": recall.get("recall_queries"),
                "recall_measured_at": recall.get("measured_at_count")}  # fmt: skip

    def search(self, queries: np.ndarray, k: int = 10, exclude_uids: Sequence[int] = ()) -> pd.DataFrame:
        """Top-k cases per query row by inner product (cosine on unit vectors), best first."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.index.d:
            raise PedclipError(
                f"query vectors have dimension {queries.shape[1]}; this index holds {self.index.d}"
            )
        if k < 1:
            raise PedclipError(f"k must be at least 1; got {k}")
        sims, ids = self.search_ids(queries, min(k + len(exclude_uids), self.count))
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

    def search_ids(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, uids), each (q, k); IVF-PQ candidates rescored exactly from the matrix."""
        if self.kind != "ivfpq" or self.matrix is None:
            return self._search(queries, k)
        sims, ids = self._search(queries, min(k * self.rerank, self.count))
        valid = ids >= 0
        rows = self.listing.rows[
            np.searchsorted(self.listing.uids, np.where(valid, ids, self.listing.uids[0]))
        ]
        vectors = self.matrix.read_rows(rows.ravel()).reshape(*rows.shape, -1)
        exact = np.where(valid, np.einsum("qd,qcd->qc", queries, vectors), -np.inf).astype(np.float32)
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(exact, order, 1), np.where(
            np.take_along_axis(valid, order, 1), np.take_along_axis(ids, order, 1), -1
        )

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        # One query gains nothing from OpenMP threads, and their start-up and barriers cost more than the
        # search itself on a busy 2-core machine, so single queries run on one thread.
        if len(queries) > 1:
            return self.index.search(queries, k)
        with thread_count("faiss").limit(1):  # process-wide: set and restored once across sessions
            return self.index.search(queries, k)


def _lookup(store: Store, dataset: str) -> dict[str, np.ndarray]:
    with store.read() as con:
        frame = con.sql(
            f"SELECT {', '.join(LOOKUP_COLUMNS)} FROM cases WHERE dataset = ? ORDER BY uid", params=[dataset]
        ).df()
    lookup = {c: frame[c].to_numpy() for c in LOOKUP_COLUMNS}
    # Labels as ints with None for unknown (DuckDB hands a nullable INTEGER column over as float NaN).
    lookup["label"] = np.array([None if pd.isna(v) else int(v) for v in frame["label"]], dtype=object)
    lookup["uid"] = lookup["uid"].astype(np.int64)
    return lookup


def ensure_index(
    store: Store, fingerprint: str, dataset: str, config: IndexConfig = IndexConfig()
) -> NeighborIndex:
    """The index for (model, dataset) matching the store's current embeddings: loaded, extended or built."""
    matrix = open_matrix(store, fingerprint)
    listing = embedded_listing(store, fingerprint, dataset, below_row=matrix.rows)
    if len(listing.uids) == 0:
        raise PedclipError(
            f"dataset {dataset!r} has no embeddings for model {fingerprint}; run `pedclip embed` for it first"
        )
    path = index_path(store, fingerprint, dataset)
    current = listing_hash(listing.uids, listing.shas)
    kind = config.kind_for(len(listing.uids))
    params = config.build_params(kind, len(listing.uids), matrix.vectors.shape[1])
    found = _read_trusted(path)
    same = found is not None and found[1].get("kind") == kind and found[1].get("params") == params
    if same and found[1].get("listing_hash") == current:
        index, sidecar, action = found[0], found[1], "loaded"
    elif same and kind != "ivfpq" and _is_unchanged_subset(found, listing):
        index, action = _extend(found[0], listing, matrix, config), "extended"
        sidecar = {**found[1], "count": len(listing.uids), "listing_hash": current}
        _write_atomic(index, path, sidecar)
    else:
        index, sidecar = _build(kind, params, listing, matrix, config)
        sidecar["listing_hash"] = current
        _write_atomic(index, path, sidecar)
        if kind == "ivfpq":  # serve from the mapped file, as a later process will, not from build memory
            index, sidecar = _read_trusted(path)
        action = "built"
    set_search_params(index, config)
    return NeighborIndex(
        index,
        _lookup(store, dataset),
        kind,
        action,
        sidecar,
        listing,
        matrix,
        config.rerank_for(len(listing.uids)),
    )


def _is_unchanged_subset(found: tuple[faiss.Index, dict], listing: Listing) -> bool:
    """True when the stored index covers a subset of today's (uid, sha) pairs, unchanged: it can be extended."""
    old_ids = faiss.vector_to_array(faiss.downcast_index(found[0]).id_map).astype(np.int64)
    positions = np.searchsorted(listing.uids, old_ids)
    if len(old_ids) != found[1].get("count") or np.any(positions >= len(listing.uids)):
        return False
    if not np.array_equal(listing.uids[positions], old_ids):
        return False
    return listing_hash(old_ids, [listing.shas[p] for p in positions]) == found[1].get("listing_hash")


def _extend(index: faiss.Index, listing: Listing, matrix: VectorMatrix, config: IndexConfig) -> faiss.Index:
    old = faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64)
    new = ~np.isin(listing.uids, old)
    fill_index(index, listing.uids[new], listing.rows[new], matrix, config)
    return index


def _build(kind: str, params: dict, listing: Listing, matrix: VectorMatrix, config: IndexConfig) -> tuple:
    """A new index over the listing and its sidecar (parameters, build time, recall measured at build)."""
    started = time.perf_counter()
    count = len(listing.uids)
    index = new_index(matrix.vectors.shape[1], kind, count, config)
    chosen = held_out(count, config)
    fill_index(index, listing.uids, listing.rows, matrix, config, keep_out=chosen)
    seconds = time.perf_counter() - started
    sidecar = {
        "kind": kind,
        "params": params,
        "count": count,
        "config": asdict(config),
        "build_s": round(seconds, 2),
    }
    if kind == "flat":
        recall = {"recall_at_10": 1.0, "recall_queries": 0, "k": 10}
    else:
        set_search_params(index, config)
        probe = NeighborIndex(index, {}, kind, "built", sidecar, listing, matrix, config.rerank_for(count))
        recall = measure_recall(
            lambda q, k: probe.search_ids(q, k)[1], matrix, listing.uids, listing.rows, chosen, config
        )
    sidecar["recall"] = {**recall, "measured_at_count": count}
    return index, sidecar


def case_query(store: Store, fingerprint: str, dataset: str, case_id: str) -> tuple[int, np.ndarray]:
    """(uid, vector) of one case, to query its neighbors; a clear error when absent or not embedded."""
    matrix = open_matrix(store, fingerprint)
    with store.read() as con:
        row = con.execute(
            """SELECT c.uid, r.row_index FROM cases c JOIN vector_rows r
                 ON r.image_key = c.image_key AND r.fingerprint = ?
               WHERE c.dataset = ? AND c.case_id = ? AND r.row_index < ?""",
            [fingerprint, dataset, case_id, matrix.rows],
        ).fetchone()
    if row is None:
        raise PedclipError(
            f"case {case_id!r} of dataset {dataset!r} has no embedding for model {fingerprint}; "
            f"check the case id (the image's path under the dataset's root, or SPLIT:INDEX for an npz) or run"
            f" `pedclip embed --model ... --dataset {dataset}` first"
        )
    return int(row[0]), matrix.take(np.array([row[1]]))[0]


def served_by(info: dict) -> str:
    """One line naming the index that served a query and its recall measured at build (CLI, dashboard)."""
    recall = info.get("recall_at_10")
    measured = (
        "exact"
        if info.get("kind") == "flat"
        else f"recall@10 {recall:.3f} measured at build on {info.get('recall_queries')} held-out cases"
        if recall is not None
        else "recall not measured"
    )
    return f"served by {info.get('kind')} index over {info.get('vectors')} vectors ({measured})"


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
    split, similarity (inner product), distance (1 - similarity), path, member, uid, image_sha256.
    `frame.attrs["index"]` says which index served them and its measured recall."""
    index = ensure_index(store, fingerprint, dataset, config)
    found = index.search(queries, k, exclude_uids)
    found.attrs["index"] = index.describe()
    return found
