"""The store: schema, migrations, short-lived connections shared between processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import duckdb
import numpy as np
import pytest

from pedclip.errors import PedclipError
from pedclip.store import Store
from pedclip.store.cases import CaseRow, case_uid, cases_frame, get_dataset, replace_cases, upsert_dataset
from pedclip.store.embeddings import case_vectors, missing_images, put_image_embeddings, register_model
from pedclip.store.runs import get_run, new_run_id, predictions_frame, runs_frame, save_run
from pedclip.store.schema import SCHEMA_VERSION

TABLES = {"datasets", "cases", "ingest_errors", "models", "image_embeddings", "text_embeddings", "runs",
          "predictions", "epochs", "schema_version"}  # fmt: skip


def _case(case_id: str, sha: str, label: int = 0, **kw) -> CaseRow:
    return CaseRow(case_id=case_id, path=f"/x/{case_id}", image_sha256=sha, width=4, height=4, mode="L",
                   label=label, **kw)  # fmt: skip


def test_new_store_has_every_table_at_the_current_version(store: Store) -> None:
    with store.read() as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert tables >= TABLES
    assert store.schema_version() == SCHEMA_VERSION


def test_migrate_twice_is_a_no_op(store: Store) -> None:
    store.migrate()
    with store.read() as con:
        assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == SCHEMA_VERSION


def test_newer_schema_is_refused(store: Store) -> None:
    with store.write() as con:
        con.execute("INSERT INTO schema_version (version) VALUES (?)", [SCHEMA_VERSION + 5])
    with pytest.raises(PedclipError, match="newer than this pedclip"):
        store.migrate()


def test_opening_a_missing_store_without_create_names_the_fix(home) -> None:
    with pytest.raises(PedclipError, match="pedclip demo"):
        Store.open(home / "nowhere", create=False)


def test_replace_cases_reports_added_updated_unchanged_removed(store: Store) -> None:
    upsert_dataset(store, "d", "csv", "/x", ["normal", "pneumonia"])
    first = replace_cases(store, "d", [_case("a", "1"), _case("b", "2"), _case("c", "3")])
    assert (first.added, first.updated, first.unchanged, first.removed) == (3, 0, 0, 0)
    again = replace_cases(store, "d", [_case("a", "1"), _case("b", "2"), _case("c", "3")])
    assert (again.added, again.updated, again.unchanged, again.removed) == (0, 0, 3, 0)
    changed = replace_cases(store, "d", [_case("a", "1"), _case("b", "9", label=1), _case("d", "4")])
    assert (changed.added, changed.updated, changed.unchanged, changed.removed) == (1, 1, 1, 1)
    frame = cases_frame(store, "d")
    assert list(frame["case_id"]) == ["a", "b", "d"]
    assert frame.set_index("case_id").loc["b", "label"] == 1
    assert frame.set_index("case_id").loc["a", "uid"] == case_uid("d", "a")


def test_user_text_is_never_sql(store: Store) -> None:
    name = "x'); DROP TABLE cases; --"
    upsert_dataset(store, name, "csv", "/x", ["normal", "pneumonia"])
    replace_cases(store, name, [_case("a'--", "1")])
    assert get_dataset(store, name)["name"] == name
    assert list(cases_frame(store, name)["case_id"]) == ["a'--"]


def test_unknown_dataset_lists_the_known_ones(store: Store) -> None:
    upsert_dataset(store, "peds", "csv", "/x", ["normal", "pneumonia"])
    with pytest.raises(PedclipError, match="known datasets: peds"):
        get_dataset(store, "nope")


def test_case_uids_are_stable_and_distinct() -> None:
    uids = {case_uid("d", f"case{i}") for i in range(10_000)}
    assert len(uids) == 10_000
    assert case_uid("d", "a") == case_uid("d", "a") != case_uid("e", "a")
    assert all(0 <= u < 2**63 for u in uids)


def test_vectors_round_trip_in_case_order(store: Store) -> None:
    upsert_dataset(store, "d", "csv", "/x", ["normal", "pneumonia"])
    replace_cases(
        store, "d", [_case("b", "sb", split="test"), _case("a", "sa", split="train"), _case("c", "sa")]
    )
    register_model(
        store, {"fingerprint": "fp", "spec": "t", "family": "t", "dim": 3, "preprocess": {}, "dtype": "fp32"}
    )
    vectors = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert missing_images(store, "fp", ["sa", "sb", "sa"]) == ["sa", "sb"]
    put_image_embeddings(store, "fp", ["sa", "sb"], vectors)
    put_image_embeddings(store, "fp", ["sa"], vectors[:1] + 100)  # already present: ignored
    assert missing_images(store, "fp", ["sa", "sb"]) == []
    frame, matrix = case_vectors(store, "fp", "d")
    assert list(frame["case_id"]) == ["a", "b", "c"]  # c shares a's image
    np.testing.assert_array_equal(matrix, vectors[[0, 1, 0]])
    test_frame, test_matrix = case_vectors(store, "fp", "d", splits=["test"])
    assert list(test_frame["case_id"]) == ["b"]
    np.testing.assert_array_equal(test_matrix, vectors[[1]])


def test_a_typed_name_replaces_a_checkpoint_path_as_a_models_spec(store: Store) -> None:
    from pedclip.store.embeddings import models_frame

    def register(spec: str) -> list[str]:
        register_model(store, {"fingerprint": "fp", "spec": spec, "family": "t", "dim": 3, "dtype": "fp32"})
        return models_frame(store)["spec"].tolist()

    assert register("local:/h/checkpoints/finetune-x") == ["local:/h/checkpoints/finetune-x"]
    assert register("demo:clip") == ["demo:clip"]  # the same weights, saved as demo:clip
    assert register("local:/h/checkpoints/demo-clip") == ["demo:clip"]  # a path never replaces a name
    assert register("openclip:other") == ["demo:clip"]  # the first name stays


def test_runs_and_predictions_round_trip(store: Store) -> None:
    import pandas as pd

    run_id = new_run_id("zeroshot")
    preds = pd.DataFrame({"dataset": ["d", "d"], "case_id": ["a", "b"], "score": [0.2, 0.9],
                          "predicted": [0, 1], "label": [0, 1]})  # fmt: skip
    save_run(store, {"run_id": run_id, "kind": "zeroshot", "protocol": "sound", "model": "m",
                     "metrics": {"auroc": 1.0}}, preds)  # fmt: skip
    assert get_run(store, run_id[:-3])["metrics"] == {"auroc": 1.0}
    assert list(predictions_frame(store, run_id)["score"]) == [0.2, 0.9]
    assert runs_frame(store)["run_id"].tolist() == [run_id]
    with pytest.raises(PedclipError, match="unknown run"):
        get_run(store, "nope")


def test_a_reader_in_another_process_waits_for_a_writer_and_never_sees_a_lock_error(store: Store) -> None:
    upsert_dataset(store, "d", "csv", "/x", ["normal", "pneumonia"])
    writer = textwrap.dedent(
        f"""
        from pedclip.store import Store
        from pedclip.store.cases import CaseRow, replace_cases
        store = Store.open({str(store.paths.home)!r})
        for i in range(30):
            rows = [CaseRow(case_id=f"c{{j}}", path="/x", image_sha256=str(j), width=1, height=1, mode="L",
                            label=0) for j in range(i + 1)]
            replace_cases(store, "d", rows)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", writer])
    seen = []
    while proc.poll() is None:
        seen.append(len(cases_frame(store, "d")))
    assert proc.wait() == 0
    assert seen == sorted(seen)  # only committed states, in order
    assert len(cases_frame(store, "d")) == 30


