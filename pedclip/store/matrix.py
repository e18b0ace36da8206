"""Image vectors kept for scanning: one memory-mapped matrix per model beside DuckDB.

DuckDB stays the store of record. `vectors/<fingerprint>/` holds the same vectors as fixed-size rows
(`vectors.float32` or `vectors.float16`, raw little-endian) and the image sha256 of each row (`keys`, 64
ASCII bytes per row); the row of each image is the `vector_rows.row_index` that DuckDB assigned in the
transaction that committed the vector. `manifest.json` is the commit point: how many rows are valid and a
digest of DuckDB's (row, sha) listing for them, computed by DuckDB itself.

A matrix is used only when its manifest matches the store's listing now, never because files exist. Rows
DuckDB committed after the manifest (a process killed between the DuckDB commit and the append, or another
writer) are appended from DuckDB; bytes past the manifest (killed mid-append) are cut off; anything else
(another store, another dtype, a listing that differs in rows the file already holds) rebuilds the matrix
from DuckDB into new files renamed into place, so a reader's open mapping stays valid.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pedclip.errors import PedclipError
from pedclip.store.db import Store

KEY_BYTES = 64  # a sha256 in hex
DTYPES = ("float32", "float16")
_BATCH_ROWS = 65_536  # rows per batch when streaming vectors out of DuckDB (~128 MB at d=512)
_MANIFEST_VERSION = 1


@dataclass(frozen=True)
class MatrixConfig:
    # float16 halves disk and page cache; its rounding moves a unit vector's cosine by < 3e-7 (bench_store)
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise PedclipError(f"matrix dtype must be one of {', '.join(DTYPES)}; got {self.dtype!r}")


@dataclass(frozen=True)
class Manifest:
    fingerprint: str
    dim: int
    dtype: str
    rows: int
    listing_digest: str  # DuckDB's sum(hash(row_index, image_sha256)) over rows < `rows`
    duckdb: str  # DuckDB's hash() is stable within a version only
    version: int = _MANIFEST_VERSION


@dataclass
class VectorMatrix:
    """The valid rows of one model's matrix, memory-mapped (an empty array when the model has none)."""

    fingerprint: str
    vectors: np.ndarray  # (rows, dim) float32 or float16, read-only
    keys: np.ndarray  # (rows,) S64 image sha256 of each row
    action: str  # loaded | appended | repaired | rebuilt | empty
    # The data file, opened when it was mapped: the same file (inode) as the mapping even if a rebuild renames
    # a new one into place, for `read_rows`.
    file: io.FileIO | None = field(default=None, repr=False, compare=False)

    @property
    def rows(self) -> int:
        return int(self.vectors.shape[0])

    def take(self, rows: np.ndarray) -> np.ndarray:
        """float32 copies of the given rows, in the given order (through the mapping: for scans and gathers)."""
        rows = self._checked(rows)
        return np.asarray(self.vectors[rows], dtype=np.float32)

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """float32 copies of a few scattered rows, read from the file rather than through the mapping: what
        reranking a query's candidates wants. A row touched through the mapping maps the page cache's whole
        folio around it (~120 kB a row, measured), so a query process reranking from the mapping held 11.5 GB of
        the 10M matrix's file pages after 200 queries; reading keeps it to the rows, at no cost in latency
        (bench/README.md)."""
        rows = self._checked(rows)
        if self.file is None or not len(rows):
            return self.take(rows)
        return read_rows(self.file, rows, self.vectors.dtype, self.vectors.shape[1])

    def _checked(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.rows):
            raise PedclipError(f"matrix row out of range for model {self.fingerprint}; run it again")
        return rows


def read_rows(file: io.FileIO, rows: np.ndarray, dtype: np.dtype, dim: int) -> np.ndarray:
    """(len(rows), dim) float32: each row read with one positioned read, in file order."""
    row_bytes = dim * np.dtype(dtype).itemsize
    out = np.empty((len(rows), dim), dtype=np.float32)
    fd = file.fileno()
    for i in np.argsort(rows, kind="stable"):
        out[i] = np.frombuffer(os.pread(fd, row_bytes, int(rows[i]) * row_bytes), dtype=dtype)
    return out


