"""Seeded fault injection: `ingest`, `embed`, `finetune` and a saving `rescore` are SIGKILLed at several points.

After each kill and after each rerun the store passes `store check`, holds nothing twice and keeps what was
committed; the final store equals the store of the same commands run without interruption.

Kill points are chosen by a seeded RNG: a committed-progress target (embedded images, epoch rows) where the
command shows progress in the store, else a fraction of the uninterrupted command's measured duration.
Commands run in processes forked from a preloaded forkserver, so that each costs a fork, not an import of
torch and open_clip, and each dies as a real process does (SIGKILL: no handler, no cleanup).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from pedclip.store import Store
from pedclip.store.check import check_store
from tests.train.conftest import draw

SEED = 11
MODEL = "openclip:pedclip-tiny"
LAYOUT = {"train": 8, "val": 4, "test": 4}  # images per split, half pneumonia
EPOCHS = 2
COMMANDS = {
    "ingest": lambda src: ["data", "ingest", str(src), "--name", "ds", "--workers", "0"],
    "embed": lambda _: ["embed", "--model", MODEL, "--dataset", "ds", "--batch-size", "2", "--chunk-size", "2",
                        "--workers", "0"],
    "finetune": lambda _: ["finetune", "--model", MODEL, "--dataset", "ds", "--epochs", str(EPOCHS),
                           "--batch-size", "4", "--lr", "3e-4", "--patience", "10", "--device", "cpu",
                           "--workers", "0"],
    "rescore": lambda _: ["rescore", "--model", MODEL, "--dataset", "ds", "--prompt", "normal=clear lungs",
                          "--prompt", "pneumonia=lobar consolidation", "--resamples", "0", "--save"],
}  # fmt: skip
TIMEOUT_S = 300


def _run_cli(argv: list[str], log: str) -> None:
    """The child: the real `pedclip` entry point, its output in `log`."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from pedclip.cli import main

    os._exit(main(argv))


@pytest.fixture(scope="module")
def forkserver():
    context = multiprocessing.get_context("forkserver")
    modules = ("cli.data", "cli.embed", "cli.evaluate", "cli.train", "cli.store", "data.ingest", "embed.pipeline",
               "models.openclip", "train.finetune", "train.evaluate", "eval.rescore", "store.check_files")  # fmt: skip
    context.set_forkserver_preload(["torch", "open_clip", *(f"pedclip.{m}" for m in modules)])
    warm = context.Process(target=_noop)  # starts the server: later timings are the commands' own
    warm.start()
    warm.join(TIMEOUT_S)
    yield context
    from multiprocessing import forkserver as server

    server._forkserver._stop()  # the server exits and is reaped now, not when pytest exits


def _noop() -> None:
    pass


def start(context, home: Path, command: str, source: Path, log: Path):
    process = context.Process(
        target=_run_cli, args=(["--home", str(home), *COMMANDS[command](source)], str(log))
    )
    process.start()
    return process


def finish(process, log: Path) -> None:
    process.join(TIMEOUT_S)
    assert process.exitcode == 0, log.read_text()[-2000:]


def write_source(root: Path) -> Path:
    """A Kermany-layout folder ({split}/{NORMAL,PNEUMONIA}) of distinct learnable images."""
    seeds = iter(range(SEED * 1000, SEED * 1000 + sum(LAYOUT.values())))
    for split, n in LAYOUT.items():
        for i in range(n):
            label = i % 2
            folder = root / split / ("PNEUMONIA" if label else "NORMAL")
            folder.mkdir(parents=True, exist_ok=True)
            draw(seed=next(seeds), label=label).save(folder / f"{split}-{i:02d}.png")
    return root


def progress_of(store: Store, command: str) -> int:
    """What the command has committed so far: cases, vectors of the dataset, epoch rows, saved runs."""
    queries = {
        "ingest": "SELECT count(*) FROM cases",
        "embed": "SELECT count(*) FROM image_embeddings",
        "finetune": "SELECT count(*) FROM epochs",
        "rescore": "SELECT count(*) FROM runs WHERE kind = 'rescore'",
    }
    if not store.paths.db.exists():
        return 0
    with store.read() as con:
        return int(con.execute(queries[command]).fetchone()[0])


def finished(store: Store, command: str) -> bool:
    """Whether a command that makes a run has saved it as done: rerunning it would rightly make another run
    (a rerun of `ingest` or `embed` after they finished only confirms they are idempotent)."""
    kinds = {"finetune": "finetune", "rescore": "rescore"}
    if command not in kinds:
        return False
    with store.read() as con:
        query = "SELECT count(*) FROM runs WHERE kind = ? AND status = 'done'"
        return con.execute(query, [kinds[command]]).fetchone()[0] > 0


