"""Paired comparison: fast DeLong against direct and independent implementations, McNemar, bootstrap, Holm."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pedclip.eval import paired
from pedclip.eval.bootstrap import BootstrapConfig


def _two_runs(seed: int, n: int = 90, ties: bool = True):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    a = 0.8 * y + rng.normal(0, 0.5, n)
    b = 0.5 * y + 0.5 * a + rng.normal(0, 0.5, n)  # correlated with A, as two models on the same films
    if ties:  # coarse scores: many ties within and across classes
        a, b = np.round(a, 1), np.round(b, 1)
    return y, a, b


def _direct_components(y, score):
    """DeLong's structural components by the definition: psi over every (positive, negative) pair."""
    pos, neg = score[y == 1], score[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_components_equal_direct(seed):
    y, a, b = _two_runs(seed)
    aucs, v10, v01 = paired.delong_components(y, np.vstack([a, b]))
    for r, score in enumerate((a, b)):
        auc, d10, d01 = _direct_components(y, score)
        assert aucs[r] == pytest.approx(auc, abs=1e-12)
        np.testing.assert_allclose(v10[r], d10, atol=1e-10)
        np.testing.assert_allclose(v01[r], d01, atol=1e-10)


def _independent_delong(y, a, b):
    """The pROC-style DeLong test written independently: placements from scipy's rankdata, scipy's normal."""
    m, n = int((y == 1).sum()), int((y == 0).sum())
    v10, v01 = [], []
    for s in (a, b):
        ranks_all = stats.rankdata(s)
        ranks_pos = stats.rankdata(s[y == 1])
        ranks_neg = stats.rankdata(s[y == 0])
        v10.append((ranks_all[y == 1] - ranks_pos) / n)  # negatives below each positive
        v01.append(1 - (ranks_all[y == 0] - ranks_neg) / m)  # positives above each negative
    aucs = [float(np.mean(v)) for v in v10]
    c = np.array([1.0, -1.0])
    cov10 = np.cov(np.array(v10))
    cov01 = np.cov(np.array(v01))
    var = c @ cov10 @ c / m + c @ cov01 @ c / n
    z = (aucs[0] - aucs[1]) / math.sqrt(var)
    return aucs, var, z, 2 * stats.norm.sf(abs(z))


@pytest.mark.parametrize("seed", [0, 3, 4])
def test_delong_matches_independent_implementation(seed):
    y, a, b = _two_runs(seed)
    got = paired.delong_test(y, a, b)
    aucs, var, z, p = _independent_delong(y, a, b)
    assert (got.auc_a, got.auc_b) == pytest.approx(tuple(aucs), abs=1e-12)
    assert got.variance == pytest.approx(var, abs=1e-12)
    assert got.z == pytest.approx(z, abs=1e-6)
    assert got.p == pytest.approx(p, abs=1e-6)


def test_delong_detects_a_real_difference_and_not_a_copy():
    y, a, _ = _two_runs(5, n=400, ties=False)
    noise = np.random.default_rng(9).normal(0, 3, len(y))
    assert paired.delong_test(y, a, noise).p < 1e-6
    same = paired.delong_test(y, a, a)
    assert same.delta == 0 and same.p == 1.0 and same.z is None


def test_delong_refuses_too_few_of_a_class():
    with pytest.raises(ValueError, match="at least 2 positives"):
        paired.delong_test(np.array([1, 0, 0, 0]), np.arange(4.0), np.arange(4.0))


def test_mcnemar_exact_hand_example():
    # 1 pair favours A, 6 favour B: P(X <= 1 | Bin(7, 1/2)) = (1 + 7) / 128, two-sided 0.125
    assert paired.mcnemar_exact(1, 6) == pytest.approx(16 / 128)
    assert paired.mcnemar_exact(6, 1) == pytest.approx(16 / 128)
    assert paired.mcnemar_exact(0, 0) == 1.0
    assert paired.mcnemar_exact(3, 3) == 1.0
    assert paired.mcnemar_exact(0, 10) == pytest.approx(2 / 1024)
    assert paired.mcnemar_exact(2, 9) == pytest.approx(stats.binomtest(2, 11, 0.5).pvalue)


def test_discordant_pairs_and_decision_tests():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    pred_a = np.array([1, 1, 1, 0, 0, 0, 1, 1])  # sens 3/4, spec 2/4
    pred_b = np.array([1, 0, 0, 0, 0, 0, 0, 0])  # sens 1/4, spec 4/4
    data = paired.PairedArrays(y, pred_a.astype(float), pred_a, pred_b.astype(float), pred_b)
    out = paired.compare_paired(data, BootstrapConfig(n_resamples=0))
    assert (out.sensitivity.a.value, out.sensitivity.b.value) == (0.75, 0.25)
    assert (out.sensitivity.a_only, out.sensitivity.b_only) == (2, 0)
    assert (out.specificity.a_only, out.specificity.b_only) == (0, 2)
    assert out.sensitivity.mcnemar_p == pytest.approx(0.5)
    assert out.accuracy_mcnemar_p == pytest.approx(paired.mcnemar_exact(2, 2))


def test_paired_bootstrap_reproducible_by_seed_and_brackets_point():
    y, a, b = _two_runs(7, n=200)
    ids = np.array([f"p{i // 2}" for i in range(len(y))])
    data = paired.PairedArrays(y, a, (a > 0.4).astype(int), b, (b > 0.4).astype(int), ids)
    first = paired.compare_paired(data, BootstrapConfig(n_resamples=300, seed=11))
    again = paired.compare_paired(data, BootstrapConfig(n_resamples=300, seed=11))
    other = paired.compare_paired(data, BootstrapConfig(n_resamples=300, seed=12))
    assert first.as_dict() == again.as_dict()
    assert first.as_dict()["ci"] != other.as_dict()["ci"]
    delta = first.deltas["auroc"]
    assert first.resampled == "patient"
    assert delta.lo <= delta.value <= delta.hi
    assert delta.value == pytest.approx(first.a["auroc"].value - first.b["auroc"].value)


def test_seed_summary_mean_ci_and_counts():
    y, a, b = _two_runs(8, n=160, ties=False)
    rng = np.random.default_rng(0)
    seeds_a = np.stack([a + rng.normal(0, 0.2, len(y)) for _ in range(3)])
    seeds_b = np.stack([b + rng.normal(0, 0.2, len(y)) for _ in range(3)])
    cfg = BootstrapConfig(n_resamples=200, seed=3)
    deltas = np.array([paired.delong_test(y, sa, sb).delta for sa, sb in zip(seeds_a, seeds_b, strict=True)])
    samples = paired.seed_auroc_samples(y, seeds_a, None, cfg) - paired.seed_auroc_samples(
        y, seeds_b, None, cfg
    )
    out = paired.summarise_seeds(deltas, samples, cfg)
    assert out.mean == pytest.approx(deltas.mean()) and out.sd == pytest.approx(np.std(deltas, ddof=1))
    assert out.n_above_zero + out.n_below_zero == 3
    assert out.lo <= out.mean <= out.hi and 0 <= out.p <= 1
    assert paired.summarise_seeds(deltas, samples, cfg) == out  # reproducible


def test_holm_adjustment():
    # p sorted 0.01, 0.02, 0.04 over 3 tests: 0.03, 0.04, 0.04 (monotone)
    assert paired.holm_adjust([0.04, None, 0.01, 0.02]) == pytest.approx([0.04, None, 0.03, 0.04])
    assert paired.holm_adjust([0.5, 0.6]) == [1.0, 1.0]
    assert paired.holm_adjust([]) == []
