"""The dashboard's pure helpers against scikit-learn or a formula, thumbnails, the upload gate, the launcher."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.decomposition import PCA
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from pedclip.config import Paths
from pedclip.dashboard import analysis, launch, thumbs
from pedclip.errors import PedclipError


@pytest.fixture
def scored():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.clip(labels * 0.3 + rng.random(200) * 0.7, 0, 1)
    return labels, scores


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.77, 1.0])
def test_operating_point_matches_scikit_learn(scored, threshold):
    labels, scores = scored
    point = analysis.operating_point(labels, scores, threshold)
    expected = confusion_matrix(labels, (scores >= threshold).astype(int), labels=[0, 1])
    assert (point.matrix() == expected).all()
    tn, fp, fn, tp = expected.ravel()
    assert point.sensitivity == pytest.approx(tp / (tp + fn))
    assert point.specificity == pytest.approx(tn / (tn + fp))


def test_curves_and_slices(scored):
    labels, scores = scored
    fpr, tpr, _ = roc_curve(labels, scores)
    roc = analysis.roc_points(labels, scores)
    assert np.allclose(roc["fpr"], fpr) and np.allclose(roc["tpr"], tpr)
    assert analysis.roc_points(np.ones(5), np.random.default_rng(0).random(5)).empty
    frame = pd.DataFrame({"label": labels, "score": scores, "site": np.where(np.arange(200) < 120, "A", "B")})
    table = analysis.slice_table(frame, "site", 0.5).set_index("site")
    part = frame[frame["site"] == "B"]
    assert table.loc["B", "n"] == 80
    assert table.loc["B", "auroc"] == pytest.approx(roc_auc_score(part["label"], part["score"]))
    bins = analysis.reliability_bins(labels, scores, n_bins=5)
    assert bins["n"].sum() == 200
    in_first = scores < 0.2
    assert bins["observed"].iat[0] == pytest.approx(labels[in_first].mean())


def test_errors_are_most_confident_first():
    frame = pd.DataFrame({"case_id": list("abcdef"), "label": [0, 0, 1, 1, 0, 1],
                          "score": [0.9, 0.6, 0.1, 0.4, 0.2, 0.8]})  # fmt: skip
    fp, fn = analysis.errors_of(frame, 0.5)
    assert list(fp["case_id"]) == ["a", "b"] and list(fn["case_id"]) == ["c", "d"]


def test_pca_matches_scikit_learn_up_to_sign():
    vectors = np.random.default_rng(1).normal(size=(50, 8))
    ours = analysis.pca_2d(vectors)
    theirs = PCA(n_components=2).fit_transform(vectors)
    assert np.allclose(np.abs(ours), np.abs(theirs), atol=1e-8)


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"auroc": {"value": 0.8, "lo": 0.7, "hi": 0.9}}, (0.8, 0.7, 0.9)),
        ({"auroc": 0.8, "auroc_ci": [0.7, 0.9]}, (0.8, 0.7, 0.9)),
        ({"test": {"auroc": [0.8, 0.7, 0.9]}}, (0.8, 0.7, 0.9)),
        ({"auroc": {"reason": "one class"}}, (None, None, None)),
        ({}, (None, None, None)),
    ],
)
def test_headline_reads_every_metric_shape(metrics, expected):
    assert analysis.headline(metrics, "auroc") == expected


def test_leakage_and_duplicates():
    cases = pd.DataFrame({"dataset": ["d"] * 4, "case_id": list("abcd"), "patient_id": ["p", "p", "q", None],
                          "split": ["train", "test", "train", "val"], "image_sha256": ["1", "2", "3", "3"]})  # fmt: skip
    leaks = analysis.patients_across_splits(cases)
    assert leaks.to_dict("records") == [{"patient_id": "p", "splits": "test, train", "images": 2}]
    dups = analysis.duplicate_images(cases)
    assert dups.to_dict("records") == [
        {"image_sha256": "3", "cases": "c, d", "splits": "train, val", "datasets": "d"}
    ]


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


def test_run_threshold_and_format():
    assert analysis.run_threshold({"config": {"threshold": {"value": 0.3, "rule": "youden"}}}) == 0.3
    assert analysis.run_threshold({"config": json.loads("{}")}) == 0.5
    assert analysis.format_ci(0.5, 0.4, 0.6) == "0.500 [0.400, 0.600]"
    assert analysis.format_ci(math.nan, None, None) == "n/a"
