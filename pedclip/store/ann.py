"""FAISS index families chosen by size, built from the scanning matrix, and their recall measured at build.

Following FAISS's own guidelines: exact search while a scan is cheap, HNSW (fast, all in memory) up to a
few hundred thousand vectors, and beyond that IVF-PQ: a coarse quantizer of about 4 sqrt(n) lists (an HNSW
graph over the centroids when there are many), trained on a sample, 64-byte PQ codes, inverted lists memory-mapped
from the index file. As LanceDB's `refine_factor` does, IVF-PQ candidates (`rerank` x k) are rescored
exactly from the memory-mapped matrix, so PQ's rounding costs ranks only among far candidates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np

KINDS = ("flat", "hnsw", "ivfpq")


@dataclass(frozen=True)
class IndexConfig:
    exact_max: int = 50_000  # up to this many vectors exact search (~18 ms a query at 100k on 2 cores)
    # up to this many HNSW; above, IVF-PQ with exact rerank. Measured on 1M clustered vectors (bench/README.md):
    # HNSW (M 32, efConstruction 40) built in 245 s, 2.3 GB, recall@10 0.75 at efSearch 128 and 0.92 at
    # 1024 (4.5 ms); IVF-PQ built in 117 s, ~70 MB beside the matrix, 0.983 at 3.3 ms. At 100k HNSW gave
    # 0.972 (bench_knn.py), and IVF-PQ 0.997 at 200k: the switch sits between
    hnsw_max: int = 200_000
    hnsw_m: int = 32  # HNSW graph degree
    ef_construction: int = 40  # HNSW build breadth (faiss default)
    ef_search: int = 128  # HNSW query breadth: recall vs latency (see tests/store/test_index.py)
    ivf_lists: int = 0  # IVF lists; 0 = about 4 sqrt(n), within [8, 16384]
    pq_bytes: int = 64  # PQ code bytes per vector (8-bit subquantizers); reduced until it divides the dim
    train_max: int = 100_000  # vectors sampled to train the quantizer and PQ codebooks: at least this many,
    train_per_list: int = 40  # or this many per IVF list (k-means wants >= 39 a centroid), at most train_cap
    train_cap: int = 600_000  # 1.2 GB of 512-d float32 while training: within the 6 GB build budget
    nprobe: int = 32  # IVF lists visited per query, at least; more past 4,000 lists (`nprobe_for`)
    nprobe_share: float = 0.008  # ... so that ~0.8% of the lists are visited, as 32 of 4,000 at 1M
    # search breadth of the HNSW coarse quantizer (> 4,096 lists), adding and querying: at faiss's default 16
    # recall@10 at 2M was 0.669, at 128 it is 0.927 (bench/README.md)
    quantizer_ef: int = 128
    # IVF-PQ: rescore rerank x k candidates exactly from the scanning matrix; at 1M clustered vectors (64-byte
    # codes, nprobe 32) recall@10 is 0.910 at 10, 0.983 at 20, 0.999 at 40, for 3.3, 3.3, 3.8 ms a query
    # (bench/README.md): the PQ ranking, not nprobe (64 changed nothing), is what loses neighbours
    rerank: int = 20
    # from 2M vectors on the PQ ranking loses more: recall@10 at rerank 20 / 50 was 0.927 / 0.969 at 2M and
    # 0.869 / 0.950 at 5M (nprobe 64-72, bench/README.md), for ~1 ms more a query
    rerank_wide: int = 50
    rerank_wide_from: int = 2_000_000
    recall_queries: int = 200  # held-out members whose recall@10 against exact search is measured at build
    add_chunk: int = 100_000  # rows read from the matrix at a time while adding
    seed: int = 0

    def kind_for(self, count: int) -> str:
        if count <= self.exact_max:
            return "flat"
        return "hnsw" if count <= self.hnsw_max else "ivfpq"

    def lists_for(self, count: int) -> int:
        return self.ivf_lists or int(min(16_384, max(8, 4 * math.sqrt(count))))

    def train_for(self, lists: int) -> int:
        return max(self.train_max, min(self.train_cap, self.train_per_list * lists))

    def rerank_for(self, count: int) -> int:
        """Candidates rescored exactly per neighbour wanted, for an IVF-PQ index over `count` vectors."""
        return self.rerank_wide if count >= self.rerank_wide_from else self.rerank

    def nprobe_for(self, lists: int) -> int:
        return min(lists, max(self.nprobe, math.ceil(self.nprobe_share * lists)))

    def build_params(self, kind: str, count: int, dim: int) -> dict:
        """What identifies a build of `kind` (a stored index built otherwise is rebuilt)."""
        if kind == "hnsw":
            return {"hnsw_m": self.hnsw_m, "ef_construction": self.ef_construction}
        if kind == "ivfpq":
            lists = self.lists_for(count)
            return {
                "lists": lists,
                "pq_bytes": pq_bytes_for(self.pq_bytes, dim),
                "train": min(count, self.train_for(lists)),  # the training sample's size, at most
            }
        return {}


def pq_bytes_for(wanted: int, dim: int) -> int:
    """The largest PQ code size <= wanted that divides the dimension (FAISS needs dim % m == 0)."""
    return next(m for m in range(min(wanted, dim), 0, -1) if dim % m == 0)


def new_index(dim: int, kind: str, count: int, config: IndexConfig) -> faiss.Index:
    if kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = config.ef_construction
    else:
        lists = config.lists_for(count)
        quantizer = faiss.IndexFlatIP(dim) if lists <= 4096 else faiss.IndexHNSWFlat(dim, 32)
        inner = faiss.IndexIVFPQ(quantizer, dim, lists, pq_bytes_for(config.pq_bytes, dim), 8)
        inner.metric_type = faiss.METRIC_INNER_PRODUCT
        inner.own_fields = True
        quantizer.this.disown()
    return faiss.IndexIDMap(inner)


def inner_index(index: faiss.Index) -> faiss.Index:
    return faiss.downcast_index(faiss.downcast_index(index).index)


def set_search_params(index: faiss.Index, config: IndexConfig) -> None:
    inner = inner_index(index)
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = config.ef_search
    elif isinstance(inner, faiss.IndexIVF):
        inner.nprobe = config.nprobe_for(inner.nlist)
        set_quantizer_breadth(inner, max(config.quantizer_ef, 2 * inner.nprobe))


def set_quantizer_breadth(inner: faiss.IndexIVF, ef: int) -> None:
    """An HNSW coarse quantizer's efSearch: at faiss's default (16) adding assigns many vectors to a list
    that is not their nearest centroid's, and queries then miss them (recall@10 0.67 at 2M, 5,657 lists)."""
    quantizer = faiss.downcast_index(inner.quantizer)
    if isinstance(quantizer, faiss.IndexHNSW):
        quantizer.hnsw.efSearch = ef