def test_failed_write_rolls_back(store: Store) -> None:
    upsert_dataset(store, "d", "csv", "/x", ["normal", "pneumonia"])
    with pytest.raises(duckdb.Error), store.write() as con:
        con.execute("DELETE FROM datasets")
        con.execute("SELECT * FROM no_such_table")
    assert get_dataset(store, "d")["name"] == "d"


def test_migration_2_gives_old_top1_rows_p_positive_back(home) -> None:
    import duckdb

    from pedclip.store.db import Paths
    from pedclip.store.schema import MIGRATIONS

    paths = Paths.at(home)
    paths.db.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(paths.db))  # a store as version 1 wrote it: top-1 scores for a paper CLIP run
    for statement in MIGRATIONS[0]:
        con.execute(statement)
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied TIMESTAMP)")
    con.execute("INSERT INTO schema_version VALUES (1, NULL)")
    con.execute("""INSERT INTO runs (run_id, kind, protocol, model, config) VALUES
        ('paper-run', 'zeroshot', 'paper', 'm', '{"score": "top1_probability"}'),
        ('sound-run', 'zeroshot', 'sound', 'm', '{"score": "p_positive"}')""")
    p_positive = [0.9, 0.2, 0.6, 0.45]
    for i, p in enumerate(p_positive):
        con.execute(
            "INSERT INTO predictions VALUES ('paper-run', 'd', ?, ?, ?, 1)",
            [f"c{i}", max(p, 1 - p), int(p >= 0.5)],
        )
        con.execute(
            "INSERT INTO predictions VALUES ('sound-run', 'd', ?, ?, ?, 1)", [f"c{i}", p, int(p >= 0.5)]
        )
    con.close()
    store = Store.open(home)
    with store.read() as read:
        rows = read.execute(
            "SELECT run_id, score, auc_score FROM predictions ORDER BY run_id, case_id"
        ).fetchall()
    paper, sound = rows[:4], rows[4:]
    assert [r[1] for r in paper] == pytest.approx(p_positive)
    assert [r[2] for r in paper] == pytest.approx([max(p, 1 - p) for p in p_positive])
    assert [r[1] for r in sound] == pytest.approx(p_positive) and all(r[2] is None for r in sound)