def kill_when(process, store: Store, command: str, target: int | None, delay_s: float) -> bool:
    """SIGKILL `delay_s` after `target` units are committed (polling the store), or after `delay_s`;
    whether the process was still running (else it had finished first)."""
    deadline = time.monotonic() + TIMEOUT_S
    if target is not None:
        while process.is_alive() and progress_of(store, command) < target and time.monotonic() < deadline:
            time.sleep(0.05)
    process.join(delay_s)
    alive = process.is_alive()
    if alive:
        os.kill(process.pid, signal.SIGKILL)
    process.join(30)
    return alive


def snapshot(store: Store) -> dict:
    """The store's content that a rerun must keep, keyed so that duplicates and losses show."""
    with store.read() as con:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        vectors = q("SELECT fingerprint, image_sha256, vector FROM image_embeddings")
        return {
            "cases": sorted(q("SELECT dataset, case_id, image_sha256, label, split FROM cases")),
            "vectors": {(f, s): np.asarray(v) for f, s, v in vectors},
            "vector_rows": len(vectors),
            "texts": sorted(q("SELECT fingerprint, text FROM text_embeddings")),
            "epochs": {
                (r, e): _timeless(json.loads(m)) for r, e, m in q("SELECT run_id, epoch, metrics FROM epochs")
            },
            "runs": sorted(q("SELECT kind, status FROM runs")),
            "predictions": sorted(
                q("SELECT r.kind, p.case_id, round(p.score, 5) FROM predictions p JOIN runs r USING (run_id)")
            ),
        }


def _timeless(metrics: dict) -> dict:
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in metrics.items() if k != "seconds"}


def assert_consistent(store: Store, before: dict | None) -> dict:
    """`store check` passes (a killed writer's temporary files are the only finding, and `--repair` removes
    them); nothing is held twice; everything committed before the kill is still there, unchanged."""
    report = check_store(store)
    assert {f.check for f in report.problems} <= {"orphaned-temp-files"}, [f.line() for f in report.problems]
    assert check_store(store, repair=True).ok
    now = snapshot(store)
    assert now["vector_rows"] == len(now["vectors"])
    if before is not None:
        assert set(before["cases"]) <= set(now["cases"])
        for key, vector in before["vectors"].items():
            np.testing.assert_array_equal(now["vectors"][key], vector)
        for key, metrics in before["epochs"].items():
            assert now["epochs"][key] == metrics, key
    return now


def comparable(state: dict) -> dict:
    """A snapshot without what differs between two stores by construction (run ids, the fine-tuned model's
    fingerprint, which names its run)."""
    epochs = sorted(tuple(sorted(m.items())) + (e,) for (_, e), m in state["epochs"].items())
    return {
        "cases": state["cases"],
        "vectors": sorted((s, tuple(np.round(v, 5))) for (_, s), v in state["vectors"].items()),
        "texts": sorted({t for _, t in state["texts"]}),
        "epochs": epochs,
        "runs": state["runs"],
        "predictions": state["predictions"],
    }


@pytest.mark.slow
# ~60 CPU-seconds: under a minute on a quiet 2-core machine, 10-15 minutes of wall on one shared 15 ways
@pytest.mark.timeout(1200)
def test_commands_killed_at_seeded_points_resume_to_the_uninterrupted_result(forkserver, tmp_path) -> None:
    source = write_source(tmp_path / "src")
    reference = Store.open(tmp_path / "ref")
    durations = {}
    for command in COMMANDS:  # the uninterrupted run, timed: the scale for time-based kill points
        started = time.monotonic()
        finish(
            start(forkserver, reference.paths.home, command, source, tmp_path / "ref.log"),
            tmp_path / "ref.log",
        )
        durations[command] = time.monotonic() - started

    rng = np.random.default_rng(SEED)
    store = Store.open(tmp_path / "home")
    state, killed = None, []
    for command, reference_units in [
        ("ingest", None),
        ("embed", sum(LAYOUT.values())),
        ("finetune", EPOCHS),
        ("rescore", None),
    ]:
        kills = 1 if command == "rescore" else 2
        for _ in range(kills):
            if finished(store, command):  # the last kill came after the command's final commit
                break
            log = tmp_path / f"{command}.log"
            process = start(forkserver, store.paths.home, command, source, log)
            if reference_units is None:
                target, delay = None, float(rng.uniform(0.2, 0.9)) * durations[command]
            else:  # a seeded amount of committed progress beyond what is there, then part of one unit's time
                done = progress_of(store, command)
                target = done + int(rng.integers(1, max(2, reference_units - done)))
                delay = float(rng.uniform(0, 0.5)) * durations[command] / reference_units
            killed.append(kill_when(process, store, command, target, delay))
            state = assert_consistent(store, state)
        if not finished(store, command):  # the rerun a user makes after a kill
            log = tmp_path / f"{command}.log"
            finish(start(forkserver, store.paths.home, command, source, log), log)
            state = assert_consistent(store, state)

    assert sum(killed) >= 3, f"too few kills landed while a command ran: {killed}"
    assert not [r for r in state["runs"] if r[1] == "running"]
    assert [r for r in state["runs"] if r[0] == "finetune"] == [("finetune", "done")], (
        "continued, not restarted"
    )
    assert comparable(state) == comparable(snapshot(reference))
