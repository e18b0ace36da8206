"""Fine-tuning that resumes: per-epoch training state, saved atomically, and the run a rerun continues.

After every completed epoch the loop saves what the next epoch depends on: the weights training changes,
the best epoch's weights so far, the optimizer's (and scaler's, scheduler's) state, the torch RNG, the
epoch history and the early-stopping state. A rerun of `pedclip finetune` with the same arguments finds
the unfinished run (status running or failed) and continues after its last completed epoch, so a run
killed mid-epoch ends as an uninterrupted one would (same tensors on CPU, same epoch rows).

The state is kept under `Paths.training/<run_id>/`, not in the checkpoint folder, so that it can never
become part of a `local:` model's files. It is bound to the run's data and resolved config by a key: a
state made for other data is not resumed. A lock file held by the training process keeps two processes
from resuming the same run; the kernel drops it when that process dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import functools
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from pedclip.errors import DiskFullError, is_disk_full
from pedclip.store import Store
from pedclip.store.db import dumps
from pedclip.store.runs import new_run_id, runs_frame

STATE_FILE = "training_state.pt"
LOCK_FILE = "training.lock"
UNFINISHED = ("running", "failed")  # a run in either state can be continued


def state_key(resolved: dict, parent_fingerprint: str, splits) -> str:
    """What a saved state is valid for: the resolved config, the parent weights and the exact data."""
    digest = hashlib.sha256(dumps({"resolved": resolved, "parent": parent_fingerprint}).encode())
    for split in splits:
        digest.update(dumps([split.split, list(split.case_ids), split.texts]).encode())
        digest.update(split.labels.tobytes())
        digest.update(split.pixels.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Resumed:
    """What the loop continues from."""

    epoch: int  # the last completed epoch
    history: list[dict]
    best: dict | None
    stopped: str  # epochs | patience | interrupted: as the loop had decided after that epoch
    micro_batch: int | None


class TrainingState:
    """The resume state of one fine-tune run: `save` after each epoch, `restore` at the start of a rerun."""

    def __init__(self, folder: Path, key: str):
        self.folder, self.key = Path(folder), key
        self._pending: Future | None = None

    @property
    def path(self) -> Path:
        return self.folder / STATE_FILE

    def save(self, epoch: int, tensors, best_tensors, stateful: dict, result, micro_batch) -> None:
        """Snapshot now, write in the background while the next epoch trains (the write, ~0.5 s a 100 MB
        state on these CPUs, is mostly the kernel copying pages); one write at a time, an error surfacing at
        the next `save` or `wait`. Atomic (temporary name, fsync, rename): a kill leaves the previous
        epoch's state whole, and a rerun retrains at most the one epoch whose write it interrupted."""
        document = {
            "key": self.key,
            "epoch": epoch,
            "tensors": [t.detach().to("cpu", copy=True) for t in tensors],
            # the best epoch's weights; not written twice when this epoch is the best one
            "best_tensors": None if _is_best(result, epoch) else list(best_tensors),
            # the optimizer keeps updating its moments in place: the write gets copies
            "stateful": {
                name: _copied(obj.state_dict()) for name, obj in stateful.items() if obj is not None
            },
            "rng": _rng_state(),
            "history": json.dumps(result.history),
            "best": json.dumps(result.best),
            "stopped": result.stopped,
            "micro_batch": micro_batch,
        }
        self.wait()
        self._pending = _writer().submit(self._write, document)

    def wait(self) -> None:
        """Block until the last `save` is on disk; raise what its write raised."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _write(self, document: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob(f".{STATE_FILE}.*.tmp"):  # a killed writer's; this run's lock is ours
            stale.unlink(missing_ok=True)
        tmp = self.folder / f".{STATE_FILE}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as handle:
                torch.save(document, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as RuntimeError
            tmp.unlink(missing_ok=True)
            if is_disk_full(exc):
                raise DiskFullError(self.folder) from exc
            raise

    def restore(self, tensors, stateful: dict) -> tuple[Resumed, list[torch.Tensor]] | None:
        """Load the state into `tensors` and the `stateful` objects and the RNG; None when there is none
        (or it was made for other data or config). Returns what the loop continues from and the best
        epoch's tensors."""
        self.wait()
        try:
            document = torch.load(self.path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            return None
        if document.get("key") != self.key or len(document["tensors"]) != len(tensors):
            return None
        with torch.no_grad():
            for tensor, saved in zip(tensors, document["tensors"], strict=True):
                tensor.copy_(saved.to(tensor.device))
        for name, obj in stateful.items():
            if obj is not None and name in document["stateful"]:
                obj.load_state_dict(document["stateful"][name])
        _set_rng_state(document["rng"])
        resumed = Resumed(
            epoch=int(document["epoch"]),
            history=json.loads(document["history"]),
            best=json.loads(document["best"]),
            stopped=document["stopped"],
            micro_batch=document["micro_batch"],
        )
        best = document["best_tensors"]
        if best is None:  # the last saved epoch was the best
            best = [t.detach().to("cpu", copy=True) for t in tensors]
        return resumed, best

    def clear(self) -> None:
        """Remove the state once the run has its checkpoint (it is as large as the trainable weights x 4)."""
        self.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


@functools.cache
def _writer() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="pedclip-training-state")


