"""Synthetic chest-radiograph sites for offline use: `synthesize(SynthConfig(...))` writes each site as a
folder in the study's or Kermany's layout plus a `manifest.csv` (path, label, patient_id, split, report
and attributes), so the same readers ingest it as real data. Deterministic per seed. Never clinical data.

Layout: `synth_anatomy` draws the body, `synth_findings` the pneumonia (and other findings),
`synth_sites` says how sites differ and plans every case, `synth_render` turns a plan into pixels,
`synth_reports` writes the report, `synth_preview` makes the contact sheet.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from pedclip.data.synth_preview import make_preview
from pedclip.data.synth_render import render_film
from pedclip.data.synth_reports import write_report
from pedclip.data.synth_sites import SITES, CasePlan, SiteProfile, plan_site, seed_words
from pedclip.errors import PedclipError

__all__ = ["SITES", "SiteSummary", "SynthConfig", "make_preview", "synthesize"]

GENERATOR_VERSION = 1  # bump when the same seed would draw different pixels
MARKER_FILE = "synth.json"  # written in every site folder; only folders holding it are ever replaced
MANIFEST_COLUMNS = (
    "path",
    "label",
    "patient_id",
    "split",
    "report",
    "site",
    "finding",
    "lobe",
    "side",
    "pattern",
    "age_years",
    "sex",
    "view",
    "pathogen",
    "severity",
    "ctr",
)
SPLIT_DIRS = {
    "kermany": {"train": "train", "val": "val", "test": "test"},
    "study": {"train": "Train", "val": "Validation", "test": "Test"},
}
CLASS_DIRS = {"kermany": ("NORMAL", "PNEUMONIA"), "study": ("Negative", "Positive")}

Progress = Callable[[Iterable, int, str], Iterable]


@dataclass(frozen=True)
class SynthConfig:
    """What to synthesise: where, which sites, how many films per site (None = each site's default),
    the long side of the largest films in pixels, and the seed."""

    out: Path
    sites: tuple[str, ...] = tuple(SITES)
    n: int | None = None
    size: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [s for s in self.sites if s not in SITES]
        if unknown:
            raise PedclipError(f"unknown synthetic site {unknown[0]!r}; choose from {', '.join(SITES)}")
        if not self.sites:
            raise PedclipError(f"no synthetic site chosen; pass --site with one of {', '.join(SITES)}")
        if self.n is not None and self.n < 1:
            raise PedclipError(f"--n must be at least 1 image per site; got {self.n}")
        if not 32 <= self.size <= 4096:
            raise PedclipError(f"--size must be between 32 and 4096 pixels; got {self.size}")


@dataclass(frozen=True)
class SiteSummary:
    """What was written for one site."""

    site: str
    path: Path
    manifest: Path
    layout: str
    images: int
    patients: int
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> label ("0"/"1") -> images
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "path": str(self.path), "manifest": str(self.manifest)}


def synthesize(config: SynthConfig, progress: Progress | None = None) -> list[SiteSummary]:
    """Write every chosen site under config.out; returns one summary per site."""
    return [write_site(config, SITES[name], progress) for name in config.sites]


def write_site(config: SynthConfig, profile: SiteProfile, progress: Progress | None) -> SiteSummary:
    started = time.perf_counter()
    root = prepare_site_dir(Path(config.out) / profile.name)
    n = config.n if config.n is not None else profile.default_n
    plans = plan_site(profile, config.seed, n, config.size)
    rows = []
    for plan in wrap(plans, progress, f"synth {profile.name}"):
        rows.append(write_film(root, profile, plan, config.seed))
    manifest = root / "manifest.csv"
    write_manifest(manifest, rows)
    write_marker(root, config, profile, n)
    counts: dict[str, Counter] = {split: Counter() for split in SPLIT_DIRS["kermany"]}
    for row in rows:
        counts[row["split"]][str(row["label"])] += 1
    return SiteSummary(
        site=profile.name,
        path=root,
        manifest=manifest,
        layout=profile.layout,
        images=len(rows),
        patients=len({row["patient_id"] for row in rows}),
        counts={split: {label: c[label] for label in ("0", "1")} for split, c in counts.items()},
        seconds=round(time.perf_counter() - started, 3),
    )


def wrap(items: list, progress: Progress | None, label: str) -> Iterator:
    yield from (progress(items, len(items), label) if progress else items)


def prepare_site_dir(root: Path) -> Path:
    """An empty folder for the site: a previous synthetic set there is replaced, anything else is kept."""
    if root.exists():
        if not root.is_dir():
            raise PedclipError(f"{root} exists and is not a folder; choose another --out")
        if (root / MARKER_FILE).exists():
            shutil.rmtree(root)
        elif any(root.iterdir()):
            raise PedclipError(
                f"{root} already holds files that pedclip did not synthesise; choose another --out or empty it"
            )
    root.mkdir(parents=True, exist_ok=True)
    return root


def relative_path(profile: SiteProfile, plan: CasePlan) -> Path:
    """Where a film goes: Kermany's names (person12_bacteria_40.jpeg, IM-0012-0001.jpeg) or the study's."""
    patient = plan.patient
    label = patient.finding.label
    split_dir = SPLIT_DIRS[profile.layout][patient.split]
    class_dir = CLASS_DIRS[profile.layout][label]
    if profile.layout == "kermany":
        name = (
            f"{patient.patient_id}_{patient.pathogen}_{plan.index + 1}.jpeg"
            if label
            else f"{patient.patient_id}-{plan.film:04d}.jpeg"
        )
        return Path("chest_xray") / split_dir / class_dir / name
    extension = ".png" if profile.image_format == "PNG" else ".jpg"
    return Path(split_dir) / class_dir / f"{patient.patient_id}-{plan.film:02d}{extension}"


def write_film(root: Path, profile: SiteProfile, plan: CasePlan, seed: int) -> dict:
    """Draw, save and describe one film (the manifest row)."""
    path = relative_path(profile, plan)
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    image = render_film(plan, profile)
    if profile.image_format == "JPEG":
        image.save(target, format="JPEG", quality=92)
    else:
        image.save(target, format="PNG", compress_level=1)  # noisy films barely compress; speed wins
    return manifest_row(profile, plan, path, seed)


def manifest_row(profile: SiteProfile, plan: CasePlan, path: Path, seed: int) -> dict:
    patient, finding = plan.patient, plan.patient.finding
    report_rng = np.random.default_rng(seed_words(seed, profile.name, "report", plan.index))
    drawn = replace(finding, severity=plan.severity)
    return {
        "path": path.as_posix(),
        "label": finding.label,
        "patient_id": patient.patient_id,
        "split": patient.split,
        "report": write_report(drawn, not profile.adult, report_rng),
        "site": profile.name,
        "finding": finding.kind,
        "lobe": finding.lobe,
        "side": finding.side,
        "pattern": finding.pattern,
        "age_years": patient.age_years,
        "sex": patient.sex,
        "view": plan.view,
        "pathogen": patient.pathogen,
        "severity": round(plan.severity, 3),
        "ctr": round(patient.anatomy.ctr, 3),
    }


def write_manifest(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_marker(root: Path, config: SynthConfig, profile: SiteProfile, n: int) -> None:
    """Provenance, and the mark that lets a rerun replace this folder (no timestamps: reruns are identical)."""
    document = {
        "generator": "pedclip data synth",
        "version": GENERATOR_VERSION,
        "note": "synthetic chest radiographs for offline testing; not clinical data",
        "site": profile.name,
        "description": profile.description,
        "seed": config.seed,
        "n": n,
        "size": config.size,
        "layout": profile.layout,
    }
    (root / MARKER_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
