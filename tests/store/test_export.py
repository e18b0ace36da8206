"""Parquet exports read back equal to what the store holds, filtered by model and dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pedclip.cli import main
from pedclip.errors import PedclipError
from pedclip.store import export as store_export
from pedclip.store.embeddings import case_vectors
from pedclip.store.export import export_parquet
from pedclip.store.runs import save_run
from tests.eval.conftest import add_dataset, unit


@pytest.fixture
def filled(store):
    rng = np.random.default_rng(1)
    add_dataset(store, "a", "fp-a", unit(rng.normal(size=8)), n=30, seed=1)
    add_dataset(store, "b", "fp-a", unit(rng.normal(size=8)), n=20, seed=2)
    frame, _ = case_vectors(store, "fp-a", "a", ["test"])
    preds = pd.DataFrame({"dataset": "a", "case_id": frame["case_id"], "score": 0.5, "predicted": 1,
                          "label": frame["label"].astype(int)})  # fmt: skip
    save_run(store, {"run_id": "zeroshot-x", "kind": "zeroshot", "protocol": "sound", "model": "test",
                     "fingerprint": "fp-a", "eval_dataset": "a", "split": "test", "config": {}}, preds)  # fmt: skip
    return store


def test_embeddings_export_round_trips_in_batches(filled, tmp_path, monkeypatch):
    monkeypatch.setattr(store_export, "BATCH_ROWS", 7)  # several batches
    out = tmp_path / "emb.parquet"
    assert export_parquet(filled, "embeddings", out, dataset="a") == 30
    table = pq.read_table(out).to_pandas()
    frame, vectors = case_vectors(filled, "fp-a", "a")
    assert table["case_id"].tolist() == frame["case_id"].tolist()
    assert np.allclose(np.stack(table["vector"].to_numpy()), vectors)
    assert table["label"].tolist() == frame["label"].tolist() and set(table["model"]) == {"test"}
    assert export_parquet(filled, "embeddings", out) == 50
    assert export_parquet(filled, "embeddings", out, model="nobody") == 0 and pq.read_table(out).num_rows == 0


def test_runs_and_predictions_export(filled, tmp_path):
    assert export_parquet(filled, "runs", tmp_path / "r.parquet") == 1
    n = export_parquet(filled, "predictions", tmp_path / "p.parquet", model="test", dataset="a")
    table = pq.read_table(tmp_path / "p.parquet").to_pandas()
    assert n == len(table) > 0 and {"case_id", "score", "predicted", "label", "model", "kind"} <= set(table)
    with pytest.raises(PedclipError, match="cannot export 'cases'"):
        export_parquet(filled, "cases", tmp_path / "c.parquet")


def test_cli_export(filled, home, tmp_path, capsys):
    out = tmp_path / "p.parquet"
    assert main(["--home", str(home), "export", "predictions", "--out", str(out)]) == 0
    assert "rows written" in capsys.readouterr().out and pq.read_table(out).num_rows > 0
    assert main(["--home", str(home), "export", "embeddings", "--out", str(tmp_path / "x.csv")]) == 1
    assert "should name a .parquet file" in capsys.readouterr().err
