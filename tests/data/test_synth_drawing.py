"""The synthetic drawing: anatomy proportions, findings where they are recorded, difficulty, and the
vectorised helpers checked against naive references."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pedclip.data.synth_anatomy import RAYS, Pose, axes, draw_chest, heart, lung, pseudo_angle_bin
from pedclip.data.synth_findings import LOBE_CENTRES, Finding, draw_finding
from pedclip.data.synth_render import gaussian_blur, render_film
from pedclip.data.synth_sites import SITES, plan_site

UPRIGHT = Pose(angle_deg=0.0, zoom=1.0, shift_u=0.0, shift_v=0.0, inspiration=0.0, arms=False)


def measured_ctr(anatomy, size: int = 400) -> float:
    """Widest heart shadow over the widest span of the two lungs, read off the drawn masks."""
    u, v = axes(size, size, UPRIGHT)
    cardiac = heart(u, v, anatomy, UPRIGHT) > 0.5
    lungs = (lung(u, v, anatomy, UPRIGHT, -1).mask > 0.5) | (lung(u, v, anatomy, UPRIGHT, +1).mask > 0.5)

    def widest(mask: np.ndarray) -> float:
        columns = np.where(mask.any(axis=0))[0]
        return float(u[0, columns[-1]] - u[0, columns[0]])

    return widest(cardiac) / widest(lungs)


@pytest.mark.parametrize(
    ("site", "low", "high"), [("peds-a", 0.5, 0.6), ("peds-b", 0.5, 0.6), ("adult", 0.4, 0.5)]
)
def test_heart_is_sized_as_in_a_child_or_an_adult(site: str, low: float, high: float) -> None:
    plans = plan_site(SITES[site], seed=0, n=40, size=64)
    patients = {p.patient.patient_id: p.patient for p in plans if p.patient.finding.kind != "cardiomegaly"}
    measured = [measured_ctr(p.anatomy) for p in list(patients.values())[:12]]
    recorded = [p.anatomy.ctr for p in list(patients.values())[:12]]
    assert low <= np.median(measured) <= high
    np.testing.assert_allclose(measured, recorded, atol=0.03)


def centroid(density: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    weights = np.clip(density, 0, None)
    total = weights.sum()
    return float((weights * u).sum() / total), float((weights * v).sum() / total)


@pytest.mark.parametrize(
    ("side", "lobe", "pattern"),
    [("right", "upper", "lobar"), ("right", "middle", "patchy"), ("right", "lower", "patchy"),
     ("left", "upper", "round"), ("left", "lingula", "lobar"), ("left", "lower", "lobar")],
)  # fmt: skip
def test_consolidation_is_drawn_in_the_recorded_lobe_and_side(side: str, lobe: str, pattern: str) -> None:
    anatomy = plan_site(SITES["peds-a"], seed=0, n=1, size=64)[0].patient.anatomy
    u, v = axes(200, 200, UPRIGHT)
    chest = draw_chest(u, v, anatomy, UPRIGHT, np.random.default_rng(0))
    (t_lo, t_hi), (s_lo, s_hi) = LOBE_CENTRES[lobe]
    finding = Finding("consolidation", side, lobe, pattern, 0.8, (t_lo + t_hi) / 2, (s_lo + s_hi) / 2, 0.1)
    density = draw_finding(chest, finding, np.random.default_rng(1))
    cu, cv = centroid(density, np.broadcast_to(u, density.shape), np.broadcast_to(v, density.shape))
    hilum_v = chest.right.hilum[1]
    assert (cu < 0) == (side == "right")  # the patient's right is the image's left
    if lobe == "upper":
        assert cv < hilum_v
    elif lobe == "lower":
        assert cv > hilum_v and abs(cu) > 0.15
    else:
        assert cv > hilum_v and abs(cu) < 0.25  # against the heart border
    assert density.max() > 0.1


def test_interstitial_opacity_is_perihilar_and_heavier_on_the_named_side() -> None:
    anatomy = plan_site(SITES["peds-a"], seed=0, n=1, size=64)[0].patient.anatomy
    u, v = axes(200, 200, UPRIGHT)
    chest = draw_chest(u, v, anatomy, UPRIGHT, np.random.default_rng(0))
    finding = Finding("interstitial", "left", "", "perihilar", 0.8, extent=0.1)
    density = draw_finding(chest, finding, np.random.default_rng(1))
    left, right = density[:, 100:].sum(), density[:, :100].sum()
    assert left > 1.3 * right > 0
    near = density * (chest.left.radius < 0.12)
    far = density * (chest.left.radius > 0.25) * (chest.left.mask > 0.5)
    assert near.sum() / max((chest.left.radius < 0.12).sum(), 1) > far.sum() / max(far.astype(bool).sum(), 1)


def lung_field_mean(image: np.ndarray) -> float:
    """Mean grey over two fixed boxes on the mid lung fields, relative to the film's mean."""
    h, w = image.shape
    s = min(h, w)
    y0, y1 = int(h / 2 - 0.22 * s), int(h / 2 + 0.08 * s)
    boxes = [
        image[y0:y1, int(w / 2 + x0 * s) : int(w / 2 + x1 * s)].mean()
        for x0, x1 in ((-0.3, -0.1), (0.1, 0.3))
    ]
    return float(np.mean(boxes) / image.mean())


