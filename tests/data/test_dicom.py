"""DICOM decoding: MONOCHROME1/2, 16-bit kept, VOI window applied, tags as attributes, corrupt files."""

from __future__ import annotations

import numpy as np
import pytest
from data_builders import write_dicom, write_rle_dicom

from pedclip.data.dicom import age_in_years
from pedclip.data.imaging import ImageDecodeError, inspect_bytes, load_image

pytest.importorskip("pydicom")


def _ramp() -> np.ndarray:
    """12-bit values 0..4095 along each row."""
    return np.tile(np.linspace(0, 4095, 64).round().astype(np.uint16), (16, 1))


def test_monochrome2_16bit_is_kept_as_16bit_and_stretched_to_full_range(tmp_path):
    img = load_image(write_dicom(tmp_path / "m2.dcm", _ramp()))
    assert img.mode == "I;16"
    values = np.asarray(img).astype(int)
    assert values.min() == 0 and values.max() == 65535
    assert np.all(np.diff(values[0]) >= 0)  # brighter stays brighter
    assert len(np.unique(values[0])) == 64  # no 8-bit quantisation: every level survives


def test_monochrome1_is_inverted(tmp_path):
    m2 = np.asarray(load_image(write_dicom(tmp_path / "m2.dcm", _ramp()))).astype(int)
    m1 = np.asarray(load_image(write_dicom(tmp_path / "m1.dcm", _ramp(), photometric="MONOCHROME1"))).astype(
        int
    )
    np.testing.assert_array_equal(m1, 65535 - m2)


def test_voi_window_is_applied(tmp_path):
    center, width = 2048.0, 1024.0  # shows 1536..2560; everything outside is clipped
    img = load_image(write_dicom(tmp_path / "w.dcm", _ramp(), window=(center, width)))
    raw = _ramp()[0].astype(float)
    values = np.asarray(img)[0].astype(float)
    assert values[raw <= 1536].max() == 0
    assert values[raw >= 2560].min() == 65535
    inside = (raw > 1600) & (raw < 2500)
    expected = ((raw[inside] - (center - 0.5)) / (width - 1) + 0.5) * 65535  # PS3.3 C.11.2.1.2 linear window
    np.testing.assert_allclose(values[inside], expected, atol=65535 * 0.002)


def test_windowed_monochrome1_is_inverted_after_the_window(tmp_path):
    plain = np.asarray(load_image(write_dicom(tmp_path / "a.dcm", _ramp(), window=(2048.0, 1024.0)))).astype(
        int
    )
    inverted = load_image(write_dicom(tmp_path / "b.dcm", _ramp(), "MONOCHROME1", window=(2048.0, 1024.0)))
    np.testing.assert_array_equal(np.asarray(inverted).astype(int), 65535 - plain)


def test_8bit_dicom_decodes_to_L(tmp_path):
    pixels = np.tile(np.arange(0, 256, 4, dtype=np.uint16), (8, 1))
    img = load_image(write_dicom(tmp_path / "eight.dcm", pixels, bits_stored=8))
    assert img.mode == "L"
    assert np.asarray(img).max() == 255


def test_tags_are_reported_for_attributes(tmp_path):
    path = write_dicom(tmp_path / "t.dcm", _ramp(), PatientID="P-7", PatientAge="006Y", PatientSex="F",
                       ViewPosition="AP", StudyDate="20240131")  # fmt: skip
    width, height, mode, tags = inspect_bytes(path.read_bytes(), path.name)
    assert (width, height, mode) == (64, 16, "I;16")
    assert tags["patient_id"] == "P-7" and tags["sex"] == "F" and tags["view"] == "AP"
    assert tags["study_date"] == "20240131" and tags["age_years"] == 6.0


@pytest.mark.parametrize(
    "text, years", [("006Y", 6.0), ("018M", 1.5), ("026W", 0.5), ("365D", 1.0), ("", None), ("6 years", None)]
)
def test_dicom_age_strings(text, years):
    assert age_in_years(text) == years


def test_dicom_without_pixels_is_unreadable(tmp_path):
    path = write_dicom(tmp_path / "ok.dcm", _ramp())
    import pydicom

    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(tmp_path / "nopixels.dcm")
    with pytest.raises(ImageDecodeError, match="not a readable DICOM"):
        load_image(tmp_path / "nopixels.dcm")


def test_rle_dicom_declaring_a_huge_size_is_refused_before_decoding(tmp_path):
    """Issue 11, defect 2: the header's Rows x Columns x frames x samples meets the same limit as PNG/JPEG
    before pydicom decodes a byte (a 1.6 MB RLE file can declare 10000x10000)."""
    import tracemalloc

    from pedclip.data.imaging import inspect_file, load_image_bytes

    bomb = write_rle_dicom(tmp_path / "bomb.dcm", 10000, 10000, runs=8)
    assert bomb.stat().st_size < 2000
    tracemalloc.start()
    try:
        with pytest.raises(ImageDecodeError, match=r"declares 10000x10000 pixels x 1 frame.*over the limit"):
            load_image(bomb)  # embed and thumbnails
        with pytest.raises(ImageDecodeError, match="over the limit"):
            load_image_bytes(bomb.read_bytes(), "upload.dcm")  # dashboard uploads
        assert (
            inspect_file(str(bomb))[0] == "error" and "over the limit" in inspect_file(str(bomb))[1]
        )  # ingest
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6, f"{peak / 1e6:.0f} MB allocated: pixel data was decoded"


def test_rle_dicom_within_the_limit_decodes_and_max_pixels_applies(tmp_path):
    path = write_rle_dicom(tmp_path / "ok.dcm", 64, 64, runs=32)
    assert load_image(path).size == (64, 64)
    with pytest.raises(ImageDecodeError, match="64x64 pixels.*over the limit of 1000"):
        inspect_bytes(path.read_bytes(), "ok.dcm", max_pixels=1000)
