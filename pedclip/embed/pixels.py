"""The pixel cache: `geometry` outputs keyed by (image sha256, preprocess config key).

One `.npy` per image under `Paths.pixels/<preprocess key>/<sha[:2]>/<sha>.npy`: reading one back is a
page-cache copy of ~50-150 kB (no JPEG decode, no resize), any subset can be read without touching the
rest, and a file appears only complete (written to a temporary name, then renamed).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from pedclip.errors import PedclipError
from pedclip.models.base import PreprocessConfig, draft_floor, geometry

# (path, npz member or None, the sha256 ingest recorded or None) -> image; the bytes read must hash to the sha
Decoder = Callable[[str, "str | None", "str | None"], Image.Image]


def default_decoder(path: str, member: str | None = None, expected_sha256: str | None = None) -> Image.Image:
    """The project's image decoder (pedclip.data.imaging), imported lazily so worker processes stay light."""
    from pedclip.data.imaging import load_image

    return load_image(path, member, expected_sha256=expected_sha256)


@dataclass(frozen=True)
class DraftDecoder:
    """The project's decoder with JPEGs decoded at a reduced scale (PIL draft, 1/2 to 1/8 in the DCT domain)
    while they stay >= 2x the size `geometry` resizes them to; the same resize follows. Not bit-identical to
    a full decode: within 1-2 grey levels per pixel (tests/embed/test_draft.py, bench/README.md)."""

    config: PreprocessConfig

    def __call__(
        self, path: str, member: str | None = None, expected_sha256: str | None = None
    ) -> Image.Image:
        from pedclip.data.imaging import load_image

        return load_image(
            path,
            member,
            reduce_to=lambda w, h: draft_floor(w, h, self.config),
            expected_sha256=expected_sha256,
        )


@dataclass(frozen=True)
class PixelCache:
    """Cached `geometry` arrays for one preprocess config under `root` (usually `Paths.pixels`)."""

    root: Path
    config: PreprocessConfig

    @property
    def folder(self) -> Path:
        return Path(self.root) / self.config.key()

    def path_for(self, sha256: str) -> Path:
        return self.folder / sha256[:2] / f"{sha256}.npy"

    def get(self, sha256: str) -> np.ndarray | None:
        """The cached array, or None when absent or unreadable (a damaged file is treated as a miss)."""
        path = self.path_for(sha256)
        try:
            return np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError):
            return None

    def put(self, sha256: str, array: np.ndarray) -> bool:
        """Write atomically: a reader (or a killed writer) never leaves a half-written file under the name.

        Best effort: the cache only saves decoding, so a failed write (a full disk, a read-only home) is not
        the image's fault; it returns False and leaves no temporary file behind.
        """
        path = self.path_for(sha256)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as handle:
                np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            return False
        return True


def cached_geometry(
    cache: PixelCache | None,
    config: PreprocessConfig,
    sha256: str,
    path: str,
    member: str | None,
    decoder: Decoder = default_decoder,
) -> tuple[np.ndarray, bool]:
    """(geometry array, came from the cache). Decodes and fills the cache on a miss; the decoder checks the
    bytes against `sha256` first, so an entry is only ever written under the hash of what was decoded."""
    if cache is not None:
        hit = cache.get(sha256)
        if hit is not None:
            return hit, True
    array = geometry(decoder(path, member, sha256), config)
    if cache is not None:
        cache.put(sha256, array)
    return array, False


def load_pixels(
    pixel_root: Path,
    config: PreprocessConfig,
    cases: pd.DataFrame,
    decode_missing: bool = True,
    decoder: Decoder = default_decoder,
    changed: list[int] | None = None,
) -> list[np.ndarray]:
    """`geometry` arrays for the rows of `cases` (columns image_sha256, path, member), in row order.

    Cached arrays are read back; a miss is decoded and cached when `decode_missing`, else it raises.
    A file changed since ingest raises ImageChangedError, or, given a `changed` list, is skipped and its row
    position appended there. Feed the result (or a slice of it) to `encoder.normalize` for a model batch.
    """
    from pedclip.data.imaging import ImageChangedError

    cache = PixelCache(Path(pixel_root), config)
    members = cases["member"] if "member" in cases else [None] * len(cases)
    out = []
    for sha, path, member in zip(cases["image_sha256"], cases["path"], members, strict=True):
        member = None if member is None or (isinstance(member, float) and np.isnan(member)) else member
        if not decode_missing:
            array = cache.get(sha)
            if array is None:
                raise PedclipError(
                    f"image {sha[:12]} ({path}) is not in the pixel cache at {cache.folder}; "
                    "run `pedclip embed` for its dataset first or pass decode_missing=True"
                )
        else:
            try:
                array, _ = cached_geometry(cache, config, sha, path, member, decoder)
            except ImageChangedError:
                if changed is None:
                    raise
                changed.append(len(out) + len(changed))
                continue
        out.append(array)
    return out
