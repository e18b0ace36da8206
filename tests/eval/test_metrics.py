"""Every metric against scikit-learn or its formula, and the undefined cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from pedclip.eval import metrics as m


def _data(seed: int, n: int = 300, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    s = np.clip(0.5 * y + rng.normal(0.3, 0.25, n), 0, 1)
    if ties:
        s = np.round(s, 1)
    p = (s >= 0.5).astype(int)
    return y, s, p


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ties", [False, True])
def test_metrics_match_sklearn(seed, ties):
    y, s, p = _data(seed, ties=ties)
    got = m.binary_metrics(y, s, p)
    tn, fp, fn, tp = skm.confusion_matrix(y, p).ravel()
    assert got["accuracy"].value == pytest.approx(skm.accuracy_score(y, p))
    assert got["precision"].value == pytest.approx(skm.precision_score(y, p))
    assert got["recall"].value == pytest.approx(skm.recall_score(y, p))
    assert got["specificity"].value == pytest.approx(tn / (tn + fp))
    assert got["f1"].value == pytest.approx(skm.f1_score(y, p))
    assert got["auroc"].value == pytest.approx(skm.roc_auc_score(y, s))
    assert got["auprc"].value == pytest.approx(skm.average_precision_score(y, s))
    assert got["brier"].value == pytest.approx(skm.brier_score_loss(y, s))
    fpr, tpr, _ = skm.roc_curve(y, s)
    assert got["sens_at_spec"].value == pytest.approx(tpr[(1 - fpr) >= 0.9].max())


def test_ece_formula():
    y = np.array([0, 1, 1, 0, 1])
    s = np.array([0.05, 0.15, 0.55, 0.58, 0.95])
    # bins: [0.0-0.1): {0.05, y0}; [0.1-0.2): {0.15, y1}; [0.5-0.6): {0.55 y1, 0.58 y0}; [0.9-1]: {0.95 y1}
    expected = (1 * 0.05 + 1 * 0.85 + 2 * abs(0.565 - 0.5) + 1 * 0.05) / 5
    assert m.ece(y, s).value == pytest.approx(expected)


def test_roc_points_and_youden_match_sklearn():
    y, s, _ = _data(4, ties=True)
    fpr, tpr, thr = m.roc_points(y, s)
    sk_fpr, sk_tpr, sk_thr = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_allclose(thr[1:], sk_thr[1:])
    t = m.youden_threshold(y, s)
    j = sk_tpr - sk_fpr
    assert t == pytest.approx(sk_thr[1:][np.argmax(j[1:])])


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_is_undefined_with_reason(label):
    y = np.full(20, label)
    s = np.linspace(0, 1, 20)
    got = m.binary_metrics(y, s, (s >= 0.5).astype(int))
    for name in ("auroc", "sens_at_spec"):
        assert got[name].value is None and "one class" in got[name].reason
    assert got["accuracy"].value == pytest.approx(0.5)
    missing = "recall" if label == 0 else "specificity"
    assert got[missing].value is None and got[missing].reason
    assert m.youden_threshold(y, s) is None


def test_no_predicted_positive_and_no_cases():
    y = np.array([0, 1, 1])
    got = m.precision(y, np.zeros(3, int))
    assert got.value is None and "predicted positive" in got.reason
    empty = m.binary_metrics(np.array([]), np.array([]), np.array([]))
    assert all(v.value is None and v.reason == "no cases" for v in empty.values())


def test_metric_format_and_roundtrip():
    metric = m.Metric(0.5, lo=0.4, hi=0.6)
    assert metric.format(2) == "0.50 [0.40-0.60]"
    assert m.Metric.from_dict(metric.as_dict()) == metric
    assert "undefined" in m.undefined("no cases").format()
