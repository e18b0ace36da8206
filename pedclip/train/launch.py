"""Starting distributed fine-tuning: `pedclip finetune --nproc N` (N ranks spawned on this machine) or one rank
of a `torchrun` launch (its RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR environment, any number of nodes).

Each rank gets one device (cuda:LOCAL_RANK, else the CPU with its share of the cores), joins the process group
(NCCL on CUDA, gloo on CPU) and runs `finetune` with a `DataParallel` replica. Rank 0 opens the store; the
others never touch the DuckDB file, so the store may live on the first node only.
"""

from __future__ import annotations

import os
import signal
import socket
from dataclasses import replace
from datetime import timedelta

import torch

from pedclip.config import Paths
from pedclip.errors import PedclipError
from pedclip.store import Store
from pedclip.store.db import released
from pedclip.train.config import FinetuneConfig
from pedclip.train.distributed import DataParallel, Rank
from pedclip.train.finetune import FinetuneResult, finetune
from pedclip.train.loop import Progress

COLLECTIVE_TIMEOUT = timedelta(minutes=30)  # a rank that stops answering fails the run after this long


def rank_config(config: FinetuneConfig, rank: Rank, ranks_here: int) -> FinetuneConfig:
    """The config as this rank runs it: its own device; on CPU, its share of this machine's cores."""
    device = rank.device(config.device)
    if device.startswith("cuda"):
        if rank.local_rank >= torch.cuda.device_count():
            raise PedclipError(
                f"rank {rank.rank} needs cuda:{rank.local_rank} but this node has {torch.cuda.device_count()} "
                "GPU(s); start at most one process per GPU"
            )
        torch.cuda.set_device(rank.local_rank)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // ranks_here))
    return replace(config, device=device)


def finetune_as_rank(
    home: str | None,
    config: FinetuneConfig,
    rank: Rank,
    progress: Progress | None = None,
    ranks_here: int = 1,
    tags: dict | None = None,
) -> FinetuneResult | None:
    """Join the process group (address from the environment) and run this rank's part; rank 0's result."""
    import torch.distributed as dist

    config = rank_config(config, rank, ranks_here)
    backend = "nccl" if config.device.startswith("cuda") else "gloo"
    # Only rank 0 opens (and migrates) the DuckDB file; the others need just the paths (model checkpoints).
    store = Store.open(home, create=False) if rank.rank == 0 else Store(Paths.at(home))
    dist.init_process_group(backend, rank=rank.rank, world_size=rank.world_size, timeout=COLLECTIVE_TIMEOUT)
    try:
        progress = progress if rank.rank == 0 else None
        return finetune(store, config, progress, tags=tags, replica=DataParallel(rank))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawned_rank(
    index: int, nproc: int, port: int, home: str | None, config: FinetuneConfig, tags: dict | None, queue
) -> None:
    """Body of one spawned rank: rank 0 relays progress, its result and any user error through `queue`."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    rank = Rank(index, nproc, index)
    progress = (lambda event: queue.put(("progress", event))) if index == 0 else None
    try:
        result = finetune_as_rank(home, config, rank, progress, ranks_here=nproc, tags=tags)
    except PedclipError as exc:
        queue.put(("error", f"rank {index}: {exc}"))
        raise SystemExit(1) from exc
    if index == 0:
        queue.put(("result", result))


def launch(
    home: str | None,
    config: FinetuneConfig,
    nproc: int,
    progress: Progress | None = None,
    tags: dict | None = None,
) -> FinetuneResult:
    """Run `finetune` on `nproc` spawned ranks of this machine and return rank 0's result. Ctrl-C reaches the
    ranks (they stop after the current step and save, as a single process does); this process waits."""
    if nproc < 2:
        raise PedclipError(f"--nproc must be 2 or more to start several processes; got {nproc}")
    with released(Paths.at(home).db):  # rank 0 opens the store: not while this process holds it
        return _run_spawned(home, config, nproc, progress, tags)


def spawned_trainer(nproc: int):
    """`finetune`'s stand-in that trains on `nproc` spawned ranks, for `transfer` and `--seeds` (a Trainer)."""

    def train(
        store: Store, config: FinetuneConfig, progress: Progress | None = None, tags: dict | None = None
    ):
        return launch(str(store.paths.home), config, nproc, progress, tags)

    return train


def _run_spawned(
    home: str | None, config: FinetuneConfig, nproc: int, progress: Progress | None, tags: dict | None
) -> FinetuneResult:
    import torch.multiprocessing as mp

    queue = mp.get_context("spawn").SimpleQueue()
    context = mp.start_processes(
        _spawned_rank,
        args=(nproc, free_port(), home, config, tags, queue),
        nprocs=nproc,
        join=False,
        start_method="spawn",
    )
    previous = signal.signal(signal.SIGINT, lambda *_: None)  # the ranks handle Ctrl-C; keep waiting for them
    outcome: dict = {}
    try:
        while True:
            _relay(queue, progress, outcome)
            if context.join(timeout=0.2):
                break
    except (mp.ProcessExitedException, mp.ProcessRaisedException) as exc:
        _relay(queue, progress, outcome)
        raise PedclipError(outcome.get("error") or f"a fine-tuning rank failed: {exc}") from exc
    finally:
        signal.signal(signal.SIGINT, previous)
    _relay(queue, progress, outcome)
    if "result" not in outcome:
        raise PedclipError(outcome.get("error") or "rank 0 ended without a result; rerun with --debug")
    return outcome["result"]


def _relay(queue, progress: Progress | None, outcome: dict) -> None:
    """Pass queued progress events on; keep the result or the error in `outcome`."""
    while not queue.empty():
        kind, payload = queue.get()
        if kind == "progress":
            if progress is not None:
                progress(payload)
        else:
            outcome[kind] = payload
