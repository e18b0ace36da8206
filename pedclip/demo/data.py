"""The demo's data: three synthetic sites ingested as four datasets (the adult corpus twice: once with its
reports, once with generic captions that say nothing about the lungs)."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pedclip.data.ingest import ingest
from pedclip.data.synth import MARKER_FILE, SynthConfig, synthesize
from pedclip.store import Store
from pedclip.store.cases import update_dataset_attributes

SITES = ("peds-a", "peds-b", "adult")
CAPTIONED = "adult-captions"
CAPTION_TEMPLATES = (
    "a chest radiograph of {who}, {view} view.",
    "{view} chest x-ray of {who}.",
    "an x-ray image of the chest of {who}, {view} view.",
)


@dataclass(frozen=True)
class DemoData:
    ucsd: str  # the site standing for the study's UCSD (Kermany) set
    ori: str  # the site standing for the study's ORI (hospital) set
    corpus: str  # adult corpus with reports (pretrains demo:medclip)
    captioned: str  # the same images with generic captions (pretrains demo:clip)


def _who(age: str, sex: str) -> str:
    years = float(age) if age else 40.0
    if years < 18:
        return {"M": "a boy", "F": "a girl"}.get(sex, "a child")
    return {"M": "a man", "F": "a woman"}.get(sex, "an adult")


def generic_caption(row: dict) -> str:
    """A caption a general-domain image-text corpus might hold: view and person, never a finding."""
    pick = int(hashlib.sha256(row["path"].encode()).hexdigest(), 16) % len(CAPTION_TEMPLATES)
    view = row.get("view") or "frontal"
    return CAPTION_TEMPLATES[pick].format(view=view, who=_who(row.get("age_years", ""), row.get("sex", "")))


def write_captioned_manifest(manifest: Path) -> Path:
    """manifest-captions.csv beside `manifest`: the same rows with each report replaced by a generic caption."""
    with manifest.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    out = manifest.with_name("manifest-captions.csv")
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "report": generic_caption(row)} for row in rows)
    return out


def _is_current(site_dir: Path, config: SynthConfig) -> bool:
    marker = site_dir / MARKER_FILE
    if not marker.is_file():
        return False
    document = json.loads(marker.read_text())
    wanted_n = config.n if config.n is not None else document.get("n")
    return (document.get("seed"), document.get("size"), document.get("n")) == (
        config.seed,
        config.size,
        wanted_n,
    )


def prepare_data(store: Store, n: int | None, size: int, seed: int, say) -> DemoData:
    """Synthesise the sites (skipped when already there with the same settings) and ingest them."""
    out = store.paths.datasets / "synth"
    config = SynthConfig(out=out, sites=SITES, n=n, size=size, seed=seed)
    if all(_is_current(out / site, config) for site in SITES):
        say(f"synthetic sites already in {out}")
    else:
        say(f"synthesising {', '.join(SITES)} into {out}")
        synthesize(config)
    for site in SITES:
        ingest(store, out / site / "manifest.csv", site, fmt="csv")
    update_dataset_attributes(store, "peds-a", {"stands_for": "ucsd"})  # the study's per-dataset defaults
    update_dataset_attributes(store, "peds-b", {"stands_for": "ori"})
    ingest(store, write_captioned_manifest(out / "adult" / "manifest.csv"), CAPTIONED, fmt="csv")
    return DemoData(ucsd="peds-a", ori="peds-b", corpus="adult", captioned=CAPTIONED)
