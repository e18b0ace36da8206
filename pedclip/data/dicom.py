"""DICOM decoding (optional extra `dicom`): modality LUT, VOI LUT or window, MONOCHROME1 inverted.

Grayscale data deeper than 8 bits stays 16-bit (`I;16`) so the model's own preprocessing decides how
to quantise it; the displayed range (the window, or the data's range when the file has none) is
stretched to 0..65535 (0..255 for 8-bit data), with MONOCHROME1 inverted so bone is always bright.
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
from PIL import Image

from pedclip.data.imaging import ImageDecodeError, pixel_limit, uint16_image
from pedclip.errors import require

# Tags a clinician slices by, kept as case attributes (attribute name -> DICOM keyword).
TAGS = {
    "patient_id": "PatientID",
    "patient_age": "PatientAge",
    "sex": "PatientSex",
    "view": "ViewPosition",
    "study_date": "StudyDate",
    "modality": "Modality",
    "photometric": "PhotometricInterpretation",
    "bits_stored": "BitsStored",
}


def decode_dicom(data: bytes, name: str, max_pixels: int | None = None) -> tuple[Image.Image, dict]:
    """(image, tags) of a DICOM file's first frame; ImageDecodeError with the reason when unreadable or when
    it declares more pixels than `pixel_limit(max_pixels)` (checked before any pixel data is decoded)."""
    pydicom = require("pydicom", "dicom")
    try:
        with warnings.catch_warnings():  # pydicom warns about every sloppy tag; the reason we raise is enough
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            check_declared_pixels(ds, name, pixel_limit(max_pixels))
            pixels = ds.pixel_array
    except ImageDecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds; all mean "unreadable"
        raise ImageDecodeError(f"{name} is not a readable DICOM image ({type(exc).__name__}: {exc})") from exc
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        pixels = pixels[0]
    image = _color_image(pixels) if int(ds.get("SamplesPerPixel", 1)) > 1 else _gray_image(pixels, ds, name)
    return image, dicom_tags(ds)


def check_declared_pixels(ds, name: str, limit: int | None) -> None:
    """Rows x Columns x frames x samples from the header against the limit: pydicom decodes every frame
    (an RLE file of 1.6 MB can declare 10000x10000), so this runs before `pixel_array`."""
    if limit is None:
        return
    try:
        dims = [
            int(ds.get(k) or d)
            for k, d in (("Rows", 0), ("Columns", 0), ("NumberOfFrames", 1), ("SamplesPerPixel", 1))
        ]
    except (TypeError, ValueError) as exc:
        raise ImageDecodeError(f"{name} has an unreadable image size in its DICOM header ({exc})") from exc
    rows, columns, frames, samples = dims
    if rows * columns * frames * samples > limit:
        raise ImageDecodeError(
            f"{name} declares {columns}x{rows} pixels x {frames} frame(s) x {samples} sample(s), over the limit"
            f" of {limit} (decompression bomb guard)"
        )


def _gray_image(pixels: np.ndarray, ds, name: str) -> Image.Image:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        values = apply_modality_lut(pixels, ds)
        low, high = _display_range(values, ds)
        if _has_voi(ds):
            values = apply_voi_lut(values, ds)
    except Exception as exc:  # noqa: BLE001 - malformed LUTs and windows surface here
        raise ImageDecodeError(f"{name} has an unusable modality/VOI LUT or window ({exc})") from exc
    scaled = np.clip((np.asarray(values, dtype=np.float64) - low) / max(high - low, 1e-12), 0.0, 1.0)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        scaled = 1.0 - scaled
    if int(ds.get("BitsStored", 8)) <= 8:
        return Image.fromarray(np.round(scaled * 255).astype(np.uint8), mode="L")
    return uint16_image(np.round(scaled * 65535))


def _has_voi(ds) -> bool:
    return "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds)


def _display_range(values: np.ndarray, ds) -> tuple[float, float]:
    """The range the VOI step maps into (PS3.3 C.11.2), or the data's own range when there is no VOI."""
    if "VOILUTSequence" in ds:
        descriptor = ds.VOILUTSequence[0].LUTDescriptor
        return 0.0, float(2 ** int(descriptor[2]) - 1)
    if _has_voi(ds):
        bits = int(ds.BitsStored)
        if ds.get("ModalityLUTSequence"):
            low, high = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
        elif int(ds.get("PixelRepresentation", 0)) == 0:
            low, high = 0.0, float(2**bits - 1)
        else:
            low, high = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
        slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
        if slope is not None and intercept is not None:
            low, high = low * float(slope) + float(intercept), high * float(slope) + float(intercept)
        return low, high
    return float(np.min(values)), float(np.max(values))


def _color_image(pixels: np.ndarray) -> Image.Image:
    """RGB DICOM (pydicom already converted YBR to RGB); deeper data scaled to 8 bits."""
    if pixels.dtype != np.uint8:
        top = max(float(pixels.max()), 1.0)
        pixels = np.round(pixels.astype(np.float64) * (255.0 / top)).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(pixels[..., :3]), mode="RGB")


def dicom_tags(ds) -> dict:
    """The sliceable tags present in the file, plus age in years parsed from PatientAge ('008Y')."""
    tags = {}
    for attribute, keyword in TAGS.items():
        value = ds.get(keyword)
        if value is not None and str(value).strip():
            tags[attribute] = int(value) if keyword == "BitsStored" else str(value).strip()
    age = age_in_years(tags.get("patient_age"))
    if age is not None:
        tags["age_years"] = age
    return tags


def age_in_years(age: str | None) -> float | None:
    """DICOM AS '008Y' / '018M' / '010W' / '005D' -> years (rounded to 2 decimals); None when absent."""
    match = re.fullmatch(r"(\d{1,3})([DWMY])", (age or "").strip().upper())
    if not match:
        return None
    per_year = {"D": 365.25, "W": 52.1775, "M": 12.0, "Y": 1.0}[match.group(2)]
    return round(int(match.group(1)) / per_year, 2)
