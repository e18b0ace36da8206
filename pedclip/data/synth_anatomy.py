"""Chest anatomy as soft-edged density maps on a coordinate grid (vectorised numpy, no pixel loops).

Coordinates: `u` runs left to right across the image (negative u = image left = the patient's right, as
on a PA film), `v` runs top to bottom; one unit is the image's shorter side and (0, 0) is the middle of
the thorax. `u` is a row vector (1, W) and `v` a column vector (H, 1): terms that depend on one axis only
stay 1-D and broadcast, which keeps a 256-px film to a few milliseconds. The chest is drawn upright;
the film's rotation is applied afterwards to the whole density map. Densities are in "brightness"
units: 0 is air, larger is whiter on the film.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

EDGE = 0.010  # soft edge width of every organ, in image-short-side units (~2.5 px at 256 px)
RAYS = 360  # angular bins of the streak textures radiating from the hila

Array = np.ndarray


@dataclass(frozen=True)
class Anatomy:
    """One patient's body: what stays the same across that patient's films."""

    ctr: float  # cardiothoracic ratio: heart width / inner thoracic width
    lung_top: float  # v of the lung apices
    lung_base: float  # v of the costophrenic angles
    lung_lateral: float  # half-width of the thorax at the lung bases
    dome_right: float  # v of the top of the right hemidiaphragm (the left one sits lower)
    rib_slope: float  # how steeply posterior ribs fall laterally (children flatter, adults steeper)
    thymus: float  # widening of the upper mediastinum (infants), 0..1
    soft_tissue: float  # soft-tissue density of the chest wall (body habitus)
    breasts: bool  # adult female breast shadows over the lung bases
    stomach_bubble: float  # size of the gastric air bubble under the left dome, 0 = none


@dataclass(frozen=True)
class Pose:
    """One film's positioning: rotation, magnification, centring and depth of inspiration."""

    angle_deg: float  # applied to the finished density map (synth_render), not here
    zoom: float
    shift_u: float
    shift_v: float
    inspiration: float  # + = deeper breath (diaphragm lower), - = shallow (crowded bases)
    arms: bool  # arms beside the chest are in the field


@dataclass(frozen=True)
class Lung:
    """One lung's soft mask and its own frame: t (0 apex .. 1 base, a column) and s (0 medial .. 1 lateral),
    plus polar coordinates around its hilum for the textures that radiate from it."""

    mask: Array
    t: Array
    s: Array
    side: int  # -1 right lung (image left), +1 left lung (image right)
    hilum: tuple[float, float]
    radius: Array  # distance from the hilum
    ray: Array  # angular bin (0..RAYS-1) around the hilum, mirrored so both lungs share a texture layout


@dataclass(frozen=True)
class Chest:
    """The drawn anatomy: its total density and the frames findings are placed in."""

    density: Array
    right: Lung
    left: Lung
    u: Array
    v: Array
    heart: Array


def ramp(x: Array) -> Array:
    """x clipped to [0, 1]: 0 outside, 1 inside, linear across one edge width (the detector blur smooths it)."""
    return np.clip(x, 0.0, 1.0)


def bump(x: Array) -> Array:
    """A smooth bump, 1 at x = 0 and 0 for |x| >= 1 (a cheap stand-in for a Gaussian)."""
    inside = np.clip(1.0 - x * x, 0.0, 1.0)
    return inside * inside


def axes(height: int, width: int, pose: Pose, pad: int = 0) -> tuple[Array, Array]:
    """Anatomy coordinates of the pixel centres of a (height + 2 pad, width + 2 pad) canvas after the film's
    zoom and centring: u as a (1, W) row, v as an (H, 1) column."""
    short = float(min(height, width))
    x = (np.arange(width + 2 * pad, dtype=np.float32) + 0.5 - pad - width / 2) / short
    y = (np.arange(height + 2 * pad, dtype=np.float32) + 0.5 - pad - height / 2) / short
    u = (x - pose.shift_u) / pose.zoom
    v = (y - pose.shift_v) / pose.zoom
    return u[None, :].astype(np.float32), v[:, None].astype(np.float32)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> Array:
    """Zero-mean, unit-scale smooth random field with about `cells` blobs across the longer side."""
    h, w = shape
    ch = max(2, round(cells * h / max(h, w)))
    cw = max(2, round(cells * w / max(h, w)))
    coarse = rng.standard_normal((ch, cw)).astype(np.float32)
    field = np.asarray(Image.fromarray(coarse, mode="F").resize((w, h), Image.BICUBIC), dtype=np.float32)
    # bicubic upsampling of white noise keeps about 0.8 of its spread; cheaper than measuring it
    return field * (1.25 / (float(coarse.std()) + 1e-6))


