"""Synthetic sites: how each differs (the way real hospitals do) and the plan of every case it holds.

A plan is pure data (no pixels): patients first, each seeded from (seed, site, patient number), then
their films, each seeded from (seed, site, image index), so the first images of a site do not change
when more are asked for. Labels and splits are per patient and come from two low-discrepancy
sequences, so class balance and the 64/16/20 split ratios hold closely even for small sets and no
patient's films are split apart.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from pedclip.data.synth_anatomy import Anatomy, Pose
from pedclip.data.synth_findings import LOBE_CENTRES, Finding

SPLIT_RATIOS = (("train", 0.64), ("val", 0.16), ("test", 0.20))  # the study's ratios
GOLDEN, SILVER = 0.6180339887498949, 0.4142135623730951  # independent irrationals for the two sequences


@dataclass(frozen=True)
class SiteProfile:
    """One synthetic hospital: its films, its patients and its class balance."""

    name: str
    description: str
    layout: (
        str  # "kermany": chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}; "study": {Train,...}/{Positive,...}
    )
    image_format: str  # PIL format name: JPEG or PNG
    default_n: int  # images when --n is not given (sized for the 10-minute demo on 2 cores)
    scale: float  # the long side of its films relative to --size
    aspect: tuple[float, float]  # range of width / height
    positive_fraction: float  # share of patients with pneumonia
    images_per_patient: tuple[float, ...]  # P(1 film), P(2 films), ...
    age_years: tuple[float, float]
    adult: bool
    ap_fraction: float  # share of AP (portable, supine) films; the rest are PA
    interstitial_fraction: float  # share of pneumonia drawn as interstitial (viral-looking)
    negative_findings: tuple[tuple[str, float], ...]  # label-0 findings and their weights
    exposure: tuple[float, float, float]  # (lo, hi, gamma) of the density-to-grey curve
    exposure_jitter: float  # per-film spread of lo and hi
    noise: float  # per-pixel quantum noise (grey fraction)
    mottle: float  # low-frequency mottle
    sharpen: float  # unsharp-mask strength (CR-style edge enhancement); 0 = none
    blur: float  # detector blur in pixels
    rotation_deg: float  # largest patient rotation
    arms_fraction: float  # share of films with the arms beside the chest
    markers: tuple[str, ...]  # side markers burned in ("R", "L"); one is drawn per film when present
    marker_fraction: float
    labels: tuple[tuple[str, tuple[str, ...]], ...]  # burned-in text labels by view (AP/PA), one per film
    collimation: float  # largest black collimation border, as a fraction of each side
    severity: tuple[float, float]  # range of pneumonia severity


SITES: dict[str, SiteProfile] = {
    "peds-a": SiteProfile(
        name="peds-a",
        description="UCSD/Kermany-like pediatric site: larger, sharper, landscape films, 73% pneumonia, "
        "follow-up films of the same child, Kermany folder layout",
        layout="kermany",
        image_format="JPEG",
        default_n=600,
        scale=1.0,
        aspect=(1.15, 1.45),
        positive_fraction=0.73,
        images_per_patient=(0.7, 0.2, 0.1),
        age_years=(1.0, 5.0),
        adult=False,
        ap_fraction=0.3,
        interstitial_fraction=0.35,
        negative_findings=(("normal", 1.0),),
        exposure=(0.06, 1.0, 1.0),
        exposure_jitter=0.03,
        noise=0.012,
        mottle=0.01,
        sharpen=0.6,
        blur=0.5,
        rotation_deg=3.0,
        arms_fraction=0.3,
        markers=("R",),
        marker_fraction=0.6,
        labels=(),
        collimation=0.0,
        severity=(0.25, 1.0),
    ),
    "peds-b": SiteProfile(
        name="peds-b",
        description="ORI-like pediatric site: smaller, noisier, lower resolution, portrait portable films "
        "with burned-in markers and labels, balanced classes, study folder layout",
        layout="study",
        image_format="PNG",
        default_n=300,
        scale=0.8,
        aspect=(0.78, 0.88),
        positive_fraction=0.49,
        images_per_patient=(0.9, 0.1),
        age_years=(0.2, 12.0),
        adult=False,
        ap_fraction=0.8,
        interstitial_fraction=0.5,
        negative_findings=(("normal", 1.0),),
        exposure=(-0.08, 0.95, 0.85),
        exposure_jitter=0.07,
        noise=0.028,
        mottle=0.015,
        sharpen=0.0,
        blur=1.0,
        rotation_deg=6.0,
        arms_fraction=0.6,
        markers=("R", "L"),
        marker_fraction=1.0,
        labels=(("AP", ("PORTABLE", "AP SUPINE", "AP ERECT", "SEMI-ERECT")), ("PA", ("PA ERECT", "UPRIGHT"))),
        collimation=0.08,
        severity=(0.25, 1.0),
    ),
    "adult": SiteProfile(
        name="adult",
        description="adult pretraining corpus: square films with reports and varied findings "
        "(pneumonia, cardiomegaly, effusion), 40% pneumonia, study folder layout",
        layout="study",
        image_format="PNG",
        default_n=1000,
        scale=1.0,
        aspect=(0.9, 1.0),
        positive_fraction=0.4,
        images_per_patient=(0.8, 0.15, 0.05),
        age_years=(18.0, 90.0),
        adult=True,
        ap_fraction=0.4,
        interstitial_fraction=0.3,
        negative_findings=(("normal", 0.7), ("cardiomegaly", 0.15), ("effusion", 0.15)),
        exposure=(0.03, 1.05, 1.1),
        exposure_jitter=0.04,
        noise=0.02,
        mottle=0.015,
        sharpen=0.3,
        blur=0.7,
        rotation_deg=4.0,
        arms_fraction=0.1,
        markers=("L",),
        marker_fraction=0.4,
        labels=(("AP", ("AP PORTABLE",)), ("PA", ("PA",))),
        collimation=0.03,
        severity=(0.25, 1.0),
    ),
}


@dataclass(frozen=True)
class Patient:
    number: int  # 0-based order within the site
    patient_id: str
    split: str
    age_years: float
    sex: str
    anatomy: Anatomy
    finding: Finding
    images: int
    pathogen: str  # bacteria | virus | "" (Kermany-style file names carry it)


@dataclass(frozen=True)
class CasePlan:
    """One film to draw and write."""

    index: int  # 0-based order within the site
    patient: Patient
    film: int  # 1-based film number of this patient
    width: int
    height: int
    view: str  # PA | AP
    pose: Pose
    severity: float  # this film's severity (follow-up films vary around the patient's)
    exposure: tuple[float, float, float]
    marker: str
    label_text: str
    collimation: tuple[float, float, float, float]  # left, top, right, bottom fractions
    seed_words: tuple[int, ...]


def seed_words(seed: int, site: str, kind: str, number: int) -> tuple[int, ...]:
    """Entropy for one patient or image: (seed, site, kind, number), stable across runs and platforms."""
    return (int(seed) & 0xFFFFFFFF, zlib.crc32(site.encode()), zlib.crc32(kind.encode()), int(number))


def plan_site(profile: SiteProfile, seed: int, n: int, size: int) -> list[CasePlan]:
    """The first n films of a site, patient by patient."""
    offsets = np.random.default_rng(seed_words(seed, profile.name, "sequences", 0)).random(2)
    plans: list[CasePlan] = []
    number = 0
    while len(plans) < n:
        patient = sample_patient(profile, seed, number, offsets)
        for film in range(1, patient.images + 1):
            if len(plans) == n:
                break
            plans.append(sample_film(profile, seed, patient, film, len(plans), size))
        number += 1
    return plans


def sequence_split(u: float) -> str:
    edge = 0.0
    for split, ratio in SPLIT_RATIOS:
        edge += ratio
        if u < edge:
            return split
    return SPLIT_RATIOS[-1][0]


def sample_patient(profile: SiteProfile, seed: int, number: int, offsets: np.ndarray) -> Patient:
    rng = np.random.default_rng(seed_words(seed, profile.name, "patient", number))
    positive = (offsets[0] + number * SILVER) % 1.0 < profile.positive_fraction
    split = sequence_split((offsets[1] + number * GOLDEN) % 1.0)
    age = float(rng.uniform(*profile.age_years))
    sex = "F" if rng.random() < 0.5 else "M"
    finding = sample_finding(profile, rng, positive)
    anatomy = sample_anatomy(profile, rng, age, sex, finding.kind == "cardiomegaly")
    images = int(rng.choice(len(profile.images_per_patient), p=profile.images_per_patient)) + 1
    # bacteria mostly consolidate and viruses mostly give interstitial patterns, but not always
    likely, other = ("virus", "bacteria") if finding.kind == "interstitial" else ("bacteria", "virus")
    pathogen = "" if not positive else (likely if rng.random() < 0.85 else other)
    return Patient(
        number=number,
        patient_id=patient_id(profile, number, positive),
        split=split,
        age_years=round(age, 1) if age < 18 else float(int(age)),
        sex=sex,
        anatomy=anatomy,
        finding=finding,
        images=images,
        pathogen=pathogen,
    )


def patient_id(profile: SiteProfile, number: int, positive: bool) -> str:
    """Kermany-style ids (person123 / IM-0123) for the Kermany layout, site-prefixed ids otherwise."""
    if profile.layout == "kermany":
        return f"person{number + 1}" if positive else f"IM-{number + 1:04d}"
    return f"{profile.name.replace('-', '').upper()}{number + 1:05d}"


def sample_finding(profile: SiteProfile, rng: np.random.Generator, positive: bool) -> Finding:
    if not positive:
        kinds, weights = zip(*profile.negative_findings, strict=True)
        kind = str(rng.choice(kinds, p=np.asarray(weights) / sum(weights)))
        if kind == "effusion":
            side = str(rng.choice(["right", "left", "bilateral"], p=[0.4, 0.3, 0.3]))
            return Finding(kind=kind, side=side, pattern="layering", severity=float(rng.uniform(0.3, 1.0)))
        return Finding(kind=kind)
    severity = float(rng.uniform(*profile.severity))
    if rng.random() < profile.interstitial_fraction:
        side = str(rng.choice(["bilateral", "right", "left"], p=[0.7, 0.15, 0.15]))
        pattern = str(rng.choice(["perihilar", "diffuse"], p=[0.7, 0.3]))
        return Finding("interstitial", side, "", pattern, severity, extent=float(rng.uniform(0.06, 0.12)))
    side = "right" if rng.random() < 0.6 else "left"
    lobes = ["upper", "middle", "lower"] if side == "right" else ["upper", "lingula", "lower"]
    lobe = str(rng.choice(lobes, p=[0.3, 0.2, 0.5]))
    round_share = 0.0 if profile.adult else 0.15  # round pneumonia is a childhood pattern
    pattern = str(rng.choice(["lobar", "patchy", "round"], p=[0.35, 0.65 - round_share, round_share]))
    (t_lo, t_hi), (s_lo, s_hi) = LOBE_CENTRES[lobe]
    extent = float(rng.uniform(0.05, 0.08) if pattern == "round" else rng.uniform(0.08, 0.13))
    extent *= 0.8 + 0.4 * severity
    return Finding(
        "consolidation",
        side,
        lobe,
        pattern,
        severity,
        rng.uniform(t_lo, t_hi),
        rng.uniform(s_lo, s_hi),
        extent,
    )


def sample_anatomy(
    profile: SiteProfile, rng: np.random.Generator, age: float, sex: str, big_heart: bool
) -> Anatomy:
    """Body proportions by age: a child's heart is relatively larger (CTR ~0.5-0.6 vs ~0.45), its ribs
    flatter, its thorax shorter and wider, and infants have a thymus widening the mediastinum."""
    if profile.adult:
        ctr = rng.uniform(0.56, 0.66) if big_heart else np.clip(rng.normal(0.45, 0.025), 0.39, 0.5)
        top, base, lateral, dome, slope = -0.4, 0.36, 0.38, 0.24, rng.normal(1.0, 0.12)
    else:
        ctr = np.clip(rng.normal(0.57 - 0.005 * age, 0.025), 0.49, 0.63)
        top, base, lateral, dome, slope = -0.38, 0.33, 0.40, 0.22, 0.5 + 0.03 * age + rng.normal(0, 0.08)
    return Anatomy(
        ctr=float(ctr),
        lung_top=top + float(rng.normal(0, 0.015)),
        lung_base=base + float(rng.normal(0, 0.015)),
        lung_lateral=lateral + float(rng.normal(0, 0.012)),
        dome_right=dome + float(rng.normal(0, 0.02)),
        rib_slope=float(slope),
        thymus=0.0 if profile.adult else float(max(0.0, 1.0 - age / 4.0) * rng.uniform(0.5, 1.0)),
        soft_tissue=float(rng.uniform(0.5, 0.68) if profile.adult else rng.uniform(0.5, 0.58)),
        breasts=bool(profile.adult and sex == "F" and rng.random() < 0.8),
        stomach_bubble=float(rng.uniform(0.03, 0.06) if rng.random() < 0.6 else 0.0),
    )


def sample_film(
    profile: SiteProfile, seed: int, patient: Patient, film: int, index: int, size: int
) -> CasePlan:
    words = seed_words(seed, profile.name, "image", index)
    rng = np.random.default_rng(words)
    long_side = max(16, round(size * profile.scale))
    aspect = float(rng.uniform(*profile.aspect))
    width, height = (
        (long_side, round(long_side / aspect)) if aspect >= 1 else (round(long_side * aspect), long_side)
    )
    rot = profile.rotation_deg
    pose = Pose(
        angle_deg=float(np.clip(rng.normal(0, rot / 2), -rot, rot)),
        zoom=float(rng.uniform(0.9, 1.04)),
        shift_u=float(rng.normal(0, 0.02)),
        shift_v=float(rng.normal(0, 0.025)),
        inspiration=float(np.clip(rng.normal(0, 0.025), -0.06, 0.05)),
        arms=bool(rng.random() < profile.arms_fraction),
    )
    lo, hi, gamma = profile.exposure
    jitter = profile.exposure_jitter
    exposure = (
        lo + float(rng.normal(0, jitter)),
        hi + float(rng.normal(0, jitter)),
        gamma * float(rng.uniform(0.9, 1.1)),
    )
    has_marker = profile.markers and rng.random() < profile.marker_fraction
    view = "AP" if rng.random() < profile.ap_fraction else "PA"
    texts = dict(profile.labels).get(view, ())
    return CasePlan(
        index=index,
        patient=patient,
        film=film,
        width=width,
        height=height,
        view=view,
        pose=pose,
        severity=float(np.clip(patient.finding.severity * rng.uniform(0.8, 1.15), 0.0, 1.0)),
        exposure=exposure,
        marker=str(rng.choice(profile.markers)) if has_marker else "",
        label_text=str(rng.choice(texts)) if texts else "",
        collimation=tuple(float(x) for x in rng.uniform(0, profile.collimation, 4)),
        seed_words=words,
    )
