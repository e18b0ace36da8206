"""Sources -> CaseRows and IngestErrors: format detection, the per-format readers, and file inspection.

Every file-based reader lists `SourceItem`s (what the layout says: label, split, patient); inspection
then hashes and fully decodes each file (in a process pool for large sources) to record sha256, size
and mode, or the reason it cannot be used.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pedclip.data.imaging import DICOM_SUFFIXES, inspect_file
from pedclip.data.labels import CLASS_NAMES, split_of
from pedclip.data.readers_csv import read_manifest
from pedclip.data.readers_npz import npz_splits, read_npz
from pedclip.data.readers_tree import (
    KERMANY_CLASSES,
    STUDY_CLASSES,
    SourceItem,
    find_split_tree,
    is_image_name,
    read_class_folders,
    read_dicom_tree,
    read_split_tree,
    walk_files,
)
from pedclip.errors import PedclipError
from pedclip.lifetime import pool_initializer
from pedclip.store.cases import CaseRow, IngestError

FORMATS = ("auto", "kermany", "study", "folders", "csv", "npz", "dicom")
MANIFEST_NAMES = ("manifest.csv",)
POOL_MIN_FILES = 64  # below this a process pool costs more than it saves
Wrap = Callable[[Iterable, int, str], Iterable]


@dataclass
class Source:
    """A source ready to read: its kind and root, how many records to expect, and the records themselves."""

    kind: str
    root: Path
    total: int
    records: Iterable[CaseRow | IngestError]
    class_names: tuple[str, ...] = CLASS_NAMES
    attributes: dict = field(default_factory=dict)


def detect_format(source: Path) -> str:
    """The format of a source path: by suffix for a file; by layout for a folder."""
    if source.is_file():
        suffix = source.suffix.lower()
        kinds = {".npz": "npz", ".csv": "csv", **dict.fromkeys(DICOM_SUFFIXES, "dicom")}
        if suffix in kinds:
            return kinds[suffix]
        raise PedclipError(
            f"cannot tell the format of {source}; pass a folder, a .csv manifest, an .npz or a .dcm file"
        )
    if any((source / name).is_file() for name in MANIFEST_NAMES):
        return "csv"
    nested = sorted(
        d.name for d in source.iterdir() if d.is_dir() and any((d / n).is_file() for n in MANIFEST_NAMES)
    )
    if nested:
        raise PedclipError(
            f"{source} holds {len(nested)} folders with their own manifest ({', '.join(nested)}); "
            f"ingest each as its own dataset, e.g. pedclip data ingest {source / nested[0]} --name {nested[0]}"
        )
    files = [p for p in walk_files(source) if is_image_name(p)]
    for kind, words in (("kermany", KERMANY_CLASSES), ("study", STUDY_CLASSES)):
        if _layout_holds_all(source, words, files):
            return kind
    if files and all(p.suffix.lower() in DICOM_SUFFIXES for p in files):
        return "dicom"
    npz = sorted(source.glob("*.npz"))
    if not files and len(npz) == 1:
        return "npz"
    return "folders"


def _layout_holds_all(source: Path, class_words: frozenset[str], files: list[Path]) -> bool:
    """Whether every image sits in a split folder's class folder (train/NORMAL ...); nested copies of the
    layout (Kaggle's chest_xray/chest_xray) count, and the reader then takes the shallowest one."""
    if not files or find_split_tree(source, class_words) is None:
        return False
    return all(_in_split_class(p.relative_to(source).parts[:-1], class_words) for p in files)


def _in_split_class(dirs: tuple[str, ...], class_words: frozenset[str]) -> bool:
    return any(split_of(d) and dirs[i + 1].lower() in class_words for i, d in enumerate(dirs[:-1]))


def _resolve_input(source: Path, fmt: str) -> Path:
    """The file a format reads when it was given a folder (the manifest, the single npz)."""
    if fmt == "csv" and source.is_dir():
        found = [source / n for n in MANIFEST_NAMES if (source / n).is_file()] or sorted(source.glob("*.csv"))
        if len(found) != 1:
            raise PedclipError(
                f"{source} has {len(found)} CSV files; pass the manifest itself, e.g. {source}/manifest.csv"
            )
        return found[0]
    if fmt == "npz" and source.is_dir():
        found = sorted(source.glob("*.npz"))
        if len(found) != 1:
            raise PedclipError(f"{source} has {len(found)} .npz files; pass the one to ingest")
        return found[0]
    return source


def open_source(
    source: str | os.PathLike, fmt: str = "auto", workers: int | None = None, max_pixels: int | None = None
) -> Source:
    """Detect (when auto) and open a source; records are produced lazily while iterating."""
    path = Path(source).expanduser().resolve()
    if fmt not in FORMATS:
        raise PedclipError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not path.exists():
        raise PedclipError(f"source {source} does not exist; pass a folder, CSV manifest, .npz or .dcm file")
    kind = detect_format(path) if fmt == "auto" else fmt
    path = _resolve_input(path, kind)
    if kind == "npz":
        total = sum(npz_splits(path).values())
        return Source("npz", path, total, read_npz(path), attributes={"file": path.name})
    items, errors, attributes = _list_items(path, kind)
    records = _chain(errors, inspect_items(items, workers=workers, max_pixels=max_pixels))
    return Source(kind, path, len(items) + len(errors), records, attributes=attributes)


def _list_items(path: Path, kind: str) -> tuple[list[SourceItem], list[IngestError], dict]:
    if kind == "csv":
        if path.is_dir() or path.suffix.lower() != ".csv":
            raise PedclipError(f"--format csv needs a CSV manifest file; got {path}")
        return read_manifest(path)
    if not path.is_dir():
        if kind == "dicom":
            return [SourceItem(path, path.name, None)], [], {}
        raise PedclipError(f"--format {kind} needs a folder; got the file {path}")
    readers = {
        "kermany": lambda p: read_split_tree(p, KERMANY_CLASSES, kermany=True),
        "study": lambda p: read_split_tree(p, STUDY_CLASSES, kermany=False),
        "folders": read_class_folders,
        "dicom": read_dicom_tree,
    }
    return readers[kind](path)


def _chain(first: Iterable, second: Iterable) -> Iterator:
    yield from first
    yield from second


def inspect_items(
    items: list[SourceItem],
    workers: int | None = None,
    max_pixels: int | None = None,
    pool_min_files: int = POOL_MIN_FILES,
) -> Iterator:
    """CaseRow or IngestError per item, in item order; decoding in a process pool for many files."""
    workers = workers if workers is not None else (os.cpu_count() or 1)
    paths = [str(item.path) for item in items]
    limits = [max_pixels] * len(paths)
    if workers <= 1 or len(items) < pool_min_files:
        results: Iterable = map(inspect_file, paths, limits)
        yield from (_record(item, result) for item, result in zip(items, results, strict=True))
        return
    context = multiprocessing.get_context(_start_method())
    initializer, initargs = pool_initializer()  # workers die with this process, even on SIGKILL
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=initializer, initargs=initargs
    ) as pool:
        results = pool.map(
            inspect_file, paths, limits, chunksize=max(1, min(32, len(paths) // (workers * 8)))
        )
        yield from (_record(item, result) for item, result in zip(items, results, strict=True))


def _start_method() -> str:
    """fork when it is safe (it starts workers in milliseconds; spawn re-imports the caller's main
    module, seconds); spawn when other threads exist or torch (with its native thread pools) is loaded,
    since a fork copies whatever locks those threads hold. Ingest runs before any store connection opens."""
    safe = "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1
    return "fork" if safe and "torch" not in sys.modules else "spawn"


def _record(item: SourceItem, result: tuple) -> CaseRow | IngestError:
    if result[0] == "error":
        return IngestError(str(item.path), result[1])
    sha256, width, height, mode, tags = result
    tags = dict(tags)
    patient_id = item.patient_id or tags.pop("patient_id", None)
    tags.pop("patient_id", None)
    attributes = {**tags, **item.attributes}
    return CaseRow(
        case_id=item.case_id,
        path=str(item.path),
        image_sha256=sha256,
        width=width,
        height=height,
        mode=mode,
        label=item.label,
        patient_id=patient_id,
        split=item.split,
        source_split=item.split,
        report=item.report,
        attributes=attributes,
    )