def lung(u: Array, v: Array, a: Anatomy, pose: Pose, side: int) -> Lung:
    """A lung: rounded apex, widest at the base, cut below by its diaphragm dome."""
    d = side * u
    top = a.lung_top
    base = a.lung_base + pose.inspiration + (0.012 if side > 0 else 0.0)
    dome = a.dome_right + pose.inspiration + (0.025 if side > 0 else 0.0)
    lateral = a.lung_lateral - (0.01 if side > 0 else 0.0)
    medial = 0.045 if side < 0 else 0.055
    apex = 0.15
    t = (v - top) / (base - top)
    tc = np.clip(t, 0.0, 1.0)
    outer = apex + (lateral - apex) * np.sin(np.float32(np.pi / 2) * np.minimum(tc / 0.8, 1.0)) ** 0.6
    inner = apex - (apex - medial) * np.minimum(tc / 0.3, 1.0) ** 0.5
    d_dome = medial + 0.45 * (lateral - medial)
    fall_lateral = (np.clip(d - d_dome, 0.0, None) / (lateral - d_dome)) ** 2 * (base - dome)
    fall_medial = (np.clip(d_dome - d, 0.0, None) / (d_dome - medial)) ** 2 * 0.35 * (base - dome)
    floor = dome + fall_lateral + fall_medial
    mask = ramp((d - inner) / EDGE) * ramp((outer - d) / EDGE) * ramp((floor - v) / EDGE) * ramp(t / 0.03)
    s = (d - inner) / np.maximum(outer - inner, 1e-3)
    hu, hv = side * (medial + 0.07), top + 0.47 * (base - top)
    du, dv = side * (u - hu), v - hv
    radius = np.sqrt(du * du + dv * dv)
    return Lung(mask=mask, t=t, s=s, side=side, hilum=(hu, hv), radius=radius, ray=pseudo_angle_bin(du, dv))


def pseudo_angle_bin(du: Array, dv: Array) -> Array:
    """Angular bin of (du, dv) from the 'diamond angle' (monotonic in the true angle, no arctan)."""
    ratio = du / (np.abs(du) + np.abs(dv) + 1e-9)  # -1..1 going round each half
    diamond = np.where(dv >= 0, 1.0 - ratio, 3.0 + ratio)  # 0..4 once round the circle
    return (diamond * (RAYS / 4.0)).astype(np.int32) % RAYS


def diaphragm_line(u: Array, a: Anatomy, pose: Pose) -> Array:
    """v of the diaphragm under every column (domes; the left one lower), for the abdomen below it."""
    d = np.abs(u)
    dome = a.dome_right + pose.inspiration + np.where(u > 0, 0.025, 0.0).astype(np.float32)
    base = a.lung_base + pose.inspiration + 0.03
    d_dome = 0.045 + 0.45 * (a.lung_lateral - 0.045)
    return dome + (np.clip(d - d_dome, 0.0, None) / (a.lung_lateral - d_dome)) ** 2 * (base - dome)


def ellipsoid(
    u: Array, v: Array, centre: tuple[float, float], radii: tuple[float, float], tilt: float
) -> Array:
    """Projected thickness of a tilted ellipsoid: a sharp border, thickest in the middle."""
    du, dv = u - centre[0], v - centre[1]
    c, s = float(np.cos(np.radians(tilt))), float(np.sin(np.radians(tilt)))
    r2 = ((c * du - s * dv) / radii[0]) ** 2 + ((s * du + c * dv) / radii[1]) ** 2
    border = ramp((1.0 - np.sqrt(r2)) * (min(radii) / EDGE))
    return border * (0.6 + 0.4 * np.sqrt(np.clip(1.0 - r2, 0.0, 1.0)))


def heart(u: Array, v: Array, a: Anatomy, pose: Pose) -> Array:
    """Cardiac silhouette, two thirds left of the midline and resting on the diaphragm: the left ventricle
    (a large tilted ellipsoid reaching the apex) and the right atrium (a smaller one on the right border)."""
    hw = a.ctr * a.lung_lateral  # half the cardiac width
    floor = a.dome_right + pose.inspiration + 0.05
    ventricle = ellipsoid(u, v, (0.6 * hw, floor - 0.45 * hw), (0.75 * hw, 0.62 * hw), -30.0)
    atrium = ellipsoid(u, v, (-0.22 * hw, floor - 0.42 * hw), (0.45 * hw, 0.55 * hw), 0.0)
    return np.maximum(ventricle, atrium)


def heart_top(a: Anatomy, pose: Pose) -> float:
    """v where the mediastinum meets the heart."""
    return a.dome_right + pose.inspiration + 0.05 - 1.05 * a.ctr * a.lung_lateral