def matrix_dir(store: Store, fingerprint: str) -> Path:
    return store.paths.vectors / fingerprint


def _duckdb_version() -> str:
    import duckdb

    return duckdb.__version__


_LISTING = """SELECT count(*), coalesce(sum(h), 0)::VARCHAR,
                       coalesce(sum(h) FILTER (WHERE row_index < ?), 0)::VARCHAR
                FROM (SELECT row_index, hash(row_index, image_sha256) AS h
                      FROM vector_rows WHERE fingerprint = ?)"""


def listing_digest(con, fingerprint: str, prefix_rows: int) -> tuple[int, str, str]:
    """(rows DuckDB lists for the model, digest of all of them, digest of those below `prefix_rows`),
    computed by DuckDB on an open connection (no vector is read)."""
    count, whole, prefix = con.execute(_LISTING, [prefix_rows, fingerprint]).fetchone()
    return int(count), whole, prefix


def _store_listing(store: Store, fingerprint: str, prefix_rows: int) -> tuple[int, str, str]:
    import duckdb

    with store.read() as con:
        try:
            return listing_digest(con, fingerprint, prefix_rows)
        except duckdb.CatalogException as exc:  # a reader that never migrates (the dashboard) on an old store
            raise PedclipError(
                f"the store at {store.paths.db} predates the vector matrix (schema < 3); run any pedclip "
                "command on it once (e.g. `pedclip data list`) to migrate it"
            ) from exc


def _paths(folder: Path, dtype: str) -> tuple[Path, Path, Path]:
    return folder / f"vectors.{dtype}", folder / "keys", folder / "manifest.json"


def _read_manifest(folder: Path) -> Manifest | None:
    try:
        data = json.loads((folder / "manifest.json").read_text())
        manifest = Manifest(**data)
    except (OSError, ValueError, TypeError):
        return None
    return manifest if manifest.version == _MANIFEST_VERSION else None


def _write_manifest(folder: Path, manifest: Manifest) -> None:
    tmp = folder / f".manifest.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        fh.write(json.dumps(asdict(manifest), sort_keys=True))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / "manifest.json")


def _files_hold(folder: Path, manifest: Manifest) -> bool:
    """The data files hold at least the manifest's rows (bytes past them are an interrupted append)."""
    data, keys, _ = _paths(folder, manifest.dtype)
    row_bytes = manifest.dim * np.dtype(manifest.dtype).itemsize
    try:
        return (
            data.stat().st_size >= manifest.rows * row_bytes
            and keys.stat().st_size >= manifest.rows * KEY_BYTES
        )
    except OSError:
        return False


def _is_current(
    manifest: Manifest | None, count: int, digest: str, config: MatrixConfig, folder: Path
) -> bool:
    return (
        manifest is not None
        and manifest.rows == count
        and manifest.listing_digest == digest
        and manifest.dtype == config.dtype
        and manifest.duckdb == _duckdb_version()
        and _files_hold(folder, manifest)
    )


def _mapped(fingerprint: str, folder: Path, manifest: Manifest, action: str) -> VectorMatrix:
    data, keys, _ = _paths(folder, manifest.dtype)
    if manifest.rows == 0:
        vectors = np.zeros((0, manifest.dim), dtype=manifest.dtype)
        return VectorMatrix(fingerprint, vectors, np.zeros(0, dtype=f"S{KEY_BYTES}"), action)
    shape = (manifest.rows, manifest.dim)
    vectors = np.memmap(data, dtype=manifest.dtype, mode="r", shape=shape)
    key_rows = np.memmap(keys, dtype=f"S{KEY_BYTES}", mode="r", shape=(manifest.rows,))
    return VectorMatrix(fingerprint, vectors, key_rows, action, open(data, "rb", buffering=0))  # noqa: SIM115


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One process at a time appends to or rebuilds a model's matrix (readers need no lock)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def open_matrix(store: Store, fingerprint: str, config: MatrixConfig = MatrixConfig()) -> VectorMatrix:
    """The model's matrix, matching DuckDB's vectors now: loaded, caught up, repaired or rebuilt."""
    folder = matrix_dir(store, fingerprint)
    manifest = _read_manifest(folder)
    count, digest, _ = _store_listing(store, fingerprint, manifest.rows if manifest else 0)
    if _is_current(manifest, count, digest, config, folder):
        return _mapped(fingerprint, folder, manifest, "loaded")
    with _locked(folder):
        return _sync_locked(store, fingerprint, folder, config)


