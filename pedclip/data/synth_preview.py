"""A labelled contact sheet of a synthetic set: half normal, half pneumonia, a caption under each tile."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pedclip.errors import PedclipError

CAPTION_HEIGHT = 34
TITLE_HEIGHT = 26


def make_preview(
    out: Path,
    dest: Path,
    sites: tuple[str, ...] | None = None,
    rows: int = 4,
    columns: int = 6,
    tile: int = 200,
    seed: int = 0,
) -> Path:
    """Write a rows x columns contact sheet of the sets under `out` (each site folder's manifest.csv) to
    `dest`; tiles alternate normal and pneumonia and cycle through the sites."""
    manifests = find_manifests(Path(out), sites)
    picks = pick_cases(manifests, rows * columns, seed)
    sheet = Image.new("L", (columns * tile, TITLE_HEIGHT + rows * (tile + CAPTION_HEIGHT)), 255)
    draw = ImageDraw.Draw(sheet)
    small = ImageFont.load_default(size=12)
    title = "pedclip synthetic chest radiographs (not clinical data): label and drawn finding under each film"
    draw.text((6, 6), title, fill=0, font=ImageFont.load_default(size=14))
    for slot, (root, row) in enumerate(picks):
        x, y = (slot % columns) * tile, TITLE_HEIGHT + (slot // columns) * (tile + CAPTION_HEIGHT)
        sheet.paste(letterbox(root / row["path"], tile), (x, y))
        for line_no, line in enumerate(caption(row)):
            draw.text((x + 4, y + tile + 3 + 15 * line_no), line, fill=0, font=small)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(dest, format="PNG")
    return dest


def find_manifests(out: Path, sites: tuple[str, ...] | None) -> list[Path]:
    if sites:
        found = [out / site / "manifest.csv" for site in sites]
        missing = [p for p in found if not p.exists()]
        if missing:
            raise PedclipError(
                f"no synthetic set at {missing[0].parent}; run `pedclip data synth --out {out}` first"
            )
        return found
    found = sorted(out.glob("*/manifest.csv"))
    if not found:
        raise PedclipError(f"no synthetic set under {out}; run `pedclip data synth --out {out}` first")
    return found


def pick_cases(manifests: list[Path], count: int, seed: int) -> list[tuple[Path, dict]]:
    """`count` cases, alternating normal / pneumonia and cycling through sites, drawn at random per seed."""
    rng = np.random.default_rng(seed)
    pools = []
    for manifest in manifests:
        with manifest.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        for label in ("0", "1"):
            members = [r for r in rows if r["label"] == label]
            order = rng.permutation(len(members))
            pools.append((manifest.parent, label, [members[i] for i in order]))
    picks: list[tuple[Path, dict]] = []
    depth = 0
    while len(picks) < count and any(depth < len(p[2]) for p in pools):
        for root, _label, members in pools:
            if depth < len(members) and len(picks) < count:
                picks.append((root, members[depth]))
        depth += 1
    return picks


def letterbox(path: Path, tile: int) -> Image.Image:
    with Image.open(path) as image:
        image = image.convert("L")
        image.thumbnail((tile, tile))
        framed = Image.new("L", (tile, tile), 40)
        framed.paste(image, ((tile - image.width) // 2, (tile - image.height) // 2))
    return framed


def caption(row: dict) -> tuple[str, str]:
    """('peds-a  PNEUMONIA', 'consolidation R lower lobar')."""
    label = "PNEUMONIA" if row["label"] == "1" else "NORMAL"
    where = " ".join(x for x in (row.get("side", ""), row.get("lobe", ""), row.get("pattern", "")) if x)
    return f"{row.get('site', '')}  {label}", f"{row.get('finding', '')} {where}".strip()
