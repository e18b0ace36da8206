"""One run per training seed, linked by a group id stored in each run's config (`--seeds 0,1,2`).

A group is `{"id": "group-<time>-<hex>", "seeds": [0, 1, 2]}` under the run config's "group" key, on the
fine-tuning runs and on the transfer runs made from them; tables and the run picker read it from there.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

from pedclip.errors import PedclipError
from pedclip.store import Store
from pedclip.train.config import FinetuneConfig
from pedclip.train.finetune import FinetuneResult, finetune
from pedclip.train.loop import Progress
from pedclip.train.transfer import Trainer, TransferResult, transfer

GROUP_KEY = "group"


def seed_group(seeds: tuple[int, ...]) -> dict:
    """A new group id for runs that differ only in their training seed."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise PedclipError(f"--seeds needs distinct seeds, e.g. 0,1,2; got {','.join(map(str, seeds))}")
    return {"id": f"group-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}", "seeds": list(seeds)}


def finetune_seeds(
    store: Store,
    config: FinetuneConfig,
    seeds: tuple[int, ...],
    progress: Progress | None = None,
    trainer: Trainer = finetune,
) -> list[FinetuneResult]:
    """`finetune` (or `trainer`) once per seed, everything else as `config`, the runs linked by one group id."""
    group = {GROUP_KEY: seed_group(seeds)}
    return [trainer(store, replace(config, seed=s), progress=progress, tags=group) for s in seeds]


def transfer_seeds(
    store: Store,
    config: FinetuneConfig,
    to_dataset: str,
    seeds: tuple[int, ...],
    both: bool = False,
    reuse: bool = True,
    progress: Progress | None = None,
    trainer: Trainer = finetune,
) -> TransferResult:
    """`transfer` once per seed, the fine-tuning and transfer runs linked by one group id."""
    group = {GROUP_KEY: seed_group(seeds)}
    out = TransferResult()
    for s in seeds:
        one = replace(config, seed=s)
        out.runs += transfer(store, one, to_dataset, both, reuse, progress, group, trainer).runs
    return out
