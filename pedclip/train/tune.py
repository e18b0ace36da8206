"""`--tune`: the same small lr x weight-decay grid for every model, the point chosen on validation AUROC.

Equal budget for CLIP and MedCLIP in `sound`: each grid point is one fine-tuning run (not embedded); the point
with the highest validation AUROC (ties: the first in grid order) is then embedded and scored on test like any
fine-tuning run, and its run records the grid, every point's validation AUROC and the choice under "tune". The
other points stay in the store with status "candidate", so tables and transfer reuse never take them.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from pedclip.embed.pipeline import EmbedConfig
from pedclip.errors import PedclipError
from pedclip.models import load_encoder
from pedclip.store import Store
from pedclip.store.runs import get_run, save_run
from pedclip.train.config import FinetuneConfig
from pedclip.train.evaluate import embed_with, evaluate_finetuned
from pedclip.train.finetune import FinetuneResult, finetune
from pedclip.train.loop import Progress

DEFAULT_LRS = (1e-5, 3e-5, 1e-4)
DEFAULT_WEIGHT_DECAYS = (1e-4, 1e-2)
MAX_POINTS = 6


def tune_grid(lrs: tuple[float, ...], weight_decays: tuple[float, ...]) -> list[tuple[float, float]]:
    """(lr, weight decay) points in grid order; at most MAX_POINTS, all positive lr."""
    points = list(itertools.product(lrs, weight_decays))
    if not points or len(points) > MAX_POINTS:
        raise PedclipError(
            f"--tune grid has {len(points)} points ({len(lrs)} lr x {len(weight_decays)} weight decay); "
            f"give 1 to {MAX_POINTS}, e.g. --tune-lr 1e-5,1e-4 --tune-wd 0,0.01"
        )
    if any(lr <= 0 for lr in lrs) or any(wd < 0 for wd in weight_decays):
        raise PedclipError(
            f"--tune-lr must be positive and --tune-wd non-negative; got {lrs} and {weight_decays}"
        )
    return points


def _val_auroc(result: FinetuneResult) -> float:
    value = result.best.get("val_auroc")
    return float("-inf") if value is None else float(value)


def tuned_finetune(
    store: Store,
    config: FinetuneConfig,
    grid: list[tuple[float, float]],
    progress: Progress | None = None,
    tags: dict | None = None,
) -> FinetuneResult:
    """Fine-tune at every grid point, keep the best by validation AUROC, embed and score only that one."""
    tried = []
    for lr, wd in grid:
        point = replace(config, lr=lr, weight_decay=wd, embed=False)
        tried.append(
            finetune(store, point, progress=progress, tags={**(tags or {}), "tune": {"role": "candidate"}})
        )
    best = max(range(len(tried)), key=lambda i: (_val_auroc(tried[i]), -i))
    info = {
        "selected_on": "val AUROC",
        "grid": [
            {"lr": lr, "weight_decay": wd, "val_auroc": r.best.get("val_auroc"), "run_id": r.run_id}
            for (lr, wd), r in zip(grid, tried, strict=True)
        ],
        "chosen": {"lr": grid[best][0], "weight_decay": grid[best][1], "run_id": tried[best].run_id},
    }
    for i, result in enumerate(tried):
        if i != best:
            _mark_candidate(store, result.run_id, info)
    chosen = replace(config, lr=grid[best][0], weight_decay=grid[best][1])
    return _finish(store, tried[best], chosen, info)


def _mark_candidate(store: Store, run_id: str, info: dict) -> None:
    run = get_run(store, run_id)
    run["config"]["tune"] = {**info, "role": "candidate"}
    save_run(store, {**run, "status": "candidate"})


def _finish(store: Store, result: FinetuneResult, config: FinetuneConfig, info: dict) -> FinetuneResult:
    """Embed with the chosen point's model and score it on test, as `finetune` does for an untuned run."""
    run = get_run(store, result.run_id)
    run["config"]["tune"] = {**info, "role": "chosen"}
    if not config.embed:
        save_run(store, run)
        return result
    child = load_encoder(result.spec, device=config.device or "cpu", home=store.paths.home)
    datasets = (config.dataset, *config.reembed)
    result.embedded = embed_with(store, child, datasets, EmbedConfig(workers=config.embed_workers))
    test = evaluate_finetuned(store, child, config)
    if test is not None:
        run["config"]["evaluation"] = test.run["config"]
        run.update(split=test.run["split"], metrics=test.run["metrics"])
        result.test = test.run["metrics"]
    save_run(store, run, test.predictions if test is not None else None)
    return result
