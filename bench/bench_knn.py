"""kNN query latency at 100,000 cases (d=512), including the case lookup, through pedclip.store.index.

Clustered synthetic unit vectors stand in for image embeddings. Prints build/load times, single-query
latency (median, p90) for the default index (HNSW above IndexConfig.exact_max) and for exact search,
and recall@10 against a numpy brute force.

    python bench/bench_knn.py [--n 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pedclip.store import Store  # noqa: E402
from pedclip.store.cases import CaseRow, replace_cases, upsert_dataset  # noqa: E402
from pedclip.store.embeddings import put_image_embeddings  # noqa: E402
from pedclip.store.index import IndexConfig, ensure_index  # noqa: E402

FP = "bench-knn"


def clustered(rng: np.random.Generator, n: int, d: int, centres: np.ndarray) -> np.ndarray:
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.normal(size=(n, d)).astype(
        np.float32
    ) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def fill(store: Store, vectors: np.ndarray) -> None:
    shas = [hashlib.sha256(f"knn-{i}".encode()).hexdigest() for i in range(len(vectors))]
    rows = [CaseRow(case_id=f"c{i:07d}", path=f"/bench/{i}.jpg", image_sha256=s, width=1, height=1, mode="L",
                    label=i % 2, split="test") for i, s in enumerate(shas)]  # fmt: skip
    upsert_dataset(store, "knn", "folders", "/bench", ["normal", "pneumonia"])
    replace_cases(store, "knn", rows)
    put_image_embeddings(store, FP, shas, vectors)


def latency(index, queries: np.ndarray, k: int) -> tuple[float, float, list[set[str]]]:
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        hits = index.search(q[None], k)  # FAISS search + uid -> case row lookup
        times.append(time.perf_counter() - start)
        found.append(set(hits["case_id"]))
    ms = np.array(times) * 1000
    return float(np.median(ms)), float(np.percentile(ms, 90)), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (other processes skew every figure)"
    )
    rng = np.random.default_rng(0)
    d = 512
    centres = rng.normal(size=(256, d)).astype(np.float32) / np.sqrt(d)
    vectors, queries = clustered(rng, args.n, d, centres), clustered(rng, args.queries, d, centres)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, : args.k]
    expected = [{f"c{i:07d}" for i in row} for row in truth]
    with tempfile.TemporaryDirectory() as home:
        store = Store.open(home)
        start = time.perf_counter()
        fill(store, vectors)
        print(f"store filled with {args.n} cases + vectors in {time.perf_counter() - start:.1f} s")
        for label, config in (("default", IndexConfig()), ("exact", IndexConfig(exact_max=10**9))):
            start = time.perf_counter()
            index = ensure_index(store, FP, "knn", config)
            built = time.perf_counter() - start
            start = time.perf_counter()
            index = ensure_index(store, FP, "knn", config)
            loaded = time.perf_counter() - start
            median, p90, found = latency(index, queries, args.k)
            recall = np.mean([len(f & e) / args.k for f, e in zip(found, expected, strict=True)])
            print(
                f"{label} index ({index.kind}, n={index.count}): build {built:.1f} s, reload+verify {loaded:.2f} s; "
                f"single query k={args.k} incl. case lookup: median {median:.2f} ms, p90 {p90:.2f} ms "
                f"(target < 5 ms); recall@{args.k} vs numpy {recall:.3f}"
            )


if __name__ == "__main__":
    main()
