"""CSV manifests: path, label, optional patient_id, split and report; every other column is an attribute."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pedclip.data.labels import label_of, split_of
from pedclip.data.readers_tree import SourceItem
from pedclip.data.remote import is_url
from pedclip.errors import PedclipError
from pedclip.store.cases import IngestError

REQUIRED = ("path", "label")
KNOWN = ("path", "label", "patient_id", "split", "report")


def read_manifest(csv_path: Path) -> tuple[list, list, dict]:
    """Items for every usable row; one IngestError per row with a bad label, split, or missing file."""
    frame = _read_frame(csv_path)
    root = csv_path.parent.resolve()
    extra = [c for c in frame.columns if c not in KNOWN]
    items, errors, seen = [], [], set()
    for row in frame.to_dict("records"):
        item = _item(row, root, extra)
        if isinstance(item, IngestError):
            errors.append(item)
        elif item.case_id in seen:
            errors.append(
                IngestError(
                    str(item.path), f"is listed more than once in {csv_path.name}; kept the first row"
                )
            )
        else:
            seen.add(item.case_id)
            items.append(item)
    return items, errors, {"manifest": csv_path.name, "attribute_columns": extra}


def _read_frame(csv_path: Path) -> pd.DataFrame:
    text_columns = dict.fromkeys(KNOWN, str)
    try:
        frame = pd.read_csv(csv_path, dtype=text_columns, keep_default_na=False, na_values=[""])
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PedclipError(
            f"{csv_path} is not a readable CSV manifest ({exc}); expected columns path,label,split"
        ) from exc
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise PedclipError(
            f"{csv_path} lacks the column(s) {', '.join(missing)}; a manifest needs path and label "
            f"(optional patient_id, split, report); it has {', '.join(frame.columns)}"
        )
    return frame


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _plain(value: object) -> object:
    """An attribute value as plain JSON: numpy scalars unwrapped, NaN as None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _item(row: dict, root: Path, extra: list[str]) -> SourceItem | IngestError:
    raw_path = _text(row["path"])
    if raw_path is None:
        return IngestError(str(root), "a manifest row has an empty path")
    if is_url(raw_path):  # read through pyarrow's filesystems at inspection; the URL is the case id
        path = raw_path
    else:
        path = Path(raw_path) if Path(raw_path).is_absolute() else root / raw_path
    where = str(path)
    label_text = _text(row["label"])
    label = label_of(label_text) if label_text is not None else None
    if label is None:
        return IngestError(
            where, f"has label {label_text!r}; expected 0/1 or a class word such as normal/pneumonia"
        )
    split_text = _text(row.get("split"))
    split = split_of(split_text) if split_text is not None else None
    if split_text is not None and split is None:
        return IngestError(where, f"has split {split_text!r}; expected train, val or test")
    if isinstance(path, Path) and not path.is_file():
        return IngestError(where, "is listed in the manifest but does not exist")
    attributes = {c: _plain(row[c]) for c in extra if _plain(row[c]) is not None}
    return SourceItem(
        path.resolve() if isinstance(path, Path) else path,
        _case_id(path, root),
        label,
        split,
        _text(row.get("patient_id")),
        _text(row.get("report")),
        attributes,
    )


def _case_id(path: Path | str, root: Path) -> str:
    """A URL as it is; a path relative to the manifest's folder when inside it, else absolute."""
    if isinstance(path, str):
        return path
    resolved = path.resolve()
    return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(resolved)
