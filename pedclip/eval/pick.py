"""Which stored runs fill a table cell: matched on their recorded config, never "the newest".

A cell asks for (kind, parent model, train dataset, eval dataset, protocol, loss, recipe, seeds). A run's
recipe is its resolved fine-tuning config without the fields that do not change the trained weights (device,
where to embed) and without the seed, which is matched on its own. Runs whose recipe differs are never mixed
in one cell: when several recipes match, the one with the most seeds is taken and the note says so, and when
several runs share a recipe and seed, the one in the largest seed group is taken and the note names it.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field

from pedclip.errors import PedclipError
from pedclip.eval.protocols import PROTOCOL_LOSS
from pedclip.store import Store
from pedclip.store.runs import finished_runs, get_run

NOT_RECIPE = ("seed", "device", "reembed", "embed", "embed_workers", "weights", "trust_torchscript")


@dataclass(frozen=True)
class RunQuery:
    kind: str  # finetune | transfer
    parent: str | None  # fingerprint of the model fine-tuning started from
    train_dataset: str
    eval_dataset: str | None  # None: any (fine-tuning runs evaluate on their own dataset)
    protocol: str
    loss: str | None = None  # None: the protocol's default loss
    seeds: tuple[int, ...] | None = None  # None: every seed found
    recipe: tuple[
        tuple[str, object], ...
    ] = ()  # resolved-config fields that must match, e.g. (("lr", 3e-4),)


@dataclass
class Picked:
    """The runs chosen for a cell, one per seed in seed order, and what the reader must know about the choice."""

    runs: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return [training_config(r).get("seed") for r in self.runs]


def training_config(run: dict) -> dict:
    """The resolved fine-tuning config behind a run (a transfer run carries its fine-tuning run's)."""
    return run.get("training_config") or run["config"].get("resolved") or {}


def recipe_of(run: dict) -> dict:
    """What trained the weights, less the seed: the resolved config minus NOT_RECIPE, plus any tuning grid."""
    recipe = {k: v for k, v in training_config(run).items() if k not in NOT_RECIPE}
    tune = run["config"].get("tune")
    if tune:  # lr and decay were chosen per model on validation: the grid is the recipe
        recipe = {k: v for k, v in recipe.items() if k not in ("lr", "weight_decay")}
        recipe["tune_grid"] = [[p.get("lr"), p.get("weight_decay")] for p in tune.get("grid", [])]
    return recipe


def _same(a: object, b: object) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-15)
    return a == b


def matches(run: dict, query: RunQuery) -> bool:
    """Every field of the query holds for this run's recorded config."""
    trained = training_config(run)
    wanted_loss = query.loss or PROTOCOL_LOSS.get(query.protocol)
    checks = (
        run["kind"] == query.kind,
        run.get("status") == "done",
        run["protocol"] == query.protocol,
        run["config"].get("parent_fingerprint") == query.parent,
        run["train_dataset"] == query.train_dataset,
        query.eval_dataset is None or run["eval_dataset"] == query.eval_dataset,
        trained.get("loss") == wanted_loss,
        query.seeds is None or trained.get("seed") in query.seeds,
        all(_same(trained.get(k), v) for k, v in query.recipe),
        bool(run.get("metrics")),
    )
    return all(checks)


def _key(recipe: dict) -> str:
    return json.dumps(recipe, sort_keys=True, default=str)


def _recipe_diff(recipes: list[dict]) -> str:
    keys = sorted({k for r in recipes for k in r if len({_key({k: x.get(k)}) for x in recipes}) > 1})
    return ", ".join(f"{k} in {sorted({str(r.get(k)) for r in recipes})}" for k in keys)


def _group_id(run: dict) -> str | None:
    return (run["config"].get("group") or {}).get("id")


def _one_per_seed(runs: list[dict], notes: list[str]) -> list[dict]:
    by_seed: dict[int, list[dict]] = defaultdict(list)
    for run in runs:
        by_seed[training_config(run).get("seed")].append(run)
    group_size = defaultdict(int)
    for run in runs:
        group_size[_group_id(run)] += 1
    chosen = []
    for seed in sorted(by_seed, key=lambda s: (s is None, s)):
        same = sorted(
            by_seed[seed], key=lambda r: (-group_size[_group_id(r)] if _group_id(r) else 0, r["run_id"])
        )
        if len(same) > 1:
            notes.append(
                f"{len(same)} runs match seed {seed} with the same config ({', '.join(r['run_id'] for r in same)}); "
                f"took {same[0]['run_id']}"
                + (f" (seed group {_group_id(same[0])})" if _group_id(same[0]) else "")
            )
        chosen.append(same[0])
    return chosen


def pick_runs(candidates: list[dict], query: RunQuery) -> Picked:
    """The runs of `candidates` that fill the cell `query`: one recipe, one run per seed."""
    matching = [r for r in candidates if matches(r, query)]
    if not matching:
        return Picked()
    by_recipe: dict[str, list[dict]] = defaultdict(list)
    for run in matching:
        by_recipe[_key(recipe_of(run))].append(run)
    notes: list[str] = []
    ranked = sorted(
        by_recipe.values(),
        key=lambda rs: (-len({training_config(r).get("seed") for r in rs}), _key(recipe_of(rs[0]))),
    )
    if len(ranked) > 1:
        notes.append(
            f"{len(ranked)} recipes match ({_recipe_diff([recipe_of(rs[0]) for rs in ranked])}); took the one with "
            "the most seeds; choose with --recipe KEY=VALUE"
        )
    return Picked(_one_per_seed(ranked[0], notes), notes)


def candidate_runs(store: Store, kind: str, parents) -> list[dict]:
    """Finished runs of `kind` from any of these parent fingerprints, decoded; a transfer run carries its
    fine-tuning run's resolved config as `training_config`."""
    runs = [
        run for parent in dict.fromkeys(p for p in parents if p) for run in finished_runs(store, kind, parent)
    ]
    if kind == "transfer":
        for run in runs:
            source = run["config"].get("finetune_run")
            try:
                trained = get_run(store, source) if source else None
            except PedclipError:  # a deleted fine-tuning run leaves the transfer run unmatched
                trained = None
            run["training_config"] = (trained or {}).get("config", {}).get("resolved", {})
            if trained and trained["config"].get("tune"):
                run["config"].setdefault("tune", trained["config"]["tune"])
    return runs
