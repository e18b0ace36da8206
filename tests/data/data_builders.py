"""Builders (imported by the tests here) for tiny sources: images of every mode, bad files, DICOMs, npz files and layouts."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

KERMANY_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "kermany"


def gradient(width: int = 40, height: int = 30, seed: int = 0) -> np.ndarray:
    """A uint8 (height, width) image with structure and a little seeded noise."""
    rng = np.random.default_rng(seed)
    base = np.add.outer(np.arange(height) * 3, np.arange(width) * 2) % 256
    return np.clip(base + rng.integers(0, 20, size=base.shape), 0, 255).astype(np.uint8)


def save_jpeg(path: Path, seed: int = 0, size: tuple[int, int] = (40, 30), mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(gradient(*size, seed=seed), mode="L").convert(mode).save(path, "JPEG", quality=90)
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height grayscale pixels (a decompression bomb's shape)."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return (
        b"\x89PNG\r\n\x1a\n"
        + header
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def truncated_jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(gradient(200, 160), mode="L").save(buffer, "JPEG", quality=95)
    data = buffer.getvalue()
    return data[: len(data) // 2]


def write_bad_files(folder: Path) -> dict[str, Path]:
    """One file of each bad kind in `folder`: truncated JPEG, zero-byte, text named .jpeg, corrupt DICOM, bomb."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "truncated": (folder / "truncated.jpeg", truncated_jpeg_bytes()),
        "empty": (folder / "empty.jpeg", b""),
        "text": (folder / "notes.jpeg", b"this is a text file, not an image\n" * 4),
        "dicom": (folder / "broken.dcm", b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage" * 3),
        "bomb": (folder / "bomb.png", png_declaring(40_000, 40_000)),
    }
    for path, data in files.values():
        path.write_bytes(data)
    return {kind: path for kind, (path, _) in files.items()}


def _xray_dataset(transfer_syntax: str, rows: int, columns: int, photometric: str):
    """A digital X-ray dataset with its file meta, size and photometric set; pixel module left to the caller."""
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    return ds


def write_dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2",
                window: tuple[float, float] | None = None, bits_stored: int = 12, **tags) -> Path:  # fmt: skip
    """An uncompressed grayscale DICOM written with pydicom (16-bit allocated, unsigned)."""
    from pydicom.uid import ExplicitVRLittleEndian

    ds = _xray_dataset(ExplicitVRLittleEndian, *pixels.shape, photometric)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.astype("<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_rle_dicom(path: Path, rows: int, columns: int, runs: int) -> Path:
    """An 8-bit grayscale RLE Lossless DICOM declaring rows x columns whose one segment holds `runs` runs of 128
    zero bytes: rows * columns / 128 runs make a valid frame, fewer a file of a few hundred bytes that still
    declares the full size (what a decompression bomb's header looks like)."""
    pytest.importorskip("pydicom")
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    segment_offsets = struct.pack("<16L", 1, 64, *([0] * 14))  # one segment, right after the 64-byte header
    ds = _xray_dataset(RLELossless, rows, columns, "MONOCHROME2")
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([segment_offsets + b"\x81\x00" * runs])  # 0x81: repeat the next byte 128 times
    ds["PixelData"].is_undefined_length = True
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
