"""The dashboard's pure helpers against scikit-learn or a formula, thumbnails, the upload gate, the launcher."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pedclip.config import Paths
from pedclip.dashboard import analysis, launch, thumbs
from pedclip.errors import PedclipError
from pedclip.eval.curves import operating_point
from pedclip.eval.metrics import Metric
from pedclip.eval.record import RunRecord


def test_thumbnails_are_made_once_and_cached(tmp_path):
    paths = Paths(tmp_path)
    source = tmp_path / "x.png"
    Image.fromarray(np.arange(256 * 300, dtype=np.uint16).reshape(256, 300) % 65535).save(source)
    calls = []

    def load(path, member):
        calls.append((path, member))
        return Image.open(path)

    case = {"path": str(source), "member": float("nan"), "image_sha256": "ab" * 32}
    first = thumbs.case_thumbnail(paths, case, load, size=64)
    again = thumbs.case_thumbnail(paths, case, load, size=64)
    assert first == again and calls == [(str(source), None)]
    img = Image.open(thumbs.thumbnail_path(paths, "ab" * 32, 64))
    assert max(img.size) == 64 and img.mode == "L"
    with pytest.raises(PedclipError):
        thumbs.thumbnail_path(paths, "../../etc/passwd")


def test_upload_gate():
    thumbs.check_upload("x.PNG", 1000)
    with pytest.raises(PedclipError, match="upload one of"):
        thumbs.check_upload("x.exe", 10)
    with pytest.raises(PedclipError, match="up to 10 MB"):
        thumbs.check_upload("x.png", thumbs.MAX_UPLOAD_BYTES + 1)


def test_launch_command_is_headless_local_and_quiet(tmp_path):
    command = launch.streamlit_command(8600, "127.0.0.1")
    pairs = dict(zip(command[5::2], command[6::2], strict=True))
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("app.py")
    assert pairs["--server.headless"] == "true" and pairs["--browser.gatherUsageStats"] == "false"
    assert pairs["--server.address"] == "127.0.0.1" and pairs["--server.port"] == "8600"
    assert pairs["--server.enableStaticServing"] == "false"
    assert launch.dashboard_env(Paths(tmp_path))["PEDCLIP_HOME"] == str(tmp_path)
    with pytest.raises(PedclipError):
        launch.streamlit_command(70000, "127.0.0.1")


def test_cli_registers_the_dashboard_command():
    import typer
    from typer.testing import CliRunner

    from pedclip.cli import dashboard

    app = typer.Typer()
    app.callback()(lambda: None)  # a group, so the command keeps its name
    dashboard.register(app)
    result = CliRunner().invoke(app, ["dashboard", "--help"])
    assert result.exit_code == 0
    assert "--port" in result.output and "127.0.0.1" in result.output and "--home" in result.output


def test_format():
    assert analysis.format_ci(0.5, 0.4, 0.6) == "0.500 [0.400, 0.600]"
    assert analysis.format_ci(math.nan, None, None) == "n/a"


def test_close_neighbors_get_distinct_distances():
    distances = [3.2e-05, 4.2e-05, 1.0791e-04, 1.0842e-04, 0.0123, 0.5]  # 1 - cosine of near-duplicate films
    shown = [analysis.format_distance(d) for d in distances]
    assert shown == ["3.200e-05", "4.200e-05", "1.079e-04", "1.084e-04", "0.0123", "0.5000"]
    assert analysis.format_distance(0.0) == "0.0000"


def test_undefined_metrics_read_na_with_their_reason():
    stored = {
        "precision": {"reason": "no case predicted positive"},
        "auroc": {"value": 0.6, "lo": 0.5, "hi": 0.7},
    }
    run = RunRecord.from_row(
        {"run_id": "r", "kind": "zeroshot", "protocol": "sound", "model": "m", "metrics": json.dumps(stored)}
    )
    assert analysis.format_metric(run.metric("precision")) == "n/a (no case predicted positive)"
    assert analysis.format_metric(run.metric("auroc")) == "0.600 [0.500, 0.700]"
    assert analysis.format_metric(run.metric("auroc"), ci=False) == "0.600"
    assert analysis.format_metric(Metric(None)) == "n/a"
    assert analysis.format_ci(0.5, math.nan, math.nan) == "0.500"  # a CI no resample could estimate
    point = operating_point(np.array([0, 1, 1]), np.array([0, 0, 0]), 0.9)
    assert (
        analysis.format_rate(point.precision) == "n/a"
        and point.reason("precision") == "no case predicted positive"
    )
    assert point.reason("sensitivity") is None and analysis.format_rate(point.sensitivity) == "0.000"


def _runs(rows: list[dict]) -> pd.DataFrame:
    base = {
        "kind": "zeroshot",
        "protocol": "sound",
        "split": "test",
        "fingerprint": None,
        "train_dataset": None,
        "config": "{}",
        "metrics": "{}",
    }
    return pd.DataFrame([base | r for r in rows])


def test_model_labels_name_checkpoints_by_the_run_that_made_them():
    from pedclip.dashboard.labels import model_labels

    child = "local:/old/home/checkpoints/finetune-20261130-154125-e8194a"
    grandchild = "local:/old/home/checkpoints/finetune-20261201-101010-777777"
    models = pd.DataFrame(
        {
            "fingerprint": ["base", "ft", "ft2", "orphan"],
            "spec": ["local:/old/home/checkpoints/demo-clip-init", child, grandchild, "local:/x/mine"],
            "parent_fingerprint": [None, "base", "ft", "ft"],
        }
    )
    runs = _runs(
        [
            {"run_id": "zeroshot-1", "model": "demo:clip", "fingerprint": "base"},
            {
                "run_id": "finetune-20261130-154125-e8194a",
                "kind": "finetune",
                "model": "demo:clip",
                "fingerprint": "ft",
                "train_dataset": "peds-a",
                "config": json.dumps({"child_spec": child, "parent_fingerprint": "base"}),
            },
            {
                "run_id": "finetune-20261201-101010-777777",
                "kind": "finetune",
                "model": child,
                "fingerprint": "ft2",
                "train_dataset": "peds-b",
                "protocol": "paper",
                "config": json.dumps({"child_spec": grandchild}),
            },
        ]
    )
    labels = model_labels(models, runs)
    assert labels["base"] == labels["demo:clip"] == "demo:clip"
    assert labels[child] == labels["ft"] == "demo:clip · fine-tuned on peds-a · sound · finetune-…-e8194a"
    assert labels[grandchild] == f"{labels[child]} · fine-tuned on peds-b · paper · finetune-…-777777"
    assert labels["local:/x/mine"] == f"mine (from {labels[child]})"


def test_default_run_is_the_newest_informative_one():
    from pedclip.dashboard.labels import default_run

    defined = json.dumps({"auroc": {"value": 0.7}, "recall": {"value": 0.6}, "specificity": {"value": 0.5}})
    negative = json.dumps(
        {
            "auroc": {"value": 0.6},
            "recall": {"value": 0.0},
            "specificity": {"value": 1.0},
            "precision": {"reason": "no case predicted positive"},
        }
    )
    runs = _runs(
        [  # newest first, as runs_frame orders them
            {"run_id": "paper-all", "protocol": "paper", "split": "all", "metrics": defined},
            {"run_id": "negative", "metrics": negative},
            {"run_id": "probe", "kind": "probe", "metrics": defined},
            {"run_id": "paper-test", "protocol": "paper", "metrics": defined},
            {"run_id": "good", "metrics": defined},
            {"run_id": "older-good", "metrics": defined},
            {"run_id": "no-auroc", "metrics": json.dumps({"auroc": {"reason": "one class"}})},
        ]
    )
    assert default_run(runs) == "good"
    assert default_run(runs.iloc[[0, 6]]) == "paper-all"
    assert default_run(runs.iloc[:0]) is None


def test_a_moved_store_serves_thumbnails_from_its_new_home(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    image = new / "datasets" / "synth" / "a" / "1.png"
    image.parent.mkdir(parents=True)
    Image.new("L", (40, 30), 128).save(image)
    (tmp_path / "outside.png").write_bytes(image.read_bytes())
    paths = Paths(new)
    moved = str(old / "datasets" / "synth" / "a" / "1.png")
    assert thumbs.relocated(paths, moved) == str(image.resolve())
    assert thumbs.relocated(paths, str(image)) == str(image)  # a path that exists is used as is
    assert thumbs.relocated(paths, str(old / "elsewhere" / "1.png")) == str(old / "elsewhere" / "1.png")
    assert thumbs.relocated(paths, "/zz/../outside.png") == "/zz/../outside.png"  # never outside the home
    checkpoint = new / "checkpoints" / "finetune-1"  # a fine-tuned model's folder moves with its store too
    checkpoint.mkdir(parents=True)
    assert thumbs.relocated(paths, str(old / "checkpoints" / "finetune-1")) == str(checkpoint.resolve())
    from pedclip.data.imaging import load_image

    png = thumbs.case_thumbnail(paths, {"path": moved, "member": None, "image_sha256": "cd" * 32}, load_image)
    assert Image.open(io.BytesIO(png)).size == (40, 30)


def test_partner_runs_are_on_the_same_films_another_model_first():
    runs = pd.DataFrame(
        {  # newest first
            "run_id": ["same-model", "other-split", "other-model", "a", "other-data", "no-split"],
            "eval_dataset": ["x", "x", "x", "x", "y", "x"],
            "split": ["test", "val", "test", "test", "test", None],
            "fingerprint": ["f1", "f2", "f2", "f1", "f2", "f2"],
        }
    )
    assert analysis.partner_runs(runs, "a") == ["other-model", "same-model"]
    assert analysis.partner_runs(runs, "other-data") == []
    assert analysis.partner_runs(runs, "gone") == []
    assert analysis.format_p(0.0004) == "<0.001" and analysis.format_p(None) == "n/a"
    assert analysis.format_delta(0.0123) == "+0.012" and analysis.format_delta(float("nan")) == "n/a"
