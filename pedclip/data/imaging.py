"""The one image decoder every stage uses: files, npz members, DICOM and uploaded bytes -> a defined PIL image.

Defined results: `L` or `RGB` for 8-bit data (alpha composited onto black, which is a radiograph's
background; palette and CMYK to RGB; a grayscale image stored as RGB stays RGB), and `I;16`, `I` or
`F` kept at full depth for deeper data (16-bit DICOM and PNG). EXIF orientation is applied. Every
image is fully decoded so a truncated file fails here, at ingest, not in the middle of an embedding run.
Pillow's decompression-bomb guard stays on; its warning is treated as an error too.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pedclip.data.remote import is_url, read_url, url_name
from pedclip.errors import PedclipError

DICOM_SUFFIXES = (".dcm", ".dicom")
DEEP_MODES = ("I;16", "I", "F")
_ORIENTATION_SWAPS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_ORIENTATION_TAG = 0x0112


class ImageDecodeError(PedclipError):
    """A file (or a member of one) that is not a decodable image; the message says why."""


class ImageChangedError(ImageDecodeError):
    """A file whose bytes no longer hash to the sha256 recorded at ingest: its pixels must not be stored under it."""


def check_sha256(data: bytes | memoryview, expected: str | None, name: str) -> None:
    """The bytes read for embedding or training are the bytes ingest recorded (hashed where they were read)."""
    if expected is None:
        return
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ImageChangedError(
            f"{name} changed since ingest (sha256 {actual[:12]}, recorded {expected[:12]}); run `pedclip data"
            " ingest ...` again for its dataset"
        )


def is_dicom_name(name: str) -> bool:
    return str(name).lower().endswith(DICOM_SUFFIXES)


def looks_like_dicom(data: bytes) -> bool:
    """The DICOM Part 10 preamble: 128 bytes then 'DICM'."""
    return len(data) >= 132 and data[128:132] == b"DICM"


def load_image(
    path: str | os.PathLike,
    member: str | None = None,
    *,
    max_pixels: int | None = None,
    reduce_to: Callable[[int, int], tuple[int, int]] | None = None,
    expected_sha256: str | None = None,
) -> Image.Image:
    """Decode one image: a file, a URL (pyarrow filesystems), a DICOM, or `member` of an npz ('train:12').
    With `expected_sha256` the bytes read (an npz member's array bytes) must hash to it (ImageChangedError).

    `reduce_to(width, height)` -> the smallest size a JPEG may be decoded at: the decoder then scales by 1/2,
    1/4 or 1/8 in the DCT domain (PIL's draft) while staying at or above it. Other formats ignore it."""
    if is_url(path):
        try:
            data = read_url(path)
        except OSError as exc:
            raise ImageDecodeError(str(exc)) from exc
        check_sha256(data, expected_sha256, path)
        return load_image_bytes(data, url_name(path), max_pixels=max_pixels, reduce_to=reduce_to)
    path = Path(path)
    if member is not None:
        return load_npz_member(path, member, expected_sha256)
    if path.suffix.lower() == ".npz":
        raise ImageDecodeError(
            f"{path.name} is an npz archive; address one image in it as member 'SPLIT:INDEX'"
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageDecodeError(f"{path} does not exist; check the path or re-ingest the dataset") from exc
    except OSError as exc:
        raise ImageDecodeError(f"{path} cannot be read ({exc.strerror or exc})") from exc
    check_sha256(data, expected_sha256, str(path))
    return load_image_bytes(data, path.name, max_pixels=max_pixels, reduce_to=reduce_to)


def load_image_bytes(
    data: bytes,
    name: str,
    *,
    max_pixels: int | None = None,
    reduce_to: Callable[[int, int], tuple[int, int]] | None = None,
) -> Image.Image:
    """Decode an image held in memory (an upload); `name` chooses DICOM by suffix and labels errors."""
    if not data:
        raise ImageDecodeError(f"{name} is an empty (zero-byte) file")
    if is_dicom_name(name) or looks_like_dicom(data):
        from pedclip.data.dicom import decode_dicom

        return decode_dicom(data, name, max_pixels=max_pixels)[0]
    img = _open_checked(data, name, max_pixels)
    if reduce_to is not None and img.format == "JPEG":
        img.draft(img.mode, reduce_to(*img.size))
    return normalize_mode(_transpose(_load_fully(img, name), name))


def inspect_bytes(data: bytes, name: str, *, max_pixels: int | None = None) -> tuple[int, int, str, dict]:
    """(width, height, mode, tags) exactly as `load_image_bytes` would give them, decoding as cheaply as allowed.

    Every byte is still entropy-decoded (so truncation is caught), but JPEGs are decoded at 1/8 scale
    with `draft`; the recorded size comes from the header and EXIF orientation, never from the draft.
    """
    if not data:
        raise ImageDecodeError(f"{name} is an empty (zero-byte) file")
    if is_dicom_name(name) or looks_like_dicom(data):
        from pedclip.data.dicom import decode_dicom

        img, tags = decode_dicom(data, name, max_pixels=max_pixels)
        return img.width, img.height, img.mode, tags
    img = _open_checked(data, name, max_pixels)
    width, height = img.size
    if _orientation(img) in _ORIENTATION_SWAPS:
        width, height = height, width
    mode = decoded_mode(img)
    if img.format == "JPEG" and img.mode in ("L", "RGB", "CMYK"):
        img.draft(img.mode, (max(1, img.width // 8), max(1, img.height // 8)))
    _load_fully(img, name)
    return width, height, mode, {}


def inspect_file(path: str, max_pixels: int | None = None) -> tuple:
    """(sha256, width, height, mode, tags) of one file, or ('error', reason).

    Runs in pool workers, which is why this module stays light to import (no pandas, no torch).
    """
    name = url_name(path) if is_url(path) else Path(path).name
    try:
        data = read_url(path) if is_url(path) else Path(path).read_bytes()
    except OSError as exc:
        return ("error", f"cannot be read ({exc.strerror or exc})")
    try:
        width, height, mode, tags = inspect_bytes(data, name, max_pixels=max_pixels)
    except ImageDecodeError as exc:
        return ("error", _reason(str(exc), name))
    return (hashlib.sha256(data).hexdigest(), width, height, mode, tags)


def _reason(message: str, name: str) -> str:
    """The decoder's sentence without the leading file name (the error row already names the path)."""
    return message[len(name) + 1 :] if message.startswith(name + " ") else message


def decoded_mode(img: Image.Image) -> str:
    """The mode `normalize_mode` turns an image of this mode into, without decoding it."""
    mode = img.mode
    if mode in ("L", "RGB") or mode in DEEP_MODES:
        return mode
    if mode.startswith("I;16"):
        return "I;16"
    if mode in ("1", "LA", "La"):
        return "L"
    return "RGB"


def normalize_mode(img: Image.Image) -> Image.Image:
    """An already-loaded image in one of the defined modes: L, RGB, I;16, I or F."""
    mode = img.mode
    if mode in ("L", "RGB") or mode in DEEP_MODES:
        return img
    if mode.startswith("I;16"):  # I;16B / I;16L / I;16N -> native little-endian I;16
        return uint16_image(np.asarray(img))
    if mode == "1":
        return img.convert("L")
    if mode in ("LA", "La"):
        return _gray_on_black(img.convert("LA"))
    if mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in img.info):
        # Alpha composited onto black, a radiograph's background.
        return Image.alpha_composite(
            Image.new("RGBA", img.size, (0, 0, 0, 255)), img.convert("RGBA")
        ).convert("RGB")
    return img.convert("RGB")


def _gray_on_black(img: Image.Image) -> Image.Image:
    """LA composited onto black: gray * alpha / 255, rounded."""
    gray, alpha = (np.asarray(band, dtype=np.uint16) for band in img.split())
    return Image.fromarray(((gray * alpha + 127) // 255).astype(np.uint8), mode="L")


def pixel_limit(max_pixels: int | None) -> int | None:
    """The most pixels any image may declare: `max_pixels` when given, never above Pillow's bomb guard
    (whose warning is an error here); the same limit for PNG/JPEG and DICOM."""
    guard = Image.MAX_IMAGE_PIXELS
    if max_pixels is None or guard is None:
        return max_pixels if guard is None else guard
    return min(max_pixels, guard)


def _open_checked(data: bytes, name: str, max_pixels: int | None) -> Image.Image:
    """Open (header only) with the bomb guard on: Pillow's error, its warning, and our own `max_pixels`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(
            f"{name} declares too many pixels to decode safely (decompression bomb guard: {exc})"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(f"{name} is not an image Pillow can read (unknown or corrupt format)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"{name} has a corrupt image header ({exc})") from exc
    if max_pixels is not None and img.width * img.height > max_pixels:
        raise ImageDecodeError(
            f"{name} declares {img.width}x{img.height} pixels, over the limit of {max_pixels} "
            "(decompression bomb guard)"
        )
    return img


def _load_fully(img: Image.Image, name: str) -> Image.Image:
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = "is truncated" if "truncated" in str(exc).lower() else "is corrupt"
        raise ImageDecodeError(f"{name} {reason} and cannot be fully decoded ({exc})") from exc
    return img


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block must not hide a readable image
        return 1


def _transpose(img: Image.Image, name: str) -> Image.Image:
    if _orientation(img) == 1:
        return img
    try:
        return ImageOps.exif_transpose(img)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"{name} has an unreadable EXIF orientation ({exc})") from exc


# ---- npz members ---------------------------------------------------------------------------------


def parse_member(member: str) -> tuple[str, int]:
    """'train:12' -> ('train', 12); a clear error otherwise."""
    split, _, index = str(member).partition(":")
    if not split or not index.isdigit():
        raise ImageDecodeError(f"npz member {member!r} is not of the form SPLIT:INDEX, e.g. 'train:12'")
    return split, int(index)


class _LastNpzArray:
    """The most recently read `{split}_images` array of one npz file, keyed by path, mtime and size.

    Why: members live inside one compressed array, so reading `train:4000` alone inflates everything
    before it; callers (embedding, thumbnails) read members one by one in case_id order, which groups
    them by split, so keeping the last array makes a whole pass inflate each split once. One array at
    most is held (PneumoniaMNIST-224's largest is ~240 MB); `clear()` releases it.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._array: np.ndarray | None = None
        self._lock = threading.Lock()

    def get(self, path: Path, split: str) -> np.ndarray:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, split)
        with self._lock:
            if key != self._key:
                self._array, self._key = None, None  # free the old array before inflating the new one
                self._array, self._key = _read_npz_array(path, split), key
            return self._array

    def clear(self) -> None:
        with self._lock:
            self._array, self._key = None, None


NPZ_ARRAYS = _LastNpzArray()


def _read_npz_array(path: Path, split: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return archive[f"{split}_images"]
    except KeyError as exc:
        raise ImageDecodeError(f"{path.name} has no array {split}_images; members are SPLIT:INDEX") from exc
    except ValueError as exc:
        why = "holds Python objects, which pedclip does not unpickle" if "allow_pickle" in str(exc) else exc
        raise ImageDecodeError(f"{path.name}: {split}_images is not a readable array ({why})") from exc
    except (OSError, zipfile.BadZipFile) as exc:
        raise ImageDecodeError(f"{path} is not a readable npz file ({exc})") from exc


def load_npz_member(path: Path, member: str, expected_sha256: str | None = None) -> Image.Image:
    """One image of an npz file, addressed 'split:index' (its array bytes checked against `expected_sha256`)."""
    split, index = parse_member(member)
    if not path.is_file():
        raise ImageDecodeError(f"{path} does not exist; check the path or re-ingest the dataset")
    images = NPZ_ARRAYS.get(path, split)
    if index >= len(images):
        raise ImageDecodeError(f"{path.name} has no image {member!r} ({split}_images has {len(images)})")
    image = np.ascontiguousarray(images[index])
    check_sha256(image.reshape(-1).view(np.uint8).data, expected_sha256, f"{path}[{member}]")
    return array_to_image(image, f"{path.name}[{member}]")


def array_to_image(array: np.ndarray, name: str) -> Image.Image:
    """A (H, W) or (H, W, 3|4) uint8/uint16 array as a defined-mode image."""
    array = np.ascontiguousarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.dtype == np.uint8 and array.ndim == 2:
        return Image.fromarray(array, mode="L")
    if array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] in (3, 4):
        return normalize_mode(Image.fromarray(array, mode="RGB" if array.shape[2] == 3 else "RGBA"))
    if array.dtype == np.uint16 and array.ndim == 2:
        return uint16_image(array)
    raise ImageDecodeError(f"{name} is an array of shape {array.shape} and dtype {array.dtype}, not an image")


def uint16_image(array: np.ndarray) -> Image.Image:
    """A 2-D array as an `I;16` image (Pillow infers the mode from little-endian uint16)."""
    return Image.fromarray(np.ascontiguousarray(array, dtype="<u2"))