@pytest.mark.parametrize("site", ["peds-a", "peds-b"])
def test_classes_are_separable_by_a_simple_statistic_but_not_perfectly(site: str) -> None:
    plans = plan_site(SITES[site], seed=0, n=200, size=64)
    scores = [lung_field_mean(np.asarray(render_film(p, SITES[site]), dtype=np.float32)) for p in plans]
    labels = [p.patient.finding.label for p in plans]
    assert 0.6 < roc_auc_score(labels, scores) < 0.99


def test_lungs_are_dark_and_the_heart_bright() -> None:
    plan = plan_site(SITES["adult"], seed=0, n=1, size=128)[0]
    plan = replace(plan, pose=UPRIGHT, collimation=(0, 0, 0, 0), marker="", label_text="")
    image = np.asarray(render_film(plan, SITES["adult"]), dtype=np.float32)
    u, v = axes(plan.height, plan.width, UPRIGHT)
    chest = draw_chest(u, v, plan.patient.anatomy, UPRIGHT, np.random.default_rng(0))
    lungs = np.maximum(chest.right.mask, chest.left.mask) > 0.9
    assert image[lungs].mean() + 60 < image[chest.heart > 0.9].mean()


def test_same_plan_same_pixels() -> None:
    plan = plan_site(SITES["peds-b"], seed=9, n=1, size=64)[0]
    first = np.asarray(render_film(plan, SITES["peds-b"]))
    assert np.array_equal(first, np.asarray(render_film(plan, SITES["peds-b"])))


def test_gaussian_blur_matches_a_naive_convolution() -> None:
    image = np.random.default_rng(0).random((9, 11)).astype(np.float32)
    sigma, radius = 1.2, 3
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel = np.outer(taps, taps) / taps.sum() ** 2
    padded = np.pad(image, radius, mode="edge")
    naive = np.zeros_like(image)
    for y in range(image.shape[0]):
        for x in range(image.shape[1]):
            naive[y, x] = (padded[y : y + 2 * radius + 1, x : x + 2 * radius + 1] * kernel).sum()
    np.testing.assert_allclose(gaussian_blur(image, sigma), naive, atol=1e-5)


def test_pseudo_angle_bins_follow_the_true_angle() -> None:
    angles = np.linspace(-np.pi + 1e-3, np.pi - 1e-3, 2000)
    du, dv = np.cos(angles), np.sin(angles)
    bins = pseudo_angle_bin(du, dv)
    order = np.argsort(np.mod(np.arctan2(dv, du), 2 * np.pi))
    steps = np.diff(bins[order])
    assert bins.min() >= 0 and bins.max() < RAYS
    assert (steps >= 0).sum() >= len(steps) - 1  # monotonic but for one wrap-around