def _sync_locked(store: Store, fingerprint: str, folder: Path, config: MatrixConfig) -> VectorMatrix:
    manifest = _read_manifest(folder)
    held = manifest.rows if manifest else 0
    count, digest, prefix_digest = _store_listing(store, fingerprint, held)
    if _is_current(manifest, count, digest, config, folder):
        return _mapped(fingerprint, folder, manifest, "loaded")
    if count == 0:
        empty = Manifest(
            fingerprint, manifest.dim if manifest else 0, config.dtype, 0, "0", _duckdb_version()
        )
        _write_manifest(folder, empty)
        return _mapped(fingerprint, folder, empty, "empty")
    extendable = (
        manifest is not None
        and manifest.dtype == config.dtype
        and manifest.duckdb == _duckdb_version()
        and held <= count
        and manifest.listing_digest == prefix_digest
        and _files_hold(folder, manifest)
    )
    if extendable:
        action = "appended" if _sizes_exact(folder, manifest) else "repaired"
        manifest = _append_from_store(store, folder, manifest, count, digest)
    else:
        action = "rebuilt"
        manifest = _rebuild_from_store(store, fingerprint, folder, config, count, digest)
    return _mapped(fingerprint, folder, manifest, action)


def append_committed(
    store: Store, fingerprint: str, start: int, shas: list[str], vectors: np.ndarray, listing: tuple
) -> None:
    """After a commit that gave `shas` rows start.. (in that order) and left the model's `listing` (from
    `listing_digest(con, fingerprint, start)` inside that transaction): append the rows from memory when
    the matrix ends at `start`, else catch up from DuckDB (another writer came first, or it is stale)."""
    folder = matrix_dir(store, fingerprint)
    count, digest, prefix = listing
    with _locked(folder):
        manifest = _read_manifest(folder)
        direct = (
            manifest is not None
            and manifest.rows == start
            and count == start + len(shas)
            and manifest.listing_digest == prefix
            and manifest.dim == vectors.shape[1]
            and _files_hold(folder, manifest)
        )
        if not direct:
            _sync_locked(store, fingerprint, folder, MatrixConfig(manifest.dtype if manifest else "float32"))
            return
        _append_rows(folder, manifest, vectors, shas)
        _write_manifest(folder, Manifest(**{**asdict(manifest), "rows": count, "listing_digest": digest}))


def _sizes_exact(folder: Path, manifest: Manifest) -> bool:
    data, keys, _ = _paths(folder, manifest.dtype)
    row_bytes = manifest.dim * np.dtype(manifest.dtype).itemsize
    return (
        data.stat().st_size == manifest.rows * row_bytes and keys.stat().st_size == manifest.rows * KEY_BYTES
    )


def _store_batches(
    store: Store, fingerprint: str, start: int, stop: int
) -> Iterator[tuple[np.ndarray, list]]:
    """(vectors float32, shas) of rows start..stop-1 in row order, streamed in bounded batches."""
    from pedclip.store.embeddings import matrix_from_arrow

    expected = start
    with store.read() as con:
        reader = con.sql(
            """SELECT r.row_index, r.image_sha256, e.vector FROM vector_rows r JOIN image_embeddings e
                 ON e.fingerprint = r.fingerprint AND e.image_sha256 = r.image_sha256
               WHERE r.fingerprint = ? AND r.row_index >= ? AND r.row_index < ? ORDER BY r.row_index""",
            params=[fingerprint, start, stop],
        ).to_arrow_reader(_BATCH_ROWS)
        for batch in reader:
            rows = batch.column(0).to_numpy()
            if not np.array_equal(rows, np.arange(expected, expected + len(rows))):
                raise PedclipError(
                    f"the store's vector rows for model {fingerprint} are not dense from {expected}; "
                    "the store is damaged: run `pedclip store check`"
                )
            expected += len(rows)
            yield matrix_from_arrow(batch.column(2)), batch.column(1).to_pylist()
    if expected != stop:
        raise PedclipError(f"the store lists {stop} vectors for model {fingerprint} but holds {expected}")


