"""Thumbnails made on demand and cached under Paths.thumbnails, and the upload gate.

Only images listed in `cases` are ever opened: a thumbnail is asked for by a case row read from the
store, never by a path the browser sent. Uploads are checked for size and type before the guarded
decoder (the same one ingest uses) sees them.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from PIL import Image

from pedclip.config import Paths
from pedclip.errors import PedclipError

THUMB_SIZE = 192
UPLOAD_TYPES = ("png", "jpg", "jpeg", "dcm")
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # also passed to streamlit as server.maxUploadSize
_SHA = re.compile(r"^[0-9a-f]{16,128}$")


def thumbnail_path(paths: Paths, image_sha256: str, size: int = THUMB_SIZE) -> Path:
    """Where the thumbnail of an image lives; the name comes from the store's sha, checked to be hex."""
    if not _SHA.match(str(image_sha256)):
        raise PedclipError(f"image sha {image_sha256!r} is not a hex digest; re-ingest the dataset")
    return paths.thumbnails / image_sha256[:2] / f"{image_sha256}-{size}.png"


def to_display(img: Image.Image, size: int) -> Image.Image:
    """An 8-bit L or RGB copy no larger than size x size (deep images stretched to their own range)."""
    if img.mode not in ("L", "RGB"):
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            img = img.convert("F")
            low, high = img.getextrema()
            scale = 255.0 / (high - low) if high > low else 1.0
            img = img.point(lambda v: (v - low) * scale).convert("L")
        else:
            img = img.convert("RGB")
    img = img.copy()
    img.thumbnail((size, size))
    return img


def relocated(paths: Paths, path: str) -> str:
    """`path` (a file or a folder) itself, or, when it is missing, the same path relative to an old home found
    under this home.

    A store copied to another folder keeps the absolute paths of its old home in `cases`
    (`/old/home/datasets/x/1.png`); the copy holds that file at `<home>/datasets/x/1.png`. The longest
    tail of the path that exists under this home wins; nothing outside this home is ever tried. The same holds
    for a fine-tuned model's `local:` checkpoint folder.
    """
    original = Path(path)
    if original.exists():
        return path
    home = paths.home.resolve()
    parts = original.parts[1:] if original.is_absolute() else original.parts
    for start in range(len(parts) - 1):  # a folder and the file name must match, never a bare name
        candidate = (home / Path(*parts[start:])).resolve()
        if candidate.is_relative_to(home) and candidate.exists():
            return str(candidate)
    return path


def case_thumbnail(paths: Paths, case: dict, load_image, size: int = THUMB_SIZE) -> bytes:
    """PNG bytes of a case's thumbnail: read from the cache, or decoded once with `load_image(path, member)`."""
    target = thumbnail_path(paths, case["image_sha256"], size)
    if target.exists():
        return target.read_bytes()
    member = case.get("member")
    path = relocated(paths, case["path"])
    img = load_image(path, None if member is None or member != member else member)  # NaN -> None
    buffer = io.BytesIO()
    to_display(img, size).save(buffer, format="PNG")
    data = buffer.getvalue()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".tmp")
    partial.write_bytes(data)
    partial.replace(target)  # atomic, so two sessions never read half a file
    return data


def check_upload(name: str, size: int) -> None:
    """Refuse uploads that are too large or of a type the dashboard does not decode."""
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix not in UPLOAD_TYPES:
        raise PedclipError(f"{name!r} is a .{suffix} file; upload one of: {', '.join(UPLOAD_TYPES)}")
    if size > MAX_UPLOAD_BYTES:
        raise PedclipError(
            f"{name!r} is {size / 1e6:.1f} MB; the dashboard takes uploads up to {MAX_UPLOAD_BYTES / 1e6:.0f} MB"
        )
