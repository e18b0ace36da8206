"""Store tables out to Parquet for other tools, streamed in record batches (never the whole table in RAM).

Runs, per-case predictions (with their run's model and kind) and image embeddings (with case ids, labels,
splits and patients), each optionally narrowed to one model spec and one dataset.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq

from pedclip.errors import PedclipError
from pedclip.store.db import Store

BATCH_ROWS = 16_384
_QUERIES = {
    "runs": ("SELECT * FROM runs r", "r.model", "r.eval_dataset", "r.created, r.run_id"),
    "predictions": (
        "SELECT p.*, r.kind, r.protocol, r.model, r.fingerprint FROM predictions p JOIN runs r USING (run_id)",
        "r.model",
        "p.dataset",
        "p.run_id, p.dataset, p.case_id",
    ),
    "embeddings": (
        """SELECT c.dataset, c.case_id, c.label, c.split, c.patient_id, c.image_sha256, m.spec AS model,
                  e.fingerprint, e.vector
           FROM cases c JOIN image_embeddings e ON e.image_sha256 = c.image_sha256
           JOIN models m ON m.fingerprint = e.fingerprint""",
        "m.spec",
        "c.dataset",
        "m.spec, e.fingerprint, c.dataset, c.case_id",
    ),
}
EXPORTS = tuple(_QUERIES)


def export_query(what: str, model: str | None, dataset: str | None) -> tuple[str, list]:
    """The SQL and parameters of an export."""
    if what not in _QUERIES:
        raise PedclipError(f"cannot export {what!r}; choose one of {', '.join(EXPORTS)}")
    select, model_col, dataset_col, order = _QUERIES[what]
    where, params = [], []
    for column, value in ((model_col, model), (dataset_col, dataset)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    return select + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {order}", params


def export_parquet(
    store: Store, what: str, out: str | Path, model: str | None = None, dataset: str | None = None
) -> int:
    """Write `what` (runs | predictions | embeddings) to `out` batch by batch; the number of rows written.
    The file appears whole or not at all (written to a temporary name, then renamed)."""
    query, params = export_query(what, model, dataset)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    rows = 0
    try:
        with store.read() as con:
            reader = con.sql(query, params=params).to_arrow_reader(BATCH_ROWS)
            with pq.ParquetWriter(tmp, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
                    rows += batch.num_rows
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return rows
