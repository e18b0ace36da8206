"""Vectorised bootstrap against a naive loop over the same draws."""

from __future__ import annotations

import numpy as np
import pytest

from pedclip.eval import bootstrap as b
from pedclip.eval import metrics as m


def _data(seed: int, n: int = 120):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.35).astype(int)
    s = np.round(np.clip(0.4 * y + rng.normal(0.35, 0.2, n), 0, 1), 2)
    return y, s, (s >= 0.5).astype(int)


def _naive(y, s, p, units: b.Units, draws: np.ndarray) -> dict[str, np.ndarray]:
    members = [np.flatnonzero(units.unit_of_case == u) for u in range(units.n_units)]
    out: dict[str, list] = {name: [] for name in m.ALL_METRICS}
    for row in draws:
        idx = np.concatenate([members[u] for u in row])
        for name, metric in m.binary_metrics(y[idx], s[idx], p[idx]).items():
            out[name].append(np.nan if metric.value is None else metric.value)
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("patients", [False, True])
def test_vectorised_equals_naive_loop(patients):
    y, s, p = _data(0)
    ids = np.array([f"p{i // 3}" for i in range(len(y))]) if patients else None
    units = b.resampling_units(ids, len(y))
    assert units.kind == ("patient" if patients else "case")
    draws = b.resample_units(units.n_units, 60, seed=7)
    fast = b.weighted_metrics(b.case_weights(draws, units), y, s, p)
    slow = _naive(y, s, p, units, draws)
    for name in m.ALL_METRICS:
        np.testing.assert_allclose(fast[name], slow[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_unit_weights_give_point_estimates():
    y, s, p = _data(3)
    fast = b.weighted_metrics(np.ones((1, len(y))), y, s, p)
    point = m.binary_metrics(y, s, p)
    for name in m.ALL_METRICS:
        assert fast[name][0] == pytest.approx(point[name].value), name


def test_ci_seeded_and_brackets_point():
    y, s, p = _data(1, n=300)
    cfg = b.BootstrapConfig(n_resamples=300, seed=5)
    first, units = b.metrics_with_ci(y, s, p, config=cfg)
    second, _ = b.metrics_with_ci(y, s, p, config=cfg)
    assert first == second and units.kind == "case"
    other, _ = b.metrics_with_ci(y, s, p, config=b.BootstrapConfig(n_resamples=300, seed=6))
    assert other["auroc"].lo != first["auroc"].lo
    for metric in first.values():
        assert metric.lo <= metric.value <= metric.hi


def test_ci_percentiles_equal_naive():
    y, s, p = _data(2)
    cfg = b.BootstrapConfig(n_resamples=80, seed=11)
    got, units = b.metrics_with_ci(y, s, p, config=cfg)
    slow = _naive(y, s, p, units, b.resample_units(units.n_units, 80, 11))
    for name in m.ALL_METRICS:
        vals = slow[name][np.isfinite(slow[name])]
        lo, hi = np.percentile(vals, [2.5, 97.5])
        assert got[name].lo == pytest.approx(lo) and got[name].hi == pytest.approx(hi), name


def test_missing_patient_ids_fall_back_to_cases():
    ids = np.array(["a", None, "b"], dtype=object)
    assert b.resampling_units(ids, 3).kind == "case"


def test_one_class_ci_stays_undefined():
    y = np.ones(30, int)
    s = np.linspace(0, 1, 30)
    got, _ = b.metrics_with_ci(y, s, (s > 0.5).astype(int), config=b.BootstrapConfig(n_resamples=50))
    assert got["auroc"].value is None and got["auroc"].lo is None
    assert got["recall"].lo is not None
