"""`eval.curves` against scikit-learn, `eval.record` parsing and naming, and the shared figure builders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

from pedclip.eval import curves, figures
from pedclip.eval.bootstrap import BootstrapConfig, metrics_with_ci
from pedclip.eval.record import RunRecord, model_name


@pytest.fixture
def scored():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.clip(labels * 0.3 + rng.random(200) * 0.7, 0, 1)
    return labels, scores


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.77, 1.0])
def test_operating_point_matches_scikit_learn(scored, threshold):
    labels, scores = scored
    frame = pd.DataFrame({"label": labels, "score": scores, "predicted": (scores >= 0.5).astype(int)})
    point = curves.operating_point(labels, curves.decisions(frame, threshold), threshold)
    expected = confusion_matrix(labels, (scores >= threshold).astype(int), labels=[0, 1])
    assert (point.matrix() == expected).all()
    tn, fp, fn, tp = expected.ravel()
    assert point.sensitivity == pytest.approx(tp / (tp + fn))
    assert point.specificity == pytest.approx(tn / (tn + fp))


def test_without_a_threshold_the_stored_predictions_decide():
    frame = pd.DataFrame({"label": [0, 1, 1], "score": [0.9, 0.1, 0.8], "predicted": [0, 1, 0]})
    assert curves.decisions(frame).tolist() == [0, 1, 0]
    assert curves.decisions(frame, 0.5).tolist() == [1, 0, 1]
    point = curves.operating_point(frame["label"], curves.decisions(frame))
    assert (point.tp, point.fp, point.tn, point.fn, point.threshold) == (1, 0, 1, 1, None)


def test_curves_match_scikit_learn(scored):
    labels, scores = scored
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    roc = curves.roc_curve(labels, scores)
    assert np.allclose(roc["fpr"], fpr) and np.allclose(roc["tpr"], tpr)
    assert curves.roc_curve(np.ones(5), np.random.default_rng(0).random(5)).empty
    precision, recall, _ = precision_recall_curve(labels, scores, drop_intermediate=False)
    pr = curves.pr_curve(
        labels, scores
    )  # highest threshold first; scikit-learn ends with (recall 0, precision 1)
    assert np.allclose(pr["recall"], recall[:-1][::-1]) and np.allclose(pr["precision"], precision[:-1][::-1])
    bins = curves.calibration_curve(labels, scores, n_bins=5)
    assert bins["n"].sum() == 200
    assert bins["observed"].iat[0] == pytest.approx(labels[scores < 0.2].mean())
    assert bins["predicted"].iat[0] == pytest.approx(scores[scores < 0.2].mean())


def test_errors_are_most_confident_first():
    frame = pd.DataFrame(
        {"case_id": list("abcdef"), "label": [0, 0, 1, 1, 0, 1], "score": [0.9, 0.6, 0.1, 0.4, 0.2, 0.8]}
    )
    fp, fn = curves.errors(frame, (frame["score"] >= 0.5).astype(int))
    assert list(fp["case_id"]) == ["a", "b"] and list(fn["case_id"]) == ["c", "d"]


def test_run_record_parses_the_stored_row_once():
    row = {
        "run_id": "zeroshot-20260101-000000-abcdef",
        "kind": "transfer",
        "protocol": "paper",
        "model": "local:/x/ck",
        "train_dataset": "peds-a",
        "eval_dataset": "peds-b",
        "split": "all",
        "config": json.dumps(
            {
                "threshold": {"value": 0.6, "rule": "fixed 0.6"},
                "score": "top1_probability",
                "parent_spec": "medclip:vit",
                "train_dataset": "peds-a",
            }
        ),
        "metrics": json.dumps({"auroc": {"value": 0.7, "lo": 0.6, "hi": 0.8}, "f1": {"reason": "none"}}),
    }
    run = RunRecord.from_row(row)
    assert (run.threshold, run.threshold_rule, run.auc_score_kind) == (0.6, "fixed 0.6", "top1_probability")
    assert run.metric("auroc").value == 0.7 and run.metric("f1").reason == "none"
    assert run.metric("brier").value is None and run.regime == "transferred"
    assert run.model_name() == "medclip:vit · fine-tuned on peds-a · paper"
    assert RunRecord.from_row({**row, "config": "{}"}).threshold == 0.5
    assert model_name("local:/home/checkpoints/finetune-1-2-3/") == "finetune-1-2-3"


def _scored_run(run_id, kind, dataset, labels, scores, auc_scores=None):
    predicted = (scores >= 0.5).astype(int)
    frame = pd.DataFrame({"label": labels, "score": scores, "predicted": predicted})
    if auc_scores is not None:
        frame["auc_score"] = auc_scores
    metrics, _ = metrics_with_ci(
        labels, scores if auc_scores is None else auc_scores, predicted, None, BootstrapConfig(n_resamples=50)
    )
    run = RunRecord.from_row(
        {
            "run_id": run_id,
            "kind": kind,
            "protocol": "sound",
            "model": "demo:clip",
            "eval_dataset": dataset,
            "split": "test",
            "config": {"score": "p_positive" if auc_scores is None else "top1_probability"},
            "metrics": {k: m.as_dict() for k, m in metrics.items()},
        }
    )
    return figures.ScoredRun(run, frame, run.model_name())


def test_figures_draw_one_panel_per_dataset_and_regime_with_the_operating_point(scored):
    labels, scores = scored
    runs = [
        _scored_run("zeroshot-a", "zeroshot", "a", labels, scores),
        _scored_run("probe-a", "probe", "a", labels, 1 - scores),
        _scored_run("zeroshot-b", "zeroshot", "b", labels, scores, np.maximum(scores, 1 - scores)),
    ]
    roc = figures.roc_figure(runs)
    titles = [a.text for a in roc.layout.annotations]
    assert titles == ["a · zero-shot", "a · probe", "b · zero-shot"]
    curves_drawn = [t for t in roc.data if t.showlegend is not False]
    assert [t.name.split(" · AUROC")[0] for t in curves_drawn] == ["demo:clip · sound · test"] * 3
    auroc = runs[0].run.metric("auroc")
    assert f"AUROC {auroc.value:.3f} [{auroc.lo:.3f}, {auroc.hi:.3f}]" in curves_drawn[0].name
    assert curves_drawn[2].name.endswith("on top-1 prob.")
    assert len({t.legend for t in curves_drawn}) == 3  # each panel its own legend
    expected = roc_curve(labels, np.maximum(scores, 1 - scores), drop_intermediate=False)
    assert np.allclose(curves_drawn[2].x, expected[0])  # ROC on the score the run's AUC is on
    dots = [t for t in roc.data if t.mode == "markers"]
    point = runs[0].point()
    assert (dots[0].x[0], dots[0].y[0]) == (1 - point.specificity, point.sensitivity)
    moved = [t for t in figures.roc_figure(runs, threshold=0.9).data if t.mode == "markers"][0]
    assert moved.y[0] == pytest.approx(np.mean(scores[labels == 1] >= 0.9))
    assert len(figures.pr_figure(runs).layout.annotations) == 3
    calibration = [t for t in figures.calibration_figure(runs).data if t.mode == "lines+markers"]
    assert np.allclose(calibration[0].x, curves.calibration_curve(labels, scores)["predicted"])
    matrix = figures.confusion_figure(runs[0].point(), ("normal", "pneumonia")).data[0]
    assert list(matrix.x) == ["predicted normal", "predicted pneumonia"]
    assert np.array_equal(np.asarray(matrix.z), runs[0].point().matrix())
