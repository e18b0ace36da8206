"""The run picker: matched on recorded config, one recipe per cell, says which run it took."""

from __future__ import annotations

import itertools

import numpy as np

from pedclip.eval.pick import RunQuery, matches, pick_runs, recipe_of


def _run(run_id, seed=0, lr=3e-4, loss="semantic", protocol="sound", parent="P", train="a", group=None, **kw):
    config = {
        "parent_fingerprint": parent,
        "resolved": {"seed": seed, "lr": lr, "loss": loss, "weight_decay": 0.0, "epochs": 4, "device": "cpu"},
    }
    if group:
        config["group"] = {"id": group, "seeds": [0, 1, 2]}
    return {"run_id": run_id, "kind": kw.get("kind", "finetune"), "protocol": protocol, "status": kw.get("status", "done"),
            "train_dataset": train, "eval_dataset": train, "config": config, "metrics": {"auroc": {"value": 0.7}}}  # fmt: skip


QUERY = RunQuery(kind="finetune", parent="P", train_dataset="a", eval_dataset=None, protocol="sound")


def test_picks_only_matching_runs_one_per_seed():
    runs = [
        _run("ok-0", seed=0),
        _run("ok-1", seed=1),
        _run("other-loss", seed=2, loss="clip"),
        _run("other-parent", seed=2, parent="Q"),
        _run("other-site", seed=2, train="b"),
        _run("paper", seed=2, protocol="paper"),
        _run("failed", seed=2, status="failed"),
        _run("transfer", seed=2, kind="transfer"),
    ]
    picked = pick_runs(runs, QUERY)
    assert (
        [r["run_id"] for r in picked.runs] == ["ok-0", "ok-1"] and picked.seeds == [0, 1] and not picked.notes
    )
    assert [r["run_id"] for r in pick_runs(runs, RunQuery(**{**QUERY.__dict__, "seeds": (1,)})).runs] == [
        "ok-1"
    ]
    assert not pick_runs(runs, RunQuery(**{**QUERY.__dict__, "parent": "none"})).runs


def test_never_mixes_recipes_and_says_which_it_took():
    runs = [_run("slow-0", seed=0, lr=1e-5), _run("fast-0", seed=0), _run("fast-1", seed=1)]
    picked = pick_runs(runs, QUERY)
    assert [r["run_id"] for r in picked.runs] == ["fast-0", "fast-1"]  # the recipe with more seeds
    assert "2 recipes match" in picked.notes[0] and "lr" in picked.notes[0]
    forced = pick_runs(runs, RunQuery(**{**QUERY.__dict__, "recipe": (("lr", 1e-5),)}))
    assert [r["run_id"] for r in forced.runs] == ["slow-0"] and not forced.notes


def test_duplicate_seed_prefers_the_seed_group_and_names_it():
    runs = [_run("lone-0", seed=0), _run("g-0", seed=0, group="G"), _run("g-1", seed=1, group="G")]
    picked = pick_runs(runs, QUERY)
    assert [r["run_id"] for r in picked.runs] == ["g-0", "g-1"]
    assert "2 runs match seed 0" in picked.notes[0] and "took g-0" in picked.notes[0]


def test_random_stores_never_yield_a_run_whose_config_differs():
    rng = np.random.default_rng(0)
    choices = {"seed": [0, 1, 2], "lr": [1e-5, 3e-4], "loss": ["clip", "semantic"], "parent": ["P", "Q"],
               "train": ["a", "b"], "protocol": ["sound", "paper"]}  # fmt: skip
    for trial in range(40):
        runs = [
            _run(f"r{trial}-{i}", **{k: v[rng.integers(len(v))] for k, v in choices.items()})
            for i in range(12)
        ]
        for seeds, lr in itertools.product((None, (0, 2)), (None, 3e-4)):
            query = RunQuery(**{**QUERY.__dict__, "seeds": seeds, "recipe": (("lr", lr),) if lr else ()})
            picked = pick_runs(runs, query)
            assert all(matches(r, query) for r in picked.runs)
            assert len({str(recipe_of(r)) for r in picked.runs}) <= 1  # one recipe a cell
            assert len(set(picked.seeds)) == len(picked.seeds)  # one run a seed
