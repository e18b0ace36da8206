"""Findings drawn into a chest: lobar, patchy or round consolidation in a lobe; perihilar or diffuse
interstitial opacity; pleural effusion. Each is a density map added to the anatomy (vectorised numpy).

Lobes are placed in each lung's own frame (t: 0 apex .. 1 base, s: 0 medial .. 1 lateral), which is
how they project on a frontal film: upper lobes above the horizontal fissure, the right middle lobe and
the lingula against the heart border (so they blur it: the silhouette sign), lower lobes laterally at
the base against the diaphragm.

Difficulty (chosen by eye on contact sheets, not tuned to hit a score): a severe consolidation adds
about as much density as the lung's air takes away (the lobe turns soft-tissue white), a mild one a
third of that; severities are uniform over each site's range, so some films are obvious and some
subtle. Fluid replaces air, so opacity behind the heart shows less. Normal films carry their own
look-alikes: vessel markings, shallow inspiration crowding the bases, thymus, breast shadows,
rotation, exposure and noise that differ by site.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pedclip.data.synth_anatomy import Chest, Lung, radial_streaks, ramp, smooth_noise

Array = np.ndarray

FINDINGS = ("normal", "consolidation", "interstitial", "cardiomegaly", "effusion")
PNEUMONIA = ("consolidation", "interstitial")  # the findings that make a case positive (label 1)
LUNG_HEIGHT, LUNG_WIDTH = 0.62, 0.30  # typical lung size, to turn (t, s) offsets into distances

# Where each lobe's opacity is centred, as (t range, s range) in the lung's frame.
LOBE_CENTRES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "upper": ((0.15, 0.38), (0.3, 0.75)),
    "middle": ((0.58, 0.78), (0.08, 0.4)),
    "lingula": ((0.58, 0.8), (0.08, 0.35)),
    "lower": ((0.58, 0.78), (0.4, 0.85)),  # above the dome, lateral to the heart
}
FISSURE_T = 0.48  # the horizontal fissure, as t


@dataclass(frozen=True)
class Finding:
    """What is drawn, where, and how strongly; fixed per patient so follow-up films agree."""

    kind: str  # one of FINDINGS
    side: str = ""  # right | left | bilateral | "" (normal)
    lobe: str = ""  # upper | middle | lingula | lower | "" (interstitial, effusion, normal)
    pattern: str = ""  # lobar | patchy | round | perihilar | diffuse | "" (normal)
    severity: float = 0.0  # 0..1: opacity and extent
    t0: float = 0.5  # centre in the lung frame
    s0: float = 0.5
    extent: float = 0.1  # radius, in image-short-side units

    @property
    def label(self) -> int:
        return int(self.kind in PNEUMONIA)


def draw_finding(chest: Chest, finding: Finding, rng: np.random.Generator) -> Array:
    """The finding's density, to add to the chest's."""
    if finding.kind == "consolidation":
        return consolidation(chest, finding, rng)
    if finding.kind == "interstitial":
        return interstitial(chest, finding, rng)
    if finding.kind == "effusion":
        return effusion(chest, finding)
    return np.zeros_like(chest.density)


def lungs_of(chest: Chest, side: str) -> tuple[Lung, ...]:
    return {"right": (chest.right,), "left": (chest.left,)}.get(side, (chest.right, chest.left))


def lobe_region(one: Lung, lobe: str) -> Array:
    """Soft mask of a lobe's projection inside a lung (sharp only at the horizontal fissure)."""
    t, s = one.t, one.s
    if lobe == "upper":
        edge = 0.012 if one.side < 0 else 0.16  # the left lung has no horizontal fissure
        return ramp((FISSURE_T + 0.02 - t) / edge)
    if lobe in ("middle", "lingula"):
        top = ramp((t - FISSURE_T) / (0.012 if lobe == "middle" else 0.08))
        return top * ramp((0.7 - s) / 0.3) * ramp((1.0 - t) / 0.15)
    return ramp((t - 0.52) / 0.12) * ramp((s - 0.1) / 0.25)


def consolidation(chest: Chest, f: Finding, rng: np.random.Generator) -> Array:
    """Airspace opacity in one lobe: dense and lobe-filling (lobar), blotchy (patchy) or a ball (round)."""
    one = lungs_of(chest, f.side)[0]
    distance = np.sqrt(((one.t - f.t0) * LUNG_HEIGHT) ** 2 + ((one.s - f.s0) * LUNG_WIDTH) ** 2)
    strength = 0.15 + 0.25 * f.severity
    mottled = smooth_noise(rng, distance.shape, 22)
    if f.pattern == "round":
        shape = ramp((f.extent - distance) / (0.35 * f.extent)) * (0.85 + 0.15 * mottled)
    elif f.pattern == "lobar":
        reach = ramp((2.6 * f.extent - distance) / (0.8 * f.extent))
        shape = lobe_region(one, f.lobe) * reach * (0.8 + 0.2 * mottled)
    else:
        blob = np.exp(-((distance / (1.3 * f.extent)) ** 2))
        shape = blob * ramp(0.75 + 0.5 * mottled) * np.sqrt(lobe_region(one, f.lobe))
    bronchograms = radial_streaks(one, rng, density=0.25, reach=0.25)
    # fluid replaces air: less change where the heart hides the lung
    where = one.mask * (1.0 - 0.6 * chest.heart)
    return strength * where * np.clip(shape, 0.0, 1.0) * (1.0 - 0.35 * np.clip(bronchograms, 0, 1))


def interstitial(chest: Chest, f: Finding, rng: np.random.Generator) -> Array:
    """Streaky peribronchial and reticular opacity, around the hila (perihilar) or through both lungs (diffuse)."""
    out = np.zeros_like(chest.density)
    reticular = np.clip(smooth_noise(rng, out.shape, 45), 0.0, None)
    for one in (chest.right, chest.left):
        weight = 1.0 if f.side in ("bilateral", "right" if one.side < 0 else "left") else 0.55
        r = one.radius
        if f.pattern == "diffuse":
            where = 0.6 + 0.4 * np.exp(-((r / 0.3) ** 2))
        else:
            where = np.exp(-((r / (0.1 + f.extent)) ** 2))
        streaks = radial_streaks(one, rng, density=0.6, reach=0.3, width=3)
        texture = 0.45 + 0.8 * np.clip(streaks, 0, 1.5) + 0.3 * reticular
        out += weight * one.mask * where * texture
    return (0.12 + 0.16 * f.severity) * out * (1.0 - 0.6 * chest.heart)


def effusion(chest: Chest, f: Finding) -> Array:
    """Pleural fluid layering at the base: blunts the costophrenic angle with a meniscus rising laterally."""
    out = np.zeros_like(chest.density)
    for one in lungs_of(chest, f.side):
        level = 1.0 - (0.08 + 0.22 * f.severity) * (0.45 + 0.55 * np.clip(one.s, 0.0, 1.0) ** 2)
        out += one.mask * ramp((one.t - level) / 0.04)
    return 0.26 * out