def held_out(count: int, config: IndexConfig) -> np.ndarray:
    """Positions kept out of training, whose recall@10 is measured at build."""
    rng = np.random.default_rng(config.seed + 1)
    return np.sort(rng.choice(count, size=min(config.recall_queries, count), replace=False))


def fill_index(
    index: faiss.Index, uids: np.ndarray, rows: np.ndarray, source, config: IndexConfig, keep_out=()
) -> None:
    """Train (IVF-PQ, on a sample without the `keep_out` positions) and add every row;
    `source.take(rows)` gives float32 vectors."""
    inner = inner_index(index)
    if not inner.is_trained:
        rng = np.random.default_rng(config.seed)
        pool = np.setdiff1d(np.arange(len(rows)), np.asarray(keep_out, dtype=np.int64))
        size = min(len(pool), config.train_for(inner.nlist))
        sample = np.sort(rng.choice(pool, size=size, replace=False))
        for clustering in (inner.cp, inner.pq.cp):  # a small sample is expected: no warning per codebook
            clustering.min_points_per_centroid = 1
        inner.train(source.take(rows[sample]))
    if isinstance(inner, faiss.IndexIVF):
        set_quantizer_breadth(inner, config.quantizer_ef)
    for start in range(0, len(rows), config.add_chunk):
        stop = start + config.add_chunk
        index.add_with_ids(source.take(rows[start:stop]), np.ascontiguousarray(uids[start:stop]))


def exact_top(
    source, rows: np.ndarray, uids: np.ndarray, queries: np.ndarray, k: int, chunk: int
) -> np.ndarray:
    """(q, k) uids of the exact top-k by inner product, scanning the rows in bounded chunks."""
    best_sims = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(rows), chunk):
        sims = queries @ source.take(rows[start : start + chunk]).T
        sims = np.concatenate([best_sims, sims], axis=1)
        ids = np.concatenate(
            [
                best_ids,
                np.broadcast_to(
                    uids[start : start + chunk], (len(queries), sims.shape[1] - best_ids.shape[1])
                ),
            ],
            axis=1,
        )
        keep = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        best_sims, best_ids = np.take_along_axis(sims, keep, 1), np.take_along_axis(ids, keep, 1)
    return best_ids


def measure_recall(
    search, source, uids: np.ndarray, rows: np.ndarray, chosen: np.ndarray, config: IndexConfig, k: int = 10
) -> dict:
    """recall@k of `search(queries, k) -> uids` against exact search, the members at `chosen` (held out
    of training) as queries, each query's own case left out of both lists (as when asking for a case's
    neighbours)."""
    queries = source.take(rows[chosen])
    truth = exact_top(source, rows, uids, queries, k + 1, config.add_chunk)
    found = search(queries, k + 1)
    hits = []
    for q, own in enumerate(uids[chosen]):
        want = [u for u in truth[q] if u != own][:k]
        got = [u for u in found[q] if u != own][:k]
        hits.append(len(set(want) & set(got)) / k)
    return {"recall_at_10": float(np.mean(hits)), "recall_queries": len(chosen), "k": k}
