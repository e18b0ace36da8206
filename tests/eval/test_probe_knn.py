"""Linear probe, few-shot and kNN over cached vectors (no model needed: only a fingerprint)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from pedclip.errors import PedclipError
from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.knn import KnnConfig, exact_neighbors, knn_eval, knn_scores
from pedclip.eval.probe import LinearProbe, ProbeConfig, fewshot_eval, probe_eval
from tests.eval.conftest import add_dataset

ENC = SimpleNamespace(fingerprint="fp-probe", spec="test:probe", logit_scale=10.0)
FAST = BootstrapConfig(n_resamples=30)


@pytest.fixture
def two_sites(store):
    direction = np.random.default_rng(9).normal(size=16)
    add_dataset(store, "A", ENC.fingerprint, direction, n=160, seed=1, signal=0.4)
    add_dataset(store, "B", ENC.fingerprint, direction, n=80, seed=2, signal=0.4)
    return store


def test_probe_chooses_c_by_validation_auroc():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6))
    y = (X[:, 0] + 0.8 * rng.normal(size=200) > 0).astype(int)
    Xv = rng.normal(size=(80, 6))
    yv = (Xv[:, 0] + 0.8 * rng.normal(size=80) > 0).astype(int)
    Cs = (1e-4, 1e-2, 1.0)
    probe = LinearProbe(Cs).fit(X, y, Xv, yv)
    manual = [
        roc_auc_score(yv, LogisticRegression(C=C, max_iter=1000).fit(X, y).predict_proba(Xv)[:, 1])
        for C in Cs
    ]
    assert [r["auroc"] for r in probe.sweep_] == pytest.approx(manual)
    assert Cs[int(np.argmax(manual))] == probe.C_
    expected = LogisticRegression(C=probe.C_, max_iter=1000).fit(X, y).predict_proba(Xv)[:, 1]
    np.testing.assert_allclose(probe.positive_score(Xv), expected, rtol=1e-3)  # float32 features
    cv = LinearProbe(Cs).fit(X, y)
    assert "CV" in cv.selection_ and cv.C_ in Cs


def test_probe_needs_two_classes():
    with pytest.raises(PedclipError, match="both classes"):
        LinearProbe().fit(np.zeros((4, 2)), np.ones(4))


def test_probe_eval_same_and_cross_dataset(two_sites):
    config = ProbeConfig(Cs=(0.1, 1.0, 10.0), bootstrap=FAST)
    same = probe_eval(two_sites, ENC, "A", None, config)
    assert same.run["train_dataset"] == same.run["eval_dataset"] == "A"
    assert set(same.predictions["split"]) == {"test"} and same.metrics["auroc"].value > 0.8
    cross = probe_eval(two_sites, ENC, "A", "B", config)
    assert cross.run["eval_dataset"] == "B" and set(cross.predictions["dataset"]) == {"B"}
    y, s = cross.predictions["label"], cross.predictions["score"]
    assert cross.metrics["auroc"].value == pytest.approx(roc_auc_score(y, s))
    assert cross.threshold.rule.startswith("youden on val")


def test_fewshot_averages_seeds(two_sites):
    config = ProbeConfig(Cs=(1.0,), seeds=(0, 1, 2), bootstrap=FAST)
    result = fewshot_eval(two_sites, ENC, "A", "B", k=4, config=config)
    per_seed = result.run["config"]["per_seed"]["auroc"]
    assert len(per_seed) == 3 and len(set(per_seed)) > 1
    assert result.metrics["auroc"].value == pytest.approx(np.mean(per_seed))
    with pytest.raises(PedclipError, match="shots per class"):
        fewshot_eval(two_sites, ENC, "A", "B", k=500, config=config)


def test_exact_neighbors_against_full_sort():
    rng = np.random.default_rng(3)
    ref, q = rng.normal(size=(50, 8)), rng.normal(size=(7, 8))
    idx, sims = exact_neighbors(ref, q, 5)
    full = np.argsort(-(q @ ref.T), axis=1)[:, :5]
    np.testing.assert_array_equal(idx, full)
    np.testing.assert_allclose(sims, np.take_along_axis(q @ ref.T, full, 1), rtol=1e-5)
    labels = np.array([0, 1] * 25)
    np.testing.assert_allclose(knn_scores(labels, idx, sims, weighted=False), labels[idx].mean(1))


def test_knn_index_and_exact_agree(two_sites):
    exact = knn_eval(two_sites, ENC, "A", None, KnnConfig(k=5, use_index=False, bootstrap=FAST))
    indexed = knn_eval(two_sites, ENC, "A", None, KnnConfig(k=5, use_index=True, bootstrap=FAST))
    assert exact.run["config"]["neighbors"] == "exact"
    np.testing.assert_allclose(indexed.predictions["score"], exact.predictions["score"], rtol=1e-5)
    assert exact.metrics["auroc"].value > 0.75
    cross = knn_eval(two_sites, ENC, "A", "B", KnnConfig(k=5, bootstrap=FAST))
    assert cross.run["config"]["neighbors"] == "exact" and len(cross.predictions) > 0