def _copied(state: dict) -> dict:
    return copy.deepcopy(state)  # tensors cloned, so the write sees this epoch's values


def _is_best(result, epoch: int) -> bool:
    return result.best is not None and result.best.get("epoch") == epoch


def _rng_state() -> dict:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return (
        state  # numpy's and Python's global RNGs are not used by training (batch order is seeded per epoch)
    )


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def continue_from(state: TrainingState | None, tensors, stateful: dict, result, settings):
    """(first epoch to run, best-epoch snapshot, loop settings) after restoring `state` into the tensors,
    the stateful objects, the RNG and `result`; (1, None, settings) when there is nothing to continue.
    The first epoch is past the end when training had already stopped (patience, or all epochs run)."""
    restored = state.restore(tensors, stateful) if state is not None else None
    if restored is None:
        return 1, None, settings
    resumed, best = restored
    result.history, result.best, result.stopped = resumed.history, resumed.best, resumed.stopped
    saved = list(zip(tensors, best, strict=True))
    first = resumed.epoch + 1 if resumed.stopped == "epochs" else settings.epochs + 1
    return first, saved, replace(settings, step=replace(settings.step, micro_batch=resumed.micro_batch))


def _try_lock(folder: Path):
    """An open, exclusively locked lock file in `folder`, or None when another process holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_FILE, "a")  # noqa: SIM115 - held open for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def unfinished_runs(store: Store, request: dict) -> list[str]:
    """Fine-tune runs, newest first, that did not finish and were started with exactly `request`."""
    runs = runs_frame(store, kinds=["finetune"])
    wanted = json.loads(dumps(request))
    return [
        row.run_id
        for row in runs.itertuples()
        if row.status in UNFINISHED and json.loads(row.config).get("request") == wanted
    ]


@contextlib.contextmanager
def claim_run(store: Store, request: dict, key: str) -> Iterator[tuple[str, TrainingState, bool]]:
    """(run id, its training state, whether it continues an earlier run), locked for the duration.

    An unfinished run with the same arguments is continued when nobody holds it and its saved state (if
    any) was made for today's data and config; otherwise a new run id is made.
    """
    root = store.paths.training
    for run_id in unfinished_runs(store, request):
        lock = _try_lock(root / run_id)
        if lock is None:
            continue
        state = TrainingState(root / run_id, key)
        if _state_matches(state):
            with lock, _written(state):
                yield run_id, state, True
            return
        lock.close()
    run_id = new_run_id("finetune")
    state = TrainingState(root / run_id, key)
    with _try_lock(root / run_id) as lock, _written(state):  # noqa: F841 - held while the run trains
        yield run_id, state, False


@contextlib.contextmanager
def _written(state: TrainingState) -> Iterator[None]:
    """The state's last write is on disk before its lock is released, however the run ended."""
    try:
        yield
    finally:
        state.wait()


def _state_matches(state: TrainingState) -> bool:
    """No state yet (killed before its first epoch ended), or a state made with the same key."""
    try:  # mmap: only the key is read, not the weights
        return (
            torch.load(state.path, map_location="cpu", weights_only=True, mmap=True).get("key") == state.key
        )
    except FileNotFoundError:
        return True
