"""Folder-tree sources: Kermany's layout, the study's layout, any class-per-folder tree, DICOM trees.

Each returns `(items, errors, attributes)`: the image files to inspect with what the layout says about
them (label, split, patient id), the files the layout itself rejects, and facts about the source.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pedclip.data.imaging import DICOM_SUFFIXES
from pedclip.data.labels import label_of, split_of
from pedclip.errors import PedclipError
from pedclip.store.cases import IngestError

IMAGE_SUFFIXES = frozenset(
    {
        ".jpeg",
        ".jpg",
        ".png",
        ".bmp",
        ".tif",
        ".tiff",
        ".gif",
        ".webp",
        ".pgm",
        ".ppm",
        ".pbm",
        ".jp2",
        *DICOM_SUFFIXES,
    }
)
KERMANY_CLASSES = frozenset({"normal", "pneumonia"})
STUDY_CLASSES = frozenset({"positive", "negative"})
_PERSON = re.compile(r"^(person\d+)_(bacteria|virus)_\d+", re.IGNORECASE)
_IM = re.compile(r"^((?:NORMAL\d*-)?IM-\d+)-\d+", re.IGNORECASE)


@dataclass(frozen=True)
class SourceItem:
    """One file to inspect, with what the source's layout or manifest says about it."""

    path: Path | str  # absolute, or a URL (a CSV manifest may list s3://, gs:// ...)
    case_id: str
    label: int | None
    split: str | None = None
    patient_id: str | None = None
    report: str | None = None
    attributes: dict = field(default_factory=dict)


def kermany_patient(file_name: str) -> tuple[str | None, str | None]:
    """(patient id, pathogen) from a Kermany file name; pathogen is bacteria/virus, None for IM- names.

    person123_bacteria_456.jpeg -> (person123, bacteria); IM-0115-0001.jpeg -> (IM-0115, None);
    NORMAL2-IM-1427-0001.jpeg -> (NORMAL2-IM-1427, None); IM-0011-0001-0002.jpeg -> (IM-0011, None).
    """
    stem = Path(file_name).name
    person = _PERSON.match(stem)
    if person:
        return person.group(1).lower(), person.group(2).lower()
    image = _IM.match(stem)
    if image:
        return image.group(1).upper(), None
    return None, None


def _visible(name: str) -> bool:
    return not name.startswith((".", "_")) and name != "__MACOSX"


def walk_files(root: Path) -> Iterator[Path]:
    """Every visible file under root, in a stable (sorted) order; hidden and __MACOSX folders skipped."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if _visible(d))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder) / name


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p.name))


def find_split_tree(root: Path, class_words: frozenset[str], max_depth: int = 3) -> Path | None:
    """The shallowest folder holding split folders (train/val/test ...) that hold these class folders."""
    level = [root]
    for _ in range(max_depth + 1):
        for folder in level:
            for split_dir in (d for d in _subdirs(folder) if split_of(d.name)):
                if any(c.name.lower() in class_words for c in _subdirs(split_dir)):
                    return folder
        level = [d for folder in level for d in _subdirs(folder)]
    return None


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def read_split_tree(root: Path, class_words: frozenset[str], kermany: bool) -> tuple[list, list, dict]:
    """Kermany (`{train,val,test}/{NORMAL,PNEUMONIA}`) or the study's (`{Train,...}/{Positive,Negative}`)."""
    tree = find_split_tree(root, class_words)
    if tree is None:
        words = "/".join(sorted(class_words))
        raise PedclipError(
            f"{root} has no split folders (train/val/test) holding {words} class folders; "
            "use --format folders or --format csv for other layouts"
        )
    items: list[SourceItem] = []
    folders: dict[str, int] = {}
    for split_dir in (d for d in _subdirs(tree) if split_of(d.name)):
        for class_dir in (d for d in _subdirs(split_dir) if d.name.lower() in class_words):
            label = label_of(class_dir.name)
            folders[class_dir.name] = label
            for path in filter(is_image_name, walk_files(class_dir)):
                items.append(_tree_item(path, root, label, split_of(split_dir.name), kermany))
    outside = sum(1 for p in walk_files(root) if is_image_name(p)) - len(items)
    attributes = {"layout_root": _relative(tree, root) or ".", "class_folders": folders}
    return items, [], {**attributes, "images_outside_layout": outside} if outside else attributes


def _tree_item(path: Path, root: Path, label: int | None, split: str | None, kermany: bool) -> SourceItem:
    """One image of a split tree. Patient ids and pathogens come from Kermany-style file names in either
    layout (the study's UCSD folders held Kermany's files); where names carry none, CIs resample cases."""
    patient_id, pathogen = kermany_patient(path.name)
    if kermany or patient_id is not None:
        pathogen = pathogen or ("normal" if label == 0 else None)
    attributes = {"pathogen": pathogen} if pathogen else {}
    return SourceItem(path.resolve(), _relative(path, root), label, split, patient_id, None, attributes)


def _labels_from_folders(rel_dirs: tuple[str, ...]) -> tuple[int | None, str | None, str | None]:
    """(label, split, the folder name taken as the class) from a file's folders below the root."""
    split = next((split_of(d) for d in rel_dirs if split_of(d)), None)
    class_dirs = [d for d in rel_dirs if not split_of(d)]
    for name in class_dirs:
        label = label_of(name)
        if label is not None:
            return label, split, name
    return None, split, (class_dirs[-1] if class_dirs else None)


def read_class_folders(root: Path) -> tuple[list, list, dict]:
    """Any class-per-folder tree: `[split/]class/.../image`; unknown class names stop the ingest."""
    items, errors, unknown, folders = [], [], set(), {}
    for path in filter(is_image_name, walk_files(root)):
        rel = path.relative_to(root)
        label, split, class_dir = _labels_from_folders(rel.parts[:-1])
        if label is None and class_dir is None:
            errors.append(
                IngestError(str(path.resolve()), "is not inside a class folder (e.g. normal/ or pneumonia/)")
            )
        elif label is None:
            unknown.add(class_dir)
        else:
            folders[class_dir] = label
            items.append(SourceItem(path.resolve(), rel.as_posix(), label, split))
    if unknown:
        names = ", ".join(repr(n) for n in sorted(unknown))
        raise PedclipError(
            f"class folder names not recognised: {names}; name them normal/pneumonia (or negative/positive), "
            "or list the images in a CSV manifest (path,label,split) and use --format csv"
        )
    return items, errors, {"class_folders": folders}


def read_dicom_tree(root: Path) -> tuple[list, list, dict]:
    """DICOM files anywhere under root (.dcm, or no suffix with the DICM preamble); label from folders if any."""
    items = []
    for path in walk_files(root):
        if not (path.suffix.lower() in DICOM_SUFFIXES or (not path.suffix and _has_dicm(path))):
            continue
        rel = path.relative_to(root)
        label, split, _ = _labels_from_folders(rel.parts[:-1])
        items.append(SourceItem(path.resolve(), rel.as_posix(), label, split))
    return items, [], {}


def _has_dicm(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    except OSError:
        return False