def mediastinum(u: Array, v: Array, a: Anatomy, pose: Pose) -> Array:
    """Mediastinum from the thoracic inlet down into the heart, widened by a child's thymus (the 'sail')
    and, in adults, the aortic knob on the left."""
    sail = a.thymus * 0.05 * bump((v - (a.lung_top + 0.2)) / 0.14)
    top = heart_top(a, pose)
    flare = 0.06 * ramp((v - (top - 0.08)) / 0.1)  # widens smoothly into the cardiac silhouette
    half = 0.042 + sail + flare + 0.01 * (u > 0).astype(np.float32)
    inlet = ramp((v - (a.lung_top - 0.04)) / 0.06)  # above it there is only the neck
    band = ramp((half - np.abs(u)) / EDGE) * (ramp((top + 0.15 - v) / 0.05) * inlet)
    knob = (1.0 - a.thymus) * ellipsoid(u, v, (0.055, top - 0.05), (0.035, 0.03), 0.0)
    return np.maximum(band, knob)


def spine(u: Array, v: Array) -> Array:
    """Thoracic spine: a column with vertebral bodies, lucent disc spaces and paired pedicles."""
    column = ramp((0.032 - np.abs(u)) / EDGE) * (0.6 + 0.4 * np.sqrt(np.clip(1 - (u / 0.032) ** 2, 0, 1)))
    bodies = 0.7 + 0.3 * np.cos(np.float32(np.pi / 0.05) * v) ** 2
    pedicles = bump((np.abs(u) - 0.024) / 0.009) * np.cos(np.float32(np.pi / 0.05) * v + 0.6) ** 8
    return column * bodies + 0.6 * pedicles


def ribs(u: Array, v: Array, a: Anatomy, pose: Pose) -> Array:
    """Posterior rib arcs (bright cortex, rising from the spine then falling laterally) and faint anterior ribs."""
    d = np.abs(u)
    cage = ramp((a.lung_lateral + 0.02 - d) / 0.02) * ramp((d - 0.03) / 0.02)
    height = a.lung_base - a.lung_top
    spacing = height / 8.2
    bend = a.rib_slope * (2.2 * d * d - 0.35 * d)
    # lower ribs are more oblique: the curvature grows down the cage
    grow = 0.7 + 0.7 * np.clip((v - bend - a.lung_top) / height, 0.0, 1.2)
    phase = (v - grow * bend - (a.lung_top - 0.06)) / spacing
    frac = phase - np.floor(phase)
    cross = (frac - 0.3) / 0.22
    shaft = np.sqrt(np.clip(1.0 - cross * cross, 0.0, 1.0))
    cortex = bump((np.abs(cross) - 0.85) / 0.3)
    posterior = (0.45 * shaft + 0.7 * cortex) * ((phase > 0) & (phase < 9))
    pa = (v + 0.55 * (d - a.lung_lateral) - (a.lung_top - 0.02)) / (spacing * 1.25)
    anterior = bump((pa - np.floor(pa) - 0.5) / 0.3) * ramp((d - 0.15) / 0.08) * ((pa > 0) & (pa < 6))
    below = ramp((a.lung_base + pose.inspiration + 0.06 - v) / 0.06)
    return (cage * below) * (posterior + 0.35 * anterior)


def clavicles(u: Array, v: Array, a: Anatomy) -> Array:
    """Both clavicles: gently S-shaped bars from the manubrium out and up to the shoulders."""
    d = np.abs(u)
    x = d - 0.05
    centre = a.lung_top + 0.06 - 0.2 * x + 1.2 * x * (x - 0.3) * (x - 0.1)
    across = np.abs(v - centre) / 0.026
    bar = ramp((1.0 - across) * 2.5) * (0.7 + 0.3 * across * across)
    return bar * (ramp((d - 0.05) / 0.015) * ramp((0.40 - d) / 0.03))


def body(u: Array, v: Array, a: Anatomy, pose: Pose) -> tuple[Array, Array]:
    """Projected thickness of neck, sloping shoulders and chest wall (a cylinder: thin at the edges), and arms."""
    shoulders = ramp((v - (a.lung_top - 0.2)) / 0.2)
    shoulders = shoulders * shoulders * (3.0 - 2.0 * shoulders)
    half = 0.12 + (a.lung_lateral + 0.075 - 0.12) * shoulders - 0.03 * ramp((v - a.lung_base) / 0.3)
    x = np.abs(u) / half
    torso = ramp((1.0 - x) * (half / 0.012)) * np.clip(1.0 - x * x, 0.0, 1.0) ** 0.3
    if not pose.arms:
        return torso, np.zeros_like(torso)
    gap = (np.abs(u) - (half + 0.085)) / 0.05
    arms = np.sqrt(np.clip(1.0 - gap * gap, 0.0, 1.0)) * ramp((v - (a.lung_top - 0.08)) / 0.1)
    return torso, arms


