"""Image and text embeddings keyed by (model fingerprint, image sha256) and (fingerprint, text)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from pedclip.store.cases import split_filter
from pedclip.store.db import Store, dumps


def register_model(store: Store, info: dict) -> None:
    """Record a model by fingerprint (idempotent). `info` holds the `models` columns.

    The same weights can arrive under a checkpoint path first and a name later (demo:clip's weights are the
    checkpoint of the run that trained them): a typed name then replaces the path as the model's spec.
    """
    columns = [
        "fingerprint",
        "spec",
        "family",
        "dim",
        "preprocess",
        "dtype",
        "weights",
        "untrained",
        "parent_fingerprint",
        "config",
    ]
    values = [info.get(c) for c in columns]
    for i in (columns.index("preprocess"), columns.index("config")):
        if not isinstance(values[i], str):
            values[i] = dumps(values[i] or {})
    values[columns.index("untrained")] = bool(values[columns.index("untrained")])
    with store.write() as con:
        con.execute(
            f"INSERT INTO models ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            "ON CONFLICT (fingerprint) DO UPDATE SET "
            "spec = CASE WHEN models.spec LIKE 'local:%' AND excluded.spec NOT LIKE 'local:%' "
            "THEN excluded.spec ELSE models.spec END, "
            # rows registered before the config carried the logit scale gain it
            "config = CASE WHEN json_extract(models.config, '$.logit_scale') IS NULL "
            "THEN excluded.config ELSE models.config END",
            values,
        )


def models_frame(store: Store) -> pd.DataFrame:
    with store.read() as con:
        return con.execute("SELECT * FROM models ORDER BY created").df()


def matrix_from_arrow(column: pa.ChunkedArray | pa.Array, dim: int | None = None) -> np.ndarray:
    """A (n, d) float32 matrix from an Arrow list column, without a Python loop over rows."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(array)
    if n == 0:
        return np.zeros((0, dim or 0), dtype=np.float32)
    flat = array.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(n, -1)


def _vectors_table(keys: Sequence[str], key_name: str, fingerprint: str, vectors: np.ndarray) -> pa.Table:
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = matrix.shape
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32))
    lists = pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1)))
    return pa.table({"fingerprint": [fingerprint] * n, key_name: list(keys), "vector": lists})


def missing_images(store: Store, fingerprint: str, shas: Sequence[str]) -> list[str]:
    """The distinct shas among `shas` that have no embedding for this fingerprint, in first-seen order."""
    with store.read() as con:
        con.register("wanted", pa.table({"image_sha256": list(dict.fromkeys(shas))}))
        present = {
            r[0]
            for r in con.execute(
                "SELECT w.image_sha256 FROM wanted w JOIN image_embeddings e "
                "ON e.image_sha256 = w.image_sha256 AND e.fingerprint = ?",
                [fingerprint],
            ).fetchall()
        }
    return [s for s in dict.fromkeys(shas) if s not in present]


def put_image_embeddings(store: Store, fingerprint: str, shas: Sequence[str], vectors: np.ndarray) -> None:
    """Store vectors for images in one transaction; rows already present are left as they are.

    The same transaction gives each new vector the next row of the model's scanning matrix; after the
    commit the matrix is appended (a crash in between is caught up by the next `open_matrix`).
    """
    from pedclip.store.matrix import append_committed, listing_digest

    nested = store.in_transaction
    with store.write() as con:
        table = _vectors_table(shas, "image_sha256", fingerprint, vectors)
        con.register("incoming", table.append_column("ord", pa.array(np.arange(len(shas), dtype=np.int64))))
        con.execute(
            "INSERT OR IGNORE INTO image_embeddings SELECT fingerprint, image_sha256, vector FROM incoming"
        )
        start = con.execute(
            "SELECT coalesce(max(row_index) + 1, 0) FROM vector_rows WHERE fingerprint = ?", [fingerprint]
        ).fetchone()[0]
        new = con.execute(
            """INSERT INTO vector_rows (fingerprint, image_sha256, row_index, image_key)
               SELECT ?, i.image_sha256, ? + row_number() OVER (ORDER BY i.ord) - 1, md5_number(i.image_sha256)
               FROM (SELECT image_sha256, min(ord) AS ord FROM incoming GROUP BY image_sha256) i
               ANTI JOIN (SELECT image_sha256 FROM vector_rows WHERE fingerprint = ?) r
                 ON r.image_sha256 = i.image_sha256
               RETURNING image_sha256, row_index""",
            [fingerprint, start, fingerprint],
        ).fetchall()
        con.unregister("incoming")
        listing = listing_digest(con, fingerprint, int(start))
    if nested or not new:  # inside an outer transaction the rows may still roll back: the next reader syncs
        return
    new.sort(key=lambda r: r[1])
    position: dict[str, int] = {}
    for i, sha in enumerate(shas):
        position.setdefault(sha, i)
    new_shas = [r[0] for r in new]
    rows = vectors[[position[s] for s in new_shas]]
    append_committed(store, fingerprint, int(start), new_shas, rows, listing)