def test_migration_5_keys_old_cases_and_matrix_rows_and_scoring_joins_on_the_key(home) -> None:
    import duckdb

    from pedclip.store.db import Paths
    from pedclip.store.embeddings import case_rows
    from pedclip.store.schema import MIGRATIONS

    paths = Paths.at(home)
    paths.db.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(paths.db))  # a store as version 4 wrote it: no integer image keys
    for migration in MIGRATIONS[:4]:
        for statement in migration:
            con.execute(statement)
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied TIMESTAMP)")
    con.execute("INSERT INTO schema_version VALUES (4, NULL)")
    for case_id, sha in (("a", "sha-1"), ("b", "sha-2"), ("c", "sha-1"), ("d", "sha-3")):
        con.execute(
            "INSERT INTO cases (dataset, case_id, uid, path, image_sha256, width, height, mode, split) "
            "VALUES ('d', ?, ?, '/x', ?, 4, 4, 'L', 'test')",
            [case_id, case_uid("d", case_id), sha],
        )
    con.executemany("INSERT INTO vector_rows VALUES ('fp', ?, ?)", [["sha-2", 0], ["sha-1", 1]])
    con.close()
    store = Store.open(home)
    with store.read() as read:
        unkeyed = read.execute(
            "SELECT (SELECT count(*) FROM cases WHERE image_key IS DISTINCT FROM md5_number(image_sha256))"
            " + (SELECT count(*) FROM vector_rows WHERE image_key IS DISTINCT FROM md5_number(image_sha256))"
        ).fetchone()[0]
    assert (store.schema_version(), unkeyed) == (SCHEMA_VERSION, 0)
    frame = case_rows(store, "fp", "d", columns=("case_id", "image_sha256"))
    assert frame.values.tolist() == [["a", "sha-1", 1], ["b", "sha-2", 0], ["c", "sha-1", 1]]  # d: no vector
    assert "image_key" not in cases_frame(store, "d")  # an internal column: frames users see never show it


def _other_process_reads(store: Store, wait_s: float) -> subprocess.CompletedProcess:
    """Another process counting the datasets, giving up on the file lock after `wait_s`."""
    code = textwrap.dedent(
        f"""
        from pedclip.config import Paths
        from pedclip.store import Store
        store = Store(Paths.at({str(store.paths.home)!r}), lock_wait_s={wait_s})
        with store.read() as con:
            print(con.execute("SELECT count(*) FROM datasets").fetchone()[0])
        """
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_holding_the_store_opens_the_file_once_for_every_read_and_write(store: Store, monkeypatch) -> None:
    opened = []
    real_connect = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: opened.append(a) or real_connect(*a, **k))
    with store.hold():
        for i in range(5):
            upsert_dataset(store, f"d{i}", "csv", "/x", ["normal", "pneumonia"])
            assert get_dataset(store, f"d{i}")["name"] == f"d{i}"
        with pytest.raises(duckdb.Error), store.write() as con:  # a failed write still rolls back
            con.execute("DELETE FROM datasets")
            con.execute("SELECT * FROM no_such_table")
        with Store(store.paths).hold():  # another Store of the same file, nested: the same connection
            assert len(cases_frame(store, "d0")) == 0
    assert len(opened) == 1
    with store.read() as con:  # committed, and the file is free again: a new connection
        assert con.execute("SELECT count(*) FROM datasets").fetchone()[0] == 5
    assert len(opened) == 2


def test_a_held_store_is_closed_to_other_processes_until_released(store: Store) -> None:
    from pedclip.store.db import released

    upsert_dataset(store, "d", "csv", "/x", ["normal", "pneumonia"])
    with store.hold():
        locked_out = _other_process_reads(store, wait_s=0.5)
        with released(store.paths.db):
            let_in = _other_process_reads(store, wait_s=0.5)
        upsert_dataset(store, "e", "csv", "/x", ["normal", "pneumonia"])  # held again after the release
    assert locked_out.returncode != 0 and "lock" in locked_out.stderr.lower()
    assert let_in.returncode == 0 and let_in.stdout.strip() == "1"
    assert _other_process_reads(store, wait_s=0.5).stdout.strip() == "2"


def test_reading_opens_one_connection_for_this_threads_reads_only(store: Store, monkeypatch) -> None:
    import threading

    upsert_dataset(store, "d", "csv", "/x", ["normal", "pneumonia"])
    opened = []
    real_connect = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: opened.append(k) or real_connect(*a, **k))
    elsewhere = []
    with store.reading():
        for _ in range(5):
            assert get_dataset(store, "d")["name"] == "d"
        with store.reading():  # nested: the same connection
            assert len(cases_frame(store, "d")) == 0
        assert len(opened) == 1 and opened[0]["read_only"]
        # another thread reads through its own connection, and is not refused a write
        worker = threading.Thread(
            target=lambda: elsewhere.append(get_dataset(Store(store.paths), "d")["name"])
        )
        worker.start()
        worker.join()
        with pytest.raises(RuntimeError, match="inside Store.reading"):
            upsert_dataset(store, "e", "csv", "/x", ["normal", "pneumonia"])
    assert elsewhere == ["d"] and len(opened) == 2
    upsert_dataset(store, "e", "csv", "/x", ["normal", "pneumonia"])  # after the block: writes as before
    assert get_dataset(store, "e")["name"] == "e"