def draw_chest(u: Array, v: Array, a: Anatomy, pose: Pose, rng: np.random.Generator) -> Chest:
    """Sum every structure into one density map."""
    right, left = lung(u, v, a, pose, -1), lung(u, v, a, pose, +1)
    lungs = np.maximum(right.mask, left.mask)
    cardiac = heart(u, v, a, pose)
    mediast = mediastinum(u, v, a, pose)
    torso, arms = body(u, v, a, pose)
    inside = ramp(torso * 8.0)
    below = ramp((v - diaphragm_line(u, a, pose)) / EDGE) * inside
    depth = np.maximum(lung_depth(right), lung_depth(left))
    air = lungs * depth * (1.0 - 0.95 * cardiac) * (1.0 - 0.8 * mediast)
    density = 0.04 + a.soft_tissue * (torso + 0.8 * arms) + 0.22 * below * abdomen(u, v, a, rng) - 0.30 * air
    density += 0.24 * cardiac * (1 - below) + 0.22 * mediast * (1 - cardiac) * (1 - below)
    density += 0.06 * spine(u, v) * inside + 0.09 * ribs(u, v, a, pose) + 0.16 * clavicles(u, v, a)
    trachea = ramp((0.011 - np.abs(u)) / 0.005) * ramp((a.lung_top + 0.25 - v) / 0.02)
    density -= 0.12 * trachea * torso
    density += 0.14 * vessels((right, left), rng)
    density += extras(u, v, a, pose)
    return Chest(density=density.astype(np.float32), right=right, left=left, u=u, v=v, heart=cardiac)


def abdomen(u: Array, v: Array, a: Anatomy, rng: np.random.Generator) -> Array:
    """Below the diaphragm: solid liver and spleen, then bowel gas mottling lower down."""
    lower = ramp((v - (a.dome_right + 0.2)) / 0.15)
    gas = np.clip(smooth_noise(rng, np.broadcast_shapes(u.shape, v.shape), 14), 0.0, None)
    return 1.0 - lower * (0.25 + 0.25 * gas)


def lung_depth(one: Lung) -> Array:
    """Air thickness across a lung: thin at the apex and edges, deepest in the mid-lateral lung."""
    across = np.sqrt(np.clip(one.s * (1.0 - one.s) * 4.0, 0.0, 1.0))
    down = np.sqrt(np.clip(one.t / 0.35, 0.0, 1.0))
    return 0.55 + 0.45 * across * down


def vessels(lungs: tuple[Lung, Lung], rng: np.random.Generator) -> Array:
    """Pulmonary vessels: branching-looking streaks radiating from each hilum, fading to the periphery."""
    return sum(one.mask * radial_streaks(one, rng, density=0.8, reach=0.2) for one in lungs)


def radial_streaks(
    one: Lung, rng: np.random.Generator, density: float, reach: float, width: int = 1
) -> Array:
    """Lines radiating from a hilum, broken into segments; `density` is the share of angles with a line,
    `width` the angular bins each line spans."""
    lines = np.maximum(rng.random(-(-RAYS // width)).astype(np.float32) - (1.0 - density), 0.0) / max(
        density, 1e-3
    )
    rays = np.repeat(lines, width)[:RAYS]
    rays = (0.25 * np.roll(rays, 1) + 0.5 * rays + 0.25 * np.roll(rays, -1)).astype(np.float32)
    breaks = ramp(0.5 + smooth_noise(rng, one.ray.shape, 28))
    return rays[one.ray] * breaks * np.exp(one.radius * (-1.0 / reach)) * ramp((one.radius - 0.02) / 0.06)


def extras(u: Array, v: Array, a: Anatomy, pose: Pose) -> Array:
    """Hilar shadows, stomach gas and breast shadows."""
    hila_v = a.lung_top + 0.47 * (a.lung_base + pose.inspiration - a.lung_top)
    out = 0.10 * (bump((u + 0.10) / 0.05) + bump((u - 0.11) / 0.05)) * bump((v - hila_v) / 0.08)
    if a.stomach_bubble > 0:
        sv = a.dome_right + pose.inspiration + 0.085
        r2 = ((u - 0.18) / a.stomach_bubble) ** 2 + ((v - sv) / (0.6 * a.stomach_bubble)) ** 2
        out = out - 0.12 * ramp((1.0 - r2) * 4.0)
    if a.breasts:
        for bu in (-0.24, 0.24):
            r = np.sqrt(((u - bu) / 0.2) ** 2 + ((v - (a.lung_base - 0.06)) / 0.14) ** 2)
            out = out + 0.07 * ramp((1.0 - r) * 5.0) * ramp((v - (a.lung_base - 0.16)) / 0.04)
    return out
