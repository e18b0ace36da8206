"""The invariants of the files beside the DuckDB store: FAISS indexes and their sidecars, the pixel cache,
and temporary files that a killed writer left behind (see `store/check.py` for the findings' shape).

Every repair here deletes a file pedclip rebuilds on demand (an index on its next query, a pixel-cache
entry on the next embed) or one nothing reads (a temporary file whose writer is gone).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import faiss
import numpy as np

from pedclip.store.check import REPAIR, Finding
from pedclip.store.db import Store
from pedclip.store.embeddings import case_vectors
from pedclip.store.index import embedded_listing, listing_hash, sidecar_path

_TEMP = re.compile(r"\.(\d+)\.(?:json\.)?tmp$")  # `<name>.<pid>.tmp`, as every atomic writer here names them
TEMP_MAX_AGE_S = 24 * 3600  # a temporary file this old is orphaned even if its pid is alive (pid reuse)
_SHA = re.compile(r"^[0-9a-f]{64}$")
_KEY = re.compile(r"^[0-9a-f]{16}$")
VECTOR_TOLERANCE = 1e-5


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def orphaned_temp_files(home: Path, now: float | None = None) -> list[Path]:
    """Temporary files under `home` whose writer is dead (or that are older than a day)."""
    now = time.time() if now is None else now
    found = []
    for folder, _, files in os.walk(home):
        for name in files:
            match = _TEMP.search(name)
            if match is None:
                continue
            path = Path(folder) / name
            try:
                age = now - path.stat().st_mtime
            except FileNotFoundError:  # its writer just renamed it
                continue
            if not _pid_alive(int(match.group(1))) or age > TEMP_MAX_AGE_S:
                found.append(path)
    return sorted(found)


def _removable(check: str, message: str, paths: list[Path], why: str) -> list[Finding]:
    """One safe finding for `paths` ({n} in `message` is their count), or none when there are none."""
    if not paths:
        return []
    fix = f"{REPAIR} (deletes them{why})"
    examples = tuple(str(p) for p in paths[:3])
    return [Finding(check, message.format(n=len(paths)), len(paths), fix, safe=True, examples=examples)]


def temp_findings(store: Store) -> list[Finding]:
    paths = orphaned_temp_files(store.paths.home)
    return _removable(
        "orphaned-temp-files", "{n} temporary files were left by writers that are gone", paths, ""
    )


def _known(store: Store) -> tuple[set[str], set[str]]:
    with store.read() as con:
        models = {r[0] for r in con.execute("SELECT fingerprint FROM models").fetchall()}
        datasets = {r[0] for r in con.execute("SELECT name FROM datasets").fetchall()}
    return models, datasets


def index_problem(store: Store, path: Path, models: set[str], datasets: set[str]) -> str | None:
    """Why this index file cannot be trusted (None when it can); 'stale' when it only lags the store."""
    fingerprint, dataset = path.parent.name, path.stem
    if fingerprint not in models or dataset not in datasets:
        return f"indexes a model or dataset the store does not have ({fingerprint}/{dataset})"
    try:
        sidecar = json.loads(sidecar_path(path).read_text())
        if path.stat().st_size != sidecar.get("index_bytes"):
            return "its sidecar describes another file (size differs)"
        index = faiss.read_index(str(path))
    except (OSError, ValueError, RuntimeError) as exc:
        return f"it or its sidecar is unreadable ({type(exc).__name__})"
    ids = faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64)
    if len(ids) != sidecar.get("count") or len(np.unique(ids)) != len(ids):
        return f"it holds {len(ids)} ids where its sidecar says {sidecar.get('count')} distinct ones"
    listing = embedded_listing(store, fingerprint, dataset)
    uids, shas = listing.uids, listing.shas
    if sidecar.get("listing_hash") != listing_hash(uids, shas):
        return "stale"
    return _vectors_problem(store, fingerprint, dataset, index, ids, uids)


def _vectors_problem(store, fingerprint, dataset, index, ids: np.ndarray, uids: np.ndarray) -> str | None:
    """The index claims to cover the store's current vectors: it must hold exactly those ids and vectors."""
    if not np.array_equal(np.sort(ids), uids):
        return "its sidecar vouches for the store's cases, but it holds other ids"
    frame, vectors = case_vectors(store, fingerprint, dataset)
    try:
        stored = faiss.downcast_index(faiss.downcast_index(index).index).reconstruct_n(0, index.ntotal)
    except RuntimeError:  # a compressed index (IVF-PQ) keeps no exact vectors to compare; its ids matched
        return None
    frame_uids = frame["uid"].to_numpy(np.int64)
    order = np.argsort(frame_uids)
    expected = vectors[order[np.searchsorted(frame_uids[order], ids)]]
    if not np.allclose(stored, expected, atol=VECTOR_TOLERANCE):
        return "its vectors differ from the store's vectors for the same cases"
    return None


