"""`pedclip store check`: a clean store passes; each planted corruption is found; `--repair` fixes the safe ones."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pedclip.cli import main
from pedclip.embed.pipeline import EmbedConfig, embed_dataset
from pedclip.store import Store
from pedclip.store.check import check_store
from pedclip.store.embeddings import case_vectors, put_image_embeddings
from pedclip.store.index import ensure_index, index_path, sidecar_path
from pedclip.store.runs import save_epoch, save_run
from tests.embed.conftest import insert_dataset, write_images

FAKE_SHA = "ab" * 32


@pytest.fixture
def filled(store: Store, tmp_path, tiny_encoder) -> Store:
    """A store with a dataset, its vectors and pixel cache, a FAISS index and a run with predictions."""
    insert_dataset(store, "ds", write_images(tmp_path / "img", 9))
    embed_dataset(store, tiny_encoder, "ds", EmbedConfig(workers=0))
    ensure_index(store, tiny_encoder.fingerprint, "ds")
    predictions = [{"dataset": "ds", "case_id": "img_0000.png", "score": 0.3, "predicted": 0, "label": 0}]
    run = {"run_id": "r1", "kind": "zeroshot", "protocol": "sound", "model": "m"}
    save_run(store, run, pd.DataFrame(predictions))
    save_epoch(store, "r1", 1, {"train_loss": 1.0})
    return store


def checks(store: Store, repair: bool = False) -> dict[str, str]:
    """check name -> severity of every finding."""
    return {f.check: f.severity for f in check_store(store, repair=repair).findings}


def test_clean_store_passes_and_the_cli_says_so(filled: Store, capsys) -> None:
    assert checks(filled) == {}
    assert main(["--home", str(filled.paths.home), "store", "check", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "problems": [], "notes": [], "repaired": []}


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def plant_safe_corruptions(store: Store, fingerprint: str) -> None:
    """One corruption of each kind that `--repair` may fix."""
    vector = np.zeros((1, 32), dtype=np.float32)
    vector[0, 0] = 1.0
    put_image_embeddings(store, "no-such-model", [FAKE_SHA], vector)  # vectors of an unknown model
    put_image_embeddings(store, fingerprint, [FAKE_SHA], vector * 0.5)  # a vector cut short
    with store.write() as con:
        con.execute(
            "INSERT INTO predictions (run_id, dataset, case_id, score, predicted, label) VALUES ('gone', 'ds', 'img_0001.png', 0.5, 1, 1)"
        )
        con.execute("INSERT INTO epochs VALUES ('gone', 1, '{}')")
    pixels = sorted(store.paths.pixels.glob("*/*/*.npy"))
    pixels[0].write_bytes(pixels[0].read_bytes()[:100])  # truncated by a full disk
    np.save(pixels[1], np.zeros((5, 5), dtype=np.uint8))  # not the shape its preprocess key says
    (pixels[2].parent / f".{pixels[2].name}.{_dead_pid()}.tmp").write_bytes(b"half")  # a killed writer's


def test_each_safe_corruption_is_found_and_repaired(filled: Store, tiny_encoder, capsys) -> None:
    plant_safe_corruptions(filled, tiny_encoder.fingerprint)
    found = checks(filled)
    assert found == dict.fromkeys(
        [
            "image-embeddings-without-model",
            "image-embeddings-not-unit",
            "predictions-without-run",
            "epochs-without-run",
            "pixel-cache-mismatch",
            "orphaned-temp-files",
        ],
        "problem",
    )
    assert main(["--home", str(filled.paths.home), "store", "check"]) == 1
    out = capsys.readouterr().out
    assert "fix: pedclip store check --repair" in out and "6 problems found" in out

    assert main(["--home", str(filled.paths.home), "store", "check", "--repair", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and {r["check"] for r in report["repaired"]} >= set(found)
    assert checks(filled) == {}
    embed_dataset(filled, tiny_encoder, "ds", EmbedConfig(workers=0))  # the dropped pixels come back
    assert checks(filled) == {}


def test_a_case_or_matrix_row_without_its_image_key_is_found_and_the_key_recomputed(
    filled: Store, tiny_encoder, capsys
) -> None:
    """Rows written around pedclip's own writers (raw SQL, another tool) lack the integer key scoring joins
    on: the case would silently drop out of every evaluation, so `store check` finds it and `--repair` fixes it."""
    fingerprint = tiny_encoder.fingerprint
    before, vectors = case_vectors(filled, fingerprint, "ds")
    with filled.write() as con:
        con.execute("UPDATE cases SET image_key = NULL WHERE case_id = ?", [before["case_id"].iloc[0]])
        con.execute(
            "UPDATE vector_rows SET image_key = 7 WHERE image_sha256 = ?", [before["image_sha256"].iloc[1]]
        )
    assert len(case_vectors(filled, fingerprint, "ds")[0]) == len(before) - 2
    # (the index over those cases is stale too: a note)
    problems = {name for name, severity in checks(filled).items() if severity == "problem"}
    assert problems == {"cases-image-key", "vector-rows-image-key"}
    assert main(["--home", str(filled.paths.home), "store", "check", "--repair"]) == 0
    assert "repaired: cases-image-key: recomputed 1" in capsys.readouterr().out
    after, again = case_vectors(filled, fingerprint, "ds")
    pd.testing.assert_frame_equal(after, before)
    np.testing.assert_array_equal(again, vectors)
    assert checks(filled) == {}


def test_faiss_index_that_no_longer_matches_its_vectors_is_found_and_removed(filled: Store, tiny_encoder):
    import faiss

    fingerprint = tiny_encoder.fingerprint
    path = index_path(filled, fingerprint, "ds")
    index = faiss.read_index(str(path))  # same ids, other vectors; the sidecar still vouches for it
    ids = faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64)
    vectors = faiss.downcast_index(faiss.downcast_index(index).index).reconstruct_n(0, index.ntotal)
    forged = faiss.IndexIDMap(faiss.IndexFlatIP(vectors.shape[1]))
    forged.add_with_ids(np.ascontiguousarray(vectors[:, ::-1]), ids)
    faiss.write_index(forged, str(path))
    sidecar = json.loads(sidecar_path(path).read_text())
    sidecar_path(path).write_text(json.dumps({**sidecar, "index_bytes": path.stat().st_size}))
    assert checks(filled) == {"faiss-index-mismatch": "problem"}
    report = check_store(filled, repair=True)
    assert report.ok and not index_path(filled, fingerprint, "ds").exists()
    assert ensure_index(filled, fingerprint, "ds").action == "built"
    assert checks(filled) == {}


def test_truncated_index_and_lone_sidecar_are_problems_and_a_lagging_index_is_a_note(
    filled: Store, tiny_encoder, tmp_path
) -> None:
    path = index_path(filled, tiny_encoder.fingerprint, "ds")
    insert_dataset(filled, "ds2", write_images(tmp_path / "img2", 3, start=50))
    embed_dataset(filled, tiny_encoder, "ds2", EmbedConfig(workers=0))
    ensure_index(filled, tiny_encoder.fingerprint, "ds2")
    insert_dataset(filled, "ds", write_images(tmp_path / "img", 12))  # three more cases: "ds" lags
    embed_dataset(filled, tiny_encoder, "ds", EmbedConfig(workers=0))
    assert checks(filled) == {"faiss-index-stale": "note"}
    assert main(["--home", str(filled.paths.home), "store", "check"]) == 0

    other = index_path(filled, tiny_encoder.fingerprint, "ds2")
    other.write_bytes(other.read_bytes()[:-8])
    path.unlink()
    assert checks(filled) == {"faiss-index-mismatch": "problem"}
    assert check_store(filled, repair=True).ok
    assert not list(filled.paths.indexes.glob("*/*"))


def test_unsafe_findings_name_their_command_and_survive_repair(filled: Store) -> None:
    with filled.write() as con:
        con.execute("DELETE FROM cases WHERE case_id = 'img_0000.png'")  # r1 predicted it
    report = check_store(filled, repair=True)
    assert [f.check for f in report.problems] == ["predictions-without-case"]
    assert "pedclip data ingest" in report.problems[0].line()
    assert not report.repaired
    with filled.read() as con:
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 1


def test_a_live_writers_temp_file_is_left_alone(filled: Store) -> None:
    import os

    (filled.paths.pixels / f".x.npy.{os.getpid()}.tmp").write_bytes(b"in flight")
    assert checks(filled) == {}


def test_resume_state_of_a_finished_or_missing_run_is_removed_and_an_unfinished_ones_kept(
    filled: Store,
) -> None:
    save_run(
        filled,
        {"run_id": "ft-live", "kind": "finetune", "protocol": "sound", "model": "m", "status": "failed"},
    )
    for run_id in ("ft-live", "r1", "ft-gone"):  # unfinished, done, no run at all
        (filled.paths.training / run_id).mkdir(parents=True)
        (filled.paths.training / run_id / "training_state.pt").write_bytes(b"state")
    assert checks(filled) == {"training-state-orphaned": "problem"}
    assert check_store(filled, repair=True).ok
    assert sorted(p.name for p in filled.paths.training.iterdir()) == ["ft-live"]
