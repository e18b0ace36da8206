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


def test_finetune_and_transfer_accept_the_same_training_options():
    import typer.main

    from pedclip.cli import _register, app

    _register()
    commands = typer.main.get_command(app).commands

    def flags(name: str) -> set[str]:
        return {opt for p in commands[name].params if p.param_type_name == "option" for opt in p.opts}

    shared = flags("finetune") & flags("transfer")
    assert {"--micro-batch", "--grad-clip", "--precision", "--reembed", "--workers", "--lr"} <= shared
    assert flags("finetune") - shared == {"--dataset", "-d"}
    assert flags("transfer") - shared == {"--from", "--to", "--both", "--retrain"}