def index_findings(store: Store) -> list[Finding]:
    """Broken index files (problems, safe to delete: rebuilt on the next query) and stale ones (a note)."""
    root = store.paths.indexes
    if not root.exists():
        return []
    models, datasets = _known(store)
    broken, stale = [], []
    for path in sorted(root.glob("*/*.faiss")):
        why = index_problem(store, path, models, datasets)
        if why == "stale":
            stale.append(str(path))
        elif why is not None:
            broken.append(f"{path}: {why}")
    orphans = [
        f"{p}: a sidecar without its index"
        for p in sorted(root.glob("*/*.json"))
        if not p.with_suffix(".faiss").exists()
    ]
    out = []
    if broken or orphans:
        out.append(
            Finding(
                "faiss-index-mismatch",
                f"{len(broken) + len(orphans)} FAISS index files do not match the vectors they claim to cover",
                len(broken) + len(orphans),
                REPAIR + " (deletes them; the next neighbors query rebuilds the index)",
                safe=True,
                examples=tuple((broken + orphans)[:3]),
            )
        )
    if stale:
        out.append(
            Finding(
                "faiss-index-stale",
                f"{len(stale)} FAISS indexes lag the store's embeddings",
                len(stale),
                "nothing: each is extended or rebuilt on its next neighbors query",
                safe=False,
                severity="note",
                examples=tuple(stale[:3]),
            )
        )
    return out


def _preprocess_sizes(store: Store) -> dict[str, tuple[int, int]]:
    """Preprocess key -> (size, channels) of every registered model's preprocess config."""
    from pedclip.models.base import PreprocessConfig

    with store.read() as con:
        rows = con.execute("SELECT DISTINCT preprocess FROM models").fetchall()
    out = {}
    for (text,) in rows:
        try:
            config = PreprocessConfig(**json.loads(text))
        except (TypeError, ValueError):
            continue
        out[config.key()] = (config.size, config.channels)
    return out


def pixel_entry_problem(path: Path, sizes: dict[str, tuple[int, int]]) -> str | None:
    """Why a pixel-cache file does not match its key (None when it does): name, header, length, shape."""
    sha, key = path.stem, path.parent.parent.name
    if not _SHA.match(sha) or path.parent.name != sha[:2] or not _KEY.match(key):
        return "its name is not <preprocess key>/<sha[:2]>/<sha256>.npy"
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)  # reads the header, checks the length
    except (OSError, ValueError, EOFError) as exc:
        return f"unreadable ({type(exc).__name__}: {exc})"
    if array.dtype not in (np.uint8, np.float32) or array.ndim not in (2, 3):
        return f"holds a {array.dtype} array of {array.ndim} dimensions, not a decoded image"
    if key in sizes:
        size = sizes[key][0]
        if array.shape[:2] != (size, size) or (array.ndim == 3 and array.shape[2] != 3):
            return f"has shape {array.shape}; its preprocess key says {size}x{size}"
    return None


def pixel_findings(store: Store) -> list[Finding]:
    root = store.paths.pixels
    if not root.exists():
        return []
    sizes = _preprocess_sizes(store)
    bad = []
    for path in sorted(root.glob("*/*/*.npy")):
        why = pixel_entry_problem(path, sizes)
        if why is not None:
            bad.append(f"{path}: {why}")
    if not bad:
        return []
    return [
        Finding(
            "pixel-cache-mismatch",
            f"{len(bad)} pixel-cache entries do not match their keys",
            len(bad),
            REPAIR + " (deletes them; the next embed decodes those images again)",
            safe=True,
            examples=tuple(bad[:3]),
        )
    ]


def orphaned_training_states(store: Store) -> list[Path]:
    """Folders of fine-tune resume state (`Paths.training/<run_id>`) whose run is not unfinished any more
    (done, interrupted, or gone), so no rerun will continue it, and that no process holds."""
    import fcntl

    root = store.paths.training
    if not root.exists():
        return []
    with store.read() as con:
        unfinished = {
            r[0]
            for r in con.execute("SELECT run_id FROM runs WHERE status IN ('running', 'failed')").fetchall()
        }
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in unfinished):
        lock = folder / "training.lock"
        try:
            with open(lock, "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released on close
        except BlockingIOError:
            continue  # a run starting right now (its row is not written yet)
        except OSError:
            pass
        out.append(folder)
    return out


def training_state_findings(store: Store) -> list[Finding]:
    return _removable(
        "training-state-orphaned",
        "{n} fine-tune resume states belong to no unfinished run",
        orphaned_training_states(store),
        "; no rerun can continue those runs",
    )


FILE_CHECKS = (index_findings, pixel_findings, temp_findings, training_state_findings)


def repair_files(store: Store, findings: list[Finding]) -> list[dict]:
    """Delete the files behind the safe file findings (found afresh: the examples are only the first few)."""
    done = []
    checks = {f.check for f in findings if f.safe}
    if "faiss-index-mismatch" in checks:
        done.append({"check": "faiss-index-mismatch", "removed": _remove(_broken_index_files(store))})
    if "pixel-cache-mismatch" in checks:
        sizes = _preprocess_sizes(store)
        paths = [p for p in store.paths.pixels.glob("*/*/*.npy") if pixel_entry_problem(p, sizes)]
        done.append({"check": "pixel-cache-mismatch", "removed": _remove(paths)})
    if "training-state-orphaned" in checks:
        folders = orphaned_training_states(store)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        done.append({"check": "training-state-orphaned", "removed": len(folders)})
    if "orphaned-temp-files" in checks:
        done.append(
            {"check": "orphaned-temp-files", "removed": _remove(orphaned_temp_files(store.paths.home))}
        )
    return done


def _broken_index_files(store: Store) -> list[Path]:
    models, datasets = _known(store)
    out = []
    for path in store.paths.indexes.glob("*/*.faiss"):
        if index_problem(store, path, models, datasets) not in (None, "stale"):
            out += [path, sidecar_path(path)]
    out += [p for p in store.paths.indexes.glob("*/*.json") if not p.with_suffix(".faiss").exists()]
    return out


def _remove(paths: list[Path]) -> int:
    removed = 0
    for path in paths:
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed
