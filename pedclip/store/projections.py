"""2-D maps of a model's image vectors, kept so a map is computed once per (model, datasets, method) and
served from the store after; a map of another embedded state (new vectors, a re-split) replaces it."""

from __future__ import annotations

import pandas as pd

from pedclip.store.db import Store, dumps

COLUMNS = ["dataset", "case_id", "x", "y"]


def stored_projection(store: Store, fingerprint: str, datasets: str, method: str, selection: str):
    """The stored map's rows (dataset, case_id, x, y), or None when none matches this selection."""
    with store.read() as con:
        frame = con.execute(
            """SELECT dataset, case_id, x, y FROM projections
               WHERE fingerprint = ? AND datasets = ? AND method = ? AND selection = ?""",
            [fingerprint, datasets, method, selection],
        ).df()
    return frame if len(frame) else None


def put_projection(
    store: Store,
    fingerprint: str,
    datasets: str,
    method: str,
    selection: str,
    params: dict,
    coords: pd.DataFrame,
) -> None:
    """Replace the map of (fingerprint, datasets, method) with `coords` (dataset, case_id, x, y)."""
    rows = coords[COLUMNS].assign(
        fingerprint=fingerprint, datasets=datasets, method=method, selection=selection, params=dumps(params)
    )
    with store.write() as con:
        con.execute(
            "DELETE FROM projections WHERE fingerprint = ? AND datasets = ? AND method = ?",
            [fingerprint, datasets, method],
        )
        con.register("new_map", rows)
        con.execute(
            """INSERT INTO projections (fingerprint, datasets, method, selection, params, dataset, case_id, x, y)
               SELECT fingerprint, datasets, method, selection, params, dataset, case_id, x, y FROM new_map"""
        )
        con.unregister("new_map")