def put_text_embeddings(store: Store, fingerprint: str, texts: Sequence[str], vectors: np.ndarray) -> None:
    with store.write() as con:
        con.register("incoming", _vectors_table(texts, "text", fingerprint, vectors))
        con.execute("INSERT OR IGNORE INTO text_embeddings SELECT fingerprint, text, vector FROM incoming")
        con.unregister("incoming")


def text_vectors(store: Store, fingerprint: str, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Cached vectors for whichever of `texts` are cached."""
    with store.read() as con:
        con.register("wanted", pa.table({"text": list(dict.fromkeys(texts))}))
        table = con.sql(
            "SELECT t.text, t.vector FROM text_embeddings t JOIN wanted w ON w.text = t.text "
            "WHERE t.fingerprint = ?",
            params=[fingerprint],
        ).to_arrow_table()
    matrix = matrix_from_arrow(table.column("vector"))
    return dict(zip(table.column("text").to_pylist(), matrix, strict=True))


CASE_VECTOR_COLUMNS = (
    "dataset",
    "case_id",
    "uid",
    "path",
    "member",
    "image_sha256",
    "label",
    "patient_id",
    "split",
    "attributes",
)


def case_rows(
    store: Store,
    fingerprint: str,
    dataset: str,
    splits: Sequence[str] | None = None,
    columns: Sequence[str] = CASE_VECTOR_COLUMNS,
    below_row: int | None = None,
    split_column: str = "split",
) -> pd.DataFrame:
    """Cases of a dataset with an embedding for this model (only `columns`, ordered by case_id) and the
    `row_index` of each one's vector in the model's scanning matrix; no vector is read. The frame's `split`
    is the `split_column` chosen (split as assigned, or source_split as the source gave it)."""
    condition = split_filter(split_column, "c.")  # also checks the column name before it enters the SQL
    selected = ", ".join(f"c.{split_column} AS split" if c == "split" else f"c.{c}" for c in columns)
    query = f"""SELECT {selected}, r.row_index
               FROM cases c JOIN vector_rows r
                 ON r.image_key = c.image_key AND r.fingerprint = ?
               WHERE c.dataset = ?{condition if splits else ""}"""
    params: list = [fingerprint, dataset]
    if splits:
        params.append(list(splits))
    if below_row is not None:  # rows a concurrent writer committed after the matrix was opened stay out
        query += " AND r.row_index < ?"
        params.append(below_row)
    with store.read() as con:
        return con.sql(query + " ORDER BY c.case_id", params=params).to_arrow_table().to_pandas()


def case_vectors(
    store: Store,
    fingerprint: str,
    dataset: str,
    splits: Sequence[str] | None = None,
    columns: Sequence[str] = CASE_VECTOR_COLUMNS,
    split_column: str = "split",
) -> tuple[pd.DataFrame, np.ndarray]:
    """Cases of a dataset that have an embedding for this model, and their (n, d) vectors in the same order.

    Ordered by case_id; a case without an embedding is left out (the frame says which are present). The
    vectors come from the model's memory-mapped matrix (store/matrix.py), not from DuckDB's list column.
    """
    from pedclip.store.matrix import open_matrix

    # One read-only connection for both queries (outside a write, whose connection they use anyway): the
    # listing open_matrix verifies warms the blocks the case-rows join reads (1M cases: ~25 ms less).
    reading = contextlib.nullcontext() if store.in_transaction else store.reading()
    with reading:
        matrix = open_matrix(store, fingerprint)
        frame = case_rows(store, fingerprint, dataset, splits, columns, matrix.rows, split_column)
    vectors = matrix.take(frame["row_index"].to_numpy())
    return frame.drop(columns=["row_index"]), vectors


def count_embedded(store: Store, fingerprint: str, dataset: str) -> tuple[int, int]:
    """(cases with an embedding for this model, cases in the dataset)."""
    with store.read() as con:
        row = con.execute(
            """SELECT count(e.image_sha256), count(*) FROM cases c
               LEFT JOIN image_embeddings e ON e.image_sha256 = c.image_sha256 AND e.fingerprint = ?
               WHERE c.dataset = ?""",
            [fingerprint, dataset],
        ).fetchone()
    return int(row[0]), int(row[1])


def embedded_state(store: Store, fingerprint: str, dataset: str) -> tuple[int, int]:
    """(cases with an embedding for this model, a hash of their ids, splits and labels): changes whenever
    an in-memory copy of the dataset's vectors (eval's rescore cache) would be stale."""
    with store.read() as con:
        row = con.execute(
            """SELECT count(*), coalesce(sum(hash(c.case_id, c.split, c.label, c.image_sha256)), 0)
               FROM cases c JOIN image_embeddings e ON e.image_sha256 = c.image_sha256 AND e.fingerprint = ?
               WHERE c.dataset = ?""",
            [fingerprint, dataset],
        ).fetchone()
    return int(row[0]), int(row[1])
