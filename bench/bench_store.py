"""The store at scale: scanning-matrix loads, in-process rescoring, kNN at 1M, IVF-PQ at millions, CLI start.

Synthetic clustered unit vectors (d=512) stand in for image embeddings. Sections (each prints its figures):

    python bench/bench_store.py store --n 1000000          # a real Store: writes, loads, rescore, kNN (IVF-PQ)
    python bench/bench_store.py ivfpq --n 2000000          # IVF-PQ over a chunk-generated matrix (build, size,
                                                            #   peak RSS of build and of queries, latency, recall)
    python bench/bench_store.py cli --home H --model demo:clip --dataset peds-a   # whole-process timings

`ivfpq` builds in one child process and queries in another, so each peak RSS is its own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FP = "bench-store"
DIM = 512
CHUNK = 100_000


def _clustered(rng: np.random.Generator, n: int, centres: np.ndarray) -> np.ndarray:
    """Unit vectors around shared centres plus a low-rank within-cluster spread (like image embeddings)."""
    x = (
        centres[rng.integers(0, len(centres), n)]
        + 0.35 * rng.standard_normal((n, DIM), dtype=np.float32) / np.sqrt(DIM) * 4
    )
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _centres(seed: int = 0, count: int = 1024) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count, DIM), dtype=np.float32) / np.sqrt(DIM)


def _median_s(fn, reps: int = 5) -> tuple[float, object]:
    times, out = [], None
    for _ in range(reps):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def _say(name: str, value: str, target: str = "") -> None:
    print(f"{name:<58} {value:<22} {('target ' + target) if target else ''}", flush=True)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------------------------- store


def _fill_store(store, n: int) -> None:
    from pedclip.store.cases import CaseRow, replace_cases, upsert_dataset
    from pedclip.store.embeddings import put_image_embeddings

    rng, centres = np.random.default_rng(1), _centres()
    shas = [hashlib.sha256(f"s{i}".encode()).hexdigest() for i in range(n)]
    splits = np.array(["train", "val", "test"])[np.digitize(rng.random(n), [0.7, 0.8])]
    rows = [CaseRow(case_id=f"c{i:08d}", path=f"/b/{i}.png", image_sha256=shas[i], width=1, height=1, mode="L",
                    label=int(i % 3 == 0), split=str(splits[i])) for i in range(n)]  # fmt: skip
    upsert_dataset(store, "bench", "folders", "/b", ["normal", "pneumonia"])
    start = time.perf_counter()
    replace_cases(store, "bench", rows)
    _say("cases written", f"{time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    for lo in range(0, n, CHUNK):
        vectors = _clustered(rng, min(CHUNK, n - lo), centres)
        vectors[:, 0] += 0.05 * np.array([r.label for r in rows[lo : lo + len(vectors)]])  # a weak signal
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        put_image_embeddings(store, FP, shas[lo : lo + len(vectors)], vectors)
    _say(
        f"{n} vectors committed (DuckDB + matrix, {CHUNK}-row chunks)", f"{time.perf_counter() - start:.1f} s"
    )


def _duckdb_loads(store) -> None:
    """FLOAT[] (today's column) against ARRAY(FLOAT, 512), loaded into a float32 matrix via Arrow."""
    from pedclip.store.embeddings import matrix_from_arrow

    with store.write() as con:
        con.execute(
            "CREATE OR REPLACE TABLE bench_array AS SELECT vector::FLOAT[512] AS v FROM image_embeddings"
        )
    for label, sql in (
        ("FLOAT[]", "SELECT vector FROM image_embeddings"),
        ("FLOAT[512]", "SELECT v FROM bench_array"),
    ):

        def load(sql=sql):
            with store.read() as con:
                return matrix_from_arrow(con.sql(sql).to_arrow_table().column(0))

        seconds, matrix = _median_s(load, reps=3)
        _say(f"DuckDB {label} column -> float32 matrix {matrix.shape}", f"{seconds:.2f} s")
    with store.write() as con:
        con.execute("DROP TABLE bench_array")


def _rescore(store) -> None:
    from pedclip.eval.metrics import auroc, youden_threshold
    from pedclip.store.embeddings import case_rows
    from pedclip.store.matrix import open_matrix

    seconds, matrix = _median_s(lambda: open_matrix(store, FP))
    _say(f"open_matrix (verified against DuckDB, {matrix.rows} rows)", f"{seconds * 1000:.0f} ms")
    cols = ("case_id", "label", "split")
    seconds, frame = _median_s(lambda: case_rows(store, FP, "bench", None, cols, matrix.rows), reps=3)
    _say("case rows (case_id, label, split, row) of 1 dataset", f"{seconds * 1000:.0f} ms")
    seconds, _ = _median_s(lambda: matrix.take(frame["row_index"].to_numpy()), reps=3)
    _say("gather all rows from the mapped matrix (float32 copy)", f"{seconds * 1000:.0f} ms")
    prompts = _centres(5, 2).astype(np.float32)  # as text vectors are: a float64 one would upcast the matrix
    prompts /= np.linalg.norm(prompts, axis=1, keepdims=True)

    def load_for_scoring():
        m = open_matrix(store, FP)
        f = case_rows(store, FP, "bench", None, cols, m.rows)
        return m, f

    seconds, _ = _median_s(load_for_scoring, reps=3)
    _say(
        f"load for scoring: matrix + case rows, {matrix.rows} (no vector copied)",
        f"{seconds:.2f} s",
        "< 0.3 s warm",
    )

    def rescore():
        m, f = load_for_scoring()
        sims = np.asarray(m.vectors @ prompts.T)[f["row_index"].to_numpy()]  # one pass over the mapped rows
        logits = 100.0 * sims
        p = 1.0 / (1.0 + np.exp(logits[:, 0] - logits[:, 1]))
        labels, split = f["label"].to_numpy(), f["split"].to_numpy()
        threshold = youden_threshold(labels[split == "val"], p[split == "val"])
        test = split == "test"
        return auroc(labels[test], p[test]), threshold

    seconds, (auc, threshold) = _median_s(rescore, reps=3)
    _say("rescore 2 prompts in process (scores, AUROC, Youden on val)", f"{seconds:.2f} s", "< 1 s")
    print(f"   (AUROC {auc.value:.3f}, threshold {threshold:.3f})")
    _product_rescore(store, prompts)


def _product_rescore(store, prompts: np.ndarray) -> None:
    """What `pedclip rescore` and the prompt lab run (pedclip.eval.rescore: the sound protocol's leakage
    check, the cache state, case rows and a gathered copy of the split's vectors, the classifier, AUROC,
    Youden on val), with two prompts whose vectors are cached (`CachedPrompts`: no model) and no CIs."""
    from pedclip.embed.text import CachedPrompts
    from pedclip.eval.bootstrap import BootstrapConfig
    from pedclip.eval.rescore import rescore

    encoder = CachedPrompts(FP, FP, "openclip", 100.0, {"normal": prompts[0], "pneumonia": prompts[1]}, {})
    classes = {"normal": ["normal"], "pneumonia": ["pneumonia"]}
    none = BootstrapConfig(n_resamples=0)
    for split in ("val", "test"):
        seconds, _ = _median_s(
            lambda s=split: rescore(store, encoder, "bench", classes, s, bootstrap=none), 3
        )
        _say(
            f"pedclip.eval rescore of the {split} split (Youden on val), in process",
            f"{seconds:.2f} s",
            "< 1 s",
        )


def _fp16_error(n: int = 100_000) -> None:
    x = _clustered(np.random.default_rng(9), n, _centres())
    half = x.astype(np.float16).astype(np.float32)
    cos = np.sum(x * half, axis=1) / np.linalg.norm(half, axis=1)
    _say("float16 rows: max |1 - cos(fp16, fp32)| over 100k", f"{np.max(np.abs(1 - cos)):.2e}")


def _knn(store, n: int) -> None:
    from pedclip.store.ann import IndexConfig
    from pedclip.store.index import ensure_index, served_by

    config = IndexConfig(
        hnsw_max=min(n - 1, IndexConfig().hnsw_max)
    )  # IVF-PQ at this size (HNSW: ~6 min here)
    start = time.perf_counter()
    index = ensure_index(store, FP, "bench", config)
    _say(f"IVF-PQ index built over {n} ({index.action})", f"{time.perf_counter() - start:.0f} s")
    print("  ", served_by(index.describe()), index.sidecar["params"])
    start = time.perf_counter()
    index = ensure_index(store, FP, "bench", config)
    _say("index loaded (mmap) + case lookup", f"{time.perf_counter() - start:.2f} s")
    queries = _clustered(np.random.default_rng(7), 200, _centres())
    times = []
    for q in queries:
        start = time.perf_counter()
        index.search(q[None], 10)  # FAISS + exact rerank from the matrix + uid -> case lookup
        times.append(time.perf_counter() - start)
    _say("kNN k=10 single query incl. case lookup, median", f"{np.median(times) * 1000:.2f} ms", "< 5 ms")
    _say("  p90", f"{np.percentile(times, 90) * 1000:.2f} ms")
    _say("recall@10 vs exact (200 held-out members, at build)", f"{index.recall:.3f}", ">= 0.95")


def bench_store(args) -> None:
    from pedclip.store import Store

    home = Path(args.home or tempfile.mkdtemp(prefix="bench-store-"))
    store = Store.open(home)
    with store.read() as con:
        have = con.execute("SELECT count(*) FROM vector_rows WHERE fingerprint = ?", [FP]).fetchone()[0]
    if have != args.n:
        _fill_store(store, args.n)
    _say("load average before reads", _load())
    _duckdb_loads(store)
    _rescore(store)
    _fp16_error()
    _knn(store, args.n)
    _say("load average after", _load())


# ---------------------------------------------------------------------------------------------- ivfpq


class _Mapped:
    def __init__(self, path: Path, n: int):
        self.vectors = np.memmap(path, dtype=np.float32, mode="r", shape=(n, DIM))
        self.file = open(path, "rb", buffering=0)  # noqa: SIM115

    def take(self, rows):
        return np.asarray(self.vectors[np.asarray(rows)], dtype=np.float32)

    def read_rows(self, rows):
        """Rerank reads, as pedclip's NeighborIndex does them (VectorMatrix.read_rows)."""
        from pedclip.store.matrix import read_rows

        return read_rows(self.file, np.asarray(rows), np.float32, DIM)


def _generate(path: Path, n: int) -> None:
    rng, centres = np.random.default_rng(2), _centres()
    with open(path, "wb") as fh:
        for lo in range(0, n, CHUNK):
            fh.write(_clustered(rng, min(CHUNK, n - lo), centres).tobytes())


def ivfpq_child(args) -> None:
    """One process: `build` writes the index and its figures; `query` maps it and times queries."""
    import faiss

    from pedclip.store.ann import (
        IndexConfig,
        fill_index,
        held_out,
        measure_recall,
        new_index,
        set_search_params,
    )

    folder, n = Path(args.dir), args.n
    source, uids = _Mapped(folder / "vectors.f32", n), np.arange(n, dtype=np.int64)
    config, rows = IndexConfig(), np.arange(n)

    def search(index, queries, k, config=config):
        sims, ids = index.search(queries, k * config.rerank_for(n))
        exact = np.einsum("qd,qcd->qc", queries, source.read_rows(ids.ravel()).reshape(*ids.shape, DIM))
        order = np.argsort(-exact, axis=1)[:, :k]
        return np.take_along_axis(ids, order, 1)

    if args.phase == "build":
        private = _PrivatePeak().start()
        start = time.perf_counter()
        index = new_index(DIM, "ivfpq", n, config)
        chosen = held_out(n, config)
        fill_index(index, uids, rows, source, config, keep_out=chosen)
        build_s = time.perf_counter() - start
        faiss.write_index(index, str(folder / "index.faiss"))
        set_search_params(index, config)
        recall = measure_recall(lambda q, k: search(index, q, k), source, uids, rows, chosen, config)
        sweep = {}  # what visiting more lists or reranking deeper would buy, on the same held-out queries
        for nprobe, rerank in ((32, 20), (64, 20), (128, 20), (64, 50)):
            tried = replace(config, nprobe=nprobe, nprobe_share=0.0, rerank=rerank, rerank_wide=rerank)
            set_search_params(index, tried)
            found = measure_recall(
                lambda q, k, c=tried: search(index, q, k, c), source, uids, rows, chosen, tried
            )
            sweep[f"nprobe {nprobe}, rerank {rerank}"] = found["recall_at_10"]
        out = {"rerank": config.rerank_for(n), "build_s": build_s, "rss_gb": _peak_rss_gb(), "private_gb": private.stop(), **recall, "sweep": sweep,
               "nprobe": config.nprobe_for(config.lists_for(n)),
               "params": config.build_params("ivfpq", n, DIM), "bytes": (folder / "index.faiss").stat().st_size}  # fmt: skip
    else:
        index = faiss.read_index(str(folder / "index.faiss"), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        set_search_params(index, config)
        faiss.omp_set_num_threads(1)
        queries = _clustered(np.random.default_rng(8), 200, _centres())
        times = []
        for q in queries:
            start = time.perf_counter()
            search(index, q[None], 10)
            times.append(time.perf_counter() - start)
        out = {"median_ms": float(np.median(times) * 1000), "p90_ms": float(np.percentile(times, 90) * 1000),
               "rss_gb": _peak_rss_gb(), **_rss_parts_gb()}  # fmt: skip
    print(json.dumps(out))


def _peak_rss_gb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that across exec from the parent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class _PrivatePeak:
    """The peak of private (anon) resident memory, sampled every 0.2 s: the build maps the whole vector file,
    so VmHWM counts gigabytes of shared, clean page cache the build does not need."""

    def __init__(self):
        import threading

        self.peak, self._done = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> _PrivatePeak:
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.2):
            self.peak = max(self.peak, _rss_parts_gb()["anon_gb"])

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return max(self.peak, _rss_parts_gb()["anon_gb"])


def _rss_parts_gb() -> dict:
    """Resident memory now, split: private (anon) and pages mapped from files. The file part is page cache
    (the vector file's rows read for reranking, each fault mapping its neighbours too): shared, clean and
    reclaimable, so it is not memory the process needs."""
    fields = dict(
        line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
    )
    return {
        name: int(fields[key].split()[0]) / 2**20
        for name, key in (("anon_gb", "RssAnon"), ("file_gb", "RssFile"))
    }


def bench_ivfpq(args) -> None:
    folder = Path(args.dir or tempfile.mkdtemp(prefix="bench-ivfpq-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vectors.f32"
    if not path.exists() or path.stat().st_size != args.n * DIM * 4:
        start = time.perf_counter()
        _generate(path, args.n)
        _say(f"generated {args.n} x {DIM} in {CHUNK}-row chunks", f"{time.perf_counter() - start:.0f} s")
    _say("load average before build", _load())
    figures = {}
    for phase in ("build", "query"):
        cmd = [
            sys.executable,
            __file__,
            "ivfpq-child",
            "--phase",
            phase,
            "--n",
            str(args.n),
            "--dir",
            str(folder),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=True)
        figures[phase] = json.loads(result.stdout.strip().splitlines()[-1])
    build, query = figures["build"], figures["query"]
    _say(f"IVF-PQ {build['params']} build over {args.n}", f"{build['build_s']:.0f} s")
    _say("index file (codes + ids + lists)", f"{build['bytes'] / 2**20:.0f} MB")
    _say("peak RSS during build (incl. the vector file's page cache)", f"{build['rss_gb']:.2f} GB")
    _say("  peak private memory during build", f"{build['private_gb']:.2f} GB", "< 6 GB")
    _say("peak RSS during queries (index mapped)", f"{query['rss_gb']:.2f} GB", "< 2 GB")
    _say(
        "  of which private / file pages mapped, at the end",
        f"{query['anon_gb']:.2f} / {query['file_gb']:.2f} GB",
    )
    _say(f"single query k=10 (nprobe {build['nprobe']}, rerank {build['rerank']}), median", f"{query['median_ms']:.1f} ms",
         "< 20 ms")  # fmt: skip
    _say("  p90", f"{query['p90_ms']:.1f} ms")
    _say("recall@10 vs exact (200 held-out members)", f"{build['recall_at_10']:.3f}", ">= 0.90")
    for setting, value in build["sweep"].items():
        _say(f"  recall@10 at {setting}", f"{value:.3f}")
    _say("load average after", _load())


# ---------------------------------------------------------------------------------------------- cli


def bench_cli(args) -> None:
    """Whole processes on the demo store: `rescore` with both prompts cached (no model built; the issue's
    figure), `rescore` with two prompts never seen (the text tower is built to encode them), `runs list`."""
    exe = [sys.executable, "-c", "import sys; from pedclip.cli import main; sys.exit(main())"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    texts = ["a chest x-ray with clear lungs", "a chest x-ray with pneumonia"]

    def run(*argv: str) -> float:
        start = time.perf_counter()
        subprocess.run([*exe, "--home", args.home, *argv], env=env, capture_output=True, check=True)
        return time.perf_counter() - start

    def rescore(normal: str, pneumonia: str) -> float:
        return run("rescore", "--model", args.model, "--dataset", args.dataset, "--prompt", f"normal={normal}",
                   "--prompt", f"pneumonia={pneumonia}", "--resamples", "0", "--json")  # fmt: skip

    run("embed-text", "--model", args.model, *texts)  # cache the two prompts first
    cached = [rescore(*texts) for _ in range(args.reps)]
    fresh = [rescore(f"{texts[0]} ({i})", f"{texts[1]} ({i})") for i in range(args.reps)]
    listing = [run("runs", "list") for _ in range(args.reps)]
    what = f"whole process, median of {args.reps}"
    _say(f"pedclip rescore, 2 cached prompts, --resamples 0, {what}", f"{np.median(cached):.2f} s", "< 3 s")
    _say(f"pedclip rescore, 2 new prompts (text tower built), {what}", f"{np.median(fresh):.2f} s")
    _say(f"pedclip runs list, {what}", f"{np.median(listing):.2f} s", "< 1.5 s")
    _say("load average", _load())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("section", choices=["store", "ivfpq", "ivfpq-child", "cli"])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--home", help="store: reuse this PEDCLIP_HOME; cli: the demo store")
    parser.add_argument("--dir", help="ivfpq: folder for the generated matrix and the index")
    parser.add_argument("--phase", choices=["build", "query"])
    parser.add_argument("--model", default="demo:clip")
    parser.add_argument("--dataset", default="peds-a")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    print(f"# bench_store {args.section}: load average {_load()} on {os.cpu_count()} cores", flush=True)
    {"store": bench_store, "ivfpq": bench_ivfpq, "ivfpq-child": ivfpq_child, "cli": bench_cli}[args.section](
        args
    )


if __name__ == "__main__":
    main()
