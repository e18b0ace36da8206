"""`pedclip finetune` and `pedclip transfer` through the CLI: one JSON document, runs in the store."""

from __future__ import annotations

import json

from pedclip.cli import main
from pedclip.store.runs import get_run, runs_frame
from tests.train.conftest import add_dataset

FAST = ["--model", "openclip:pedclip-tiny", "--epochs", "1", "--batch-size", "8", "--lr", "3e-4",
        "--device", "cpu", "--workers", "0", "--json"]  # fmt: skip


def run_json(capsys, home, *args: str) -> dict:
    code = main(["--home", str(home), *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_finetune_command_prints_one_json_document(capsys, home, store, site):
    result = run_json(capsys, home, "finetune", "--dataset", site, "--loss", "semantic", *FAST)
    assert result["spec"].startswith("local:") and result["best_epoch"] == 1
    assert result["config"]["loss"] == "semantic" and result["test"]["auroc"]["value"] is not None
    assert get_run(store, result["run_id"])["kind"] == "finetune"


def test_transfer_both_ways_uses_each_directions_own_model_and_reuses_it(capsys, home, store, site, tmp_path):
    add_dataset(store, tmp_path / "site-b", "site-b", seed=2)
    result = run_json(capsys, home, "transfer", "--from", site, "--to", "site-b", "--both", *FAST)
    forward, backward = result["runs"]
    assert (forward["from"], forward["to"], backward["from"], backward["to"]) == (
        site,
        "site-b",
        "site-b",
        site,
    )
    assert forward["model"] != backward["model"]  # the audit's fix: not one model for both directions
    for direction in (forward, backward):
        run = get_run(store, direction["run_id"])
        trained_on = get_run(store, run["config"]["finetune_run"])["train_dataset"]
        assert (run["kind"], run["train_dataset"], run["eval_dataset"], trained_on) == (
            "transfer", direction["from"], direction["to"], direction["from"])  # fmt: skip
        assert run["split"] == "test" and "auroc" in run["metrics"]

    again = run_json(capsys, home, "transfer", "--from", site, "--to", "site-b", *FAST)
    assert again["runs"][0]["finetune_run"] == forward["finetune_run"]  # reused, not retrained
    assert len(runs_frame(store, kinds=["finetune"])) == 2


def test_bad_flag_value_is_one_line_error(capsys, home, store, site):
    code = main(["--home", str(home), "finetune", "--dataset", site, "--trainable", "some", *FAST])
    assert code == 1
    assert "--trainable 'some' is not valid" in capsys.readouterr().err


def test_seeds_make_distinct_runs_in_one_group(capsys, home, store, site, tmp_path):
    result = run_json(capsys, home, "finetune", "--dataset", site, "--seeds", "0,1", *FAST)
    runs = [get_run(store, r["run_id"]) for r in result["runs"]]
    assert [r["config"]["resolved"]["seed"] for r in runs] == [0, 1]
    assert len({r["run_id"] for r in runs}) == 2
    assert len({r["fingerprint"] for r in runs}) == 2  # different seeds, different trained weights
    groups = {r["config"]["group"]["id"] for r in runs}
    assert len(groups) == 1 and runs[0]["config"]["group"]["seeds"] == [0, 1]

    add_dataset(store, tmp_path / "site-b", "site-b", seed=2)
    moved = run_json(capsys, home, "transfer", "--from", site, "--to", "site-b", "--seeds", "0,1", *FAST)
    transfers = [get_run(store, r["run_id"]) for r in moved["runs"]]
    assert [r["seed"] for r in moved["runs"]] == [0, 1]
    assert len({r["config"]["group"]["id"] for r in transfers}) == 1
    assert {r["config"]["finetune_run"] for r in transfers} == {
        r["run_id"] for r in runs
    }  # same seeds reused


def test_bad_seeds_are_one_line_errors(capsys, home, store, site):
    for bad in ("0,x", "1,1"):
        code = main(["--home", str(home), "finetune", "--dataset", site, "--seeds", bad, *FAST])
        err = capsys.readouterr().err
        assert code == 1 and f"--seeds '{bad}'" in err and len(err.strip().splitlines()) == 1


def test_tune_picks_the_best_grid_point_on_validation(capsys, home, store, site):
    fast = [a for a in FAST if a not in ("--lr", "3e-4")]
    result = run_json(capsys, home, "finetune", "--dataset", site, "--tune", "--tune-lr", "1e-4,1e-3",
                      "--tune-wd", "0", *fast)  # fmt: skip
    run = get_run(store, result["run_id"])
    tune = run["config"]["tune"]
    assert tune["role"] == "chosen" and tune["selected_on"] == "val AUROC" and len(tune["grid"]) == 2
    best = max(tune["grid"], key=lambda p: (p["val_auroc"], -tune["grid"].index(p)))
    assert tune["chosen"]["lr"] == best["lr"] == run["config"]["resolved"]["lr"]
    assert run["status"] == "done" and run["split"] == "test" and "auroc" in run["metrics"]
    others = [get_run(store, p["run_id"]) for p in tune["grid"] if p["run_id"] != run["run_id"]]
    assert [o["status"] for o in others] == ["candidate"]  # never picked by tables or transfer reuse


def test_tune_grid_is_bounded(capsys, home, store, site):
    code = main(["--home", str(home), "finetune", "--dataset", site, "--tune", "--tune-lr", "1,2,3,4",
                 "--tune-wd", "0,1", *FAST])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "has 8 points" in err


def test_finetune_and_transfer_accept_the_same_training_options():
    import typer.main

    from pedclip.cli import _register, app

    _register()
    commands = typer.main.get_command(app).commands

    def flags(name: str) -> set[str]:
        return {opt for p in commands[name].params if p.param_type_name == "option" for opt in p.opts}

    shared = flags("finetune") & flags("transfer")
    assert {
        "--micro-batch",
        "--grad-clip",
        "--precision",
        "--reembed",
        "--workers",
        "--lr",
        "--nproc",
    } <= shared
    assert flags("finetune") - shared == {"--dataset", "-d"}
    # --threshold-from is transfer's own: whose validation split gives the target's threshold
    assert flags("transfer") - shared == {"--from", "--to", "--both", "--retrain", "--threshold-from"}
