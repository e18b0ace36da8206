"""The scanning matrix: equals DuckDB's vectors after chunked writes, crashes and foreign files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from pedclip.errors import PedclipError
from pedclip.store import Store
from pedclip.store.embeddings import matrix_from_arrow, put_image_embeddings
from pedclip.store.matrix import MatrixConfig, content_hashes, matrix_dir, open_matrix

REPO = Path(__file__).resolve().parents[2]
FP = "f" * 20
DIM = 12


def _sha(i: int) -> str:
    return f"{i:064x}"


def _vectors(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _duckdb_vectors(store: Store) -> dict[str, np.ndarray]:
    """Naive reference: every vector of the model straight from DuckDB's list column."""
    with store.read() as con:
        table = con.sql(
            "SELECT image_sha256, vector FROM image_embeddings WHERE fingerprint = ?", params=[FP]
        ).to_arrow_table()
    return dict(zip(table.column(0).to_pylist(), matrix_from_arrow(table.column(1)), strict=True))


def _assert_matrix_equals_store(store: Store) -> str:
    matrix = open_matrix(store, FP)
    mine, theirs = content_hashes(store, FP, matrix)
    assert mine == theirs
    reference = _duckdb_vectors(store)
    assert matrix.rows == len(reference)
    keys = [k.decode() for k in matrix.keys]
    np.testing.assert_array_equal(matrix.take(np.arange(matrix.rows)), np.stack([reference[k] for k in keys]))
    return matrix.action


def test_matrix_equals_duckdb_after_chunked_writes_with_repeats(store: Store) -> None:
    vectors = _vectors(250, 0)
    for start in range(0, 250, 40):  # chunks overlap by 10 rows: repeats are ignored, as in DuckDB
        stop = min(start + 50, 250)
        put_image_embeddings(store, FP, [_sha(i) for i in range(start, stop)], vectors[start:stop])
    assert _assert_matrix_equals_store(store) == "loaded"  # each commit appended: nothing left to do


def test_rows_committed_without_their_append_are_caught_up(store: Store) -> None:
    put_image_embeddings(store, FP, [_sha(i) for i in range(30)], _vectors(30, 1))
    with store.write():  # nested: committed to DuckDB, the matrix is left behind, as after a kill -9
        put_image_embeddings(store, FP, [_sha(i) for i in range(30, 60)], _vectors(30, 2))
    assert _assert_matrix_equals_store(store) == "appended"


def test_bytes_of_an_interrupted_append_are_cut_off(store: Store) -> None:
    put_image_embeddings(store, FP, [_sha(i) for i in range(20)], _vectors(20, 3))
    with open(matrix_dir(store, FP) / "vectors.float32", "ab") as fh:
        fh.write(b"\x7f" * (DIM * 4 * 3 + 5))  # half-written rows past the manifest
    with store.write():
        put_image_embeddings(store, FP, [_sha(i) for i in range(20, 25)], _vectors(5, 4))
    assert _assert_matrix_equals_store(store) == "repaired"


def test_a_matrix_from_another_store_is_rebuilt_not_trusted(home: Path) -> None:
    first, second = Store.open(home / "a"), Store.open(home / "b")
    put_image_embeddings(first, FP, [_sha(i) for i in range(10)], _vectors(10, 5))
    put_image_embeddings(second, FP, [_sha(i + 100) for i in range(10)], _vectors(10, 6))
    shutil.rmtree(matrix_dir(second, FP))
    shutil.copytree(matrix_dir(first, FP), matrix_dir(second, FP))  # same row count, other images
    assert _assert_matrix_equals_store(second) == "rebuilt"


def test_float16_matrix_is_close_and_a_dtype_change_rebuilds(store: Store) -> None:
    vectors = _vectors(40, 7)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    put_image_embeddings(store, FP, [_sha(i) for i in range(40)], vectors)
    half = open_matrix(store, FP, MatrixConfig(dtype="float16"))
    assert half.action == "rebuilt" and half.vectors.dtype == np.float16
    np.testing.assert_allclose(half.take(np.arange(40)), vectors, atol=1e-3)
    assert open_matrix(store, FP, MatrixConfig(dtype="float16")).action == "loaded"
    assert open_matrix(store, FP).action == "rebuilt"


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_rows_read_from_the_file_equal_the_mapped_rows_even_after_a_rebuild(store: Store, dtype: str) -> None:
    """Reranking reads rows with positioned reads (VectorMatrix.read_rows): any order, repeats, both dtypes,
    and from the file the matrix was opened on, even when a rebuild renames a new one into place."""
    vectors = _vectors(60, 8)
    put_image_embeddings(store, FP, [_sha(i) for i in range(60)], vectors)
    matrix = open_matrix(store, FP, MatrixConfig(dtype=dtype))
    rows = np.array([59, 3, 3, 0, 17, 58, 1])
    expected = matrix.take(rows)
    np.testing.assert_array_equal(matrix.read_rows(rows), expected)
    assert matrix.read_rows(np.array([], dtype=np.int64)).shape == (0, DIM)
    with pytest.raises(PedclipError, match="out of range"):
        matrix.read_rows(np.array([60]))
    data = matrix_dir(store, FP) / f"vectors.{dtype}"
    replacement = data.with_name("replacement")
    replacement.write_bytes(b"\x00" * data.stat().st_size)
    os.replace(replacement, data)  # as a rebuild does: another file renamed onto the name
    np.testing.assert_array_equal(matrix.read_rows(rows), expected)


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from pedclip.store import Store
    from pedclip.store.embeddings import put_image_embeddings
    store = Store.open(sys.argv[1])
    rng = np.random.default_rng(0)
    for chunk in range(10_000):
        shas = [f"{chunk * 50 + i:064x}" for i in range(50)]
        put_image_embeddings(store, sys.argv[2], shas, rng.standard_normal((50, 12)).astype(np.float32))
        print(chunk, flush=True)
    """
)


@pytest.mark.parametrize("delay_s", [0.0, 0.37])
def test_kill_9_while_writing_leaves_a_state_that_is_repaired(home: Path, delay_s: float) -> None:
    Store.open(home)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(home), FP], env=env, stdout=subprocess.PIPE, text=True
    )
    for _ in range(3):  # a few chunks committed, then killed at an arbitrary point of the next ones
        writer.stdout.readline()
    time.sleep(delay_s)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    store = Store.open(home)
    assert _assert_matrix_equals_store(store) in {"loaded", "appended", "repaired"}
    assert open_matrix(store, FP).rows >= 150


def test_an_unmigrated_store_read_without_migrating_names_the_fix(store: Store) -> None:
    from pedclip.errors import PedclipError

    put_image_embeddings(store, FP, [_sha(0)], _vectors(1, 8))
    with store.write() as con:  # as a store from before the matrix, opened by a reader that never migrates
        con.execute("DROP TABLE vector_rows")
    with pytest.raises(PedclipError, match="pedclip data list"):
        open_matrix(Store(store.paths), FP)