def _append_rows(folder: Path, manifest: Manifest, vectors: np.ndarray, shas: list) -> int:
    """Write rows after the manifest's (cutting off any bytes an interrupted append left); returns rows written."""
    data, keys, _ = _paths(folder, manifest.dtype)
    row_bytes = manifest.dim * np.dtype(manifest.dtype).itemsize
    return _write_at(data, keys, manifest.rows, row_bytes, vectors.astype(manifest.dtype), shas)


def _write_at(data: Path, keys: Path, row: int, row_bytes: int, vectors: np.ndarray, shas: list) -> int:
    key_block = np.array([s.encode("ascii") for s in shas], dtype=f"S{KEY_BYTES}")
    for path, offset, payload in ((data, row * row_bytes, vectors), (keys, row * KEY_BYTES, key_block)):
        with open(path, "r+b" if path.exists() else "w+b") as fh:
            fh.truncate(offset)
            fh.seek(offset)
            fh.write(np.ascontiguousarray(payload).tobytes())
            fh.flush()
            os.fsync(fh.fileno())
    return len(shas)


def _append_from_store(store: Store, folder: Path, manifest: Manifest, count: int, digest: str) -> Manifest:
    for vectors, shas in _store_batches(store, manifest.fingerprint, manifest.rows, count):
        _check_dim(manifest.fingerprint, manifest.dim, vectors)
        _append_rows(folder, manifest, vectors, shas)
        manifest = Manifest(**{**asdict(manifest), "rows": manifest.rows + len(shas)})
    manifest = Manifest(**{**asdict(manifest), "rows": count, "listing_digest": digest})
    _write_manifest(folder, manifest)
    return manifest


def _check_dim(fingerprint: str, dim: int, vectors: np.ndarray) -> None:
    if vectors.shape[1] != dim:
        raise PedclipError(
            f"model {fingerprint} has vectors of dimension {vectors.shape[1]} and {dim} in the store; "
            "the store is damaged: run `pedclip store check`"
        )


def _rebuild_from_store(
    store: Store, fingerprint: str, folder: Path, config: MatrixConfig, count: int, digest: str
) -> Manifest:
    """Write the whole matrix from DuckDB into new files, then rename them over the old ones."""
    stage = folder / f".rebuild.{os.getpid()}"
    stage.mkdir(parents=True, exist_ok=True)
    data, keys, _ = _paths(stage, config.dtype)
    written, dim = 0, None
    for vectors, shas in _store_batches(store, fingerprint, 0, count):
        dim = dim or vectors.shape[1]
        _check_dim(fingerprint, dim, vectors)
        row_bytes = dim * np.dtype(config.dtype).itemsize
        written += _write_at(data, keys, written, row_bytes, vectors.astype(config.dtype), shas)
    for old in folder.glob("vectors.*"):
        old.unlink()
    os.replace(data, _paths(folder, config.dtype)[0])
    os.replace(keys, folder / "keys")
    stage.rmdir()
    manifest = Manifest(fingerprint, int(dim), config.dtype, count, digest, _duckdb_version())
    _write_manifest(folder, manifest)
    return manifest


def content_hashes(store: Store, fingerprint: str, matrix: VectorMatrix) -> tuple[str, str]:
    """(sha256 of the matrix's rows and keys, sha256 of DuckDB's vectors and shas in row order, cast to the
    matrix's dtype): equal when the matrix holds exactly the store's vectors. Reads every vector: for checks."""
    mine, theirs = hashlib.sha256(), hashlib.sha256()
    start = 0
    for vectors, shas in _store_batches(store, fingerprint, 0, matrix.rows):
        stop = start + len(shas)
        theirs.update(np.ascontiguousarray(vectors.astype(matrix.vectors.dtype)).tobytes())
        theirs.update("".join(shas).encode("ascii"))
        mine.update(np.ascontiguousarray(matrix.vectors[start:stop]).tobytes())
        mine.update(matrix.keys[start:stop].tobytes())
        start = stop
    return mine.hexdigest(), theirs.hexdigest()
