"""The decoder: every PIL mode to a defined result, EXIF orientation, npz members, and each bad-file kind."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from data_builders import KERMANY_FIXTURE, gradient, png_declaring, truncated_jpeg_bytes, write_bad_files
from PIL import Image

from pedclip.data.imaging import ImageDecodeError, inspect_bytes, load_image, load_image_bytes, parse_member
from pedclip.errors import PedclipError


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, {"CMYK": "JPEG", "I": "TIFF", "F": "TIFF"}.get(img.mode, "PNG"))
    return buffer.getvalue()


def _modes() -> dict[str, Image.Image]:
    gray = Image.fromarray(gradient(), mode="L")
    rgb = Image.merge("RGB", (gray, gray.transpose(Image.Transpose.FLIP_LEFT_RIGHT), gray))
    deep = (gradient().astype(np.uint16) * 257).astype("<u2")
    return {
        "L": gray, "RGB": rgb, "P": rgb.convert("P"), "CMYK": rgb.convert("CMYK"),
        "RGBA": Image.merge("RGBA", (*rgb.split(), gray)), "LA": Image.merge("LA", (gray, gray)),
        "I;16": Image.fromarray(deep), "I": Image.fromarray(deep.astype(np.int32), mode="I"),
        "1": gray.convert("1"), "F": Image.fromarray(deep.astype(np.float32) / 7.0),
    }  # fmt: skip


EXPECTED_MODE = {"L": "L", "RGB": "RGB", "P": "RGB", "CMYK": "RGB", "RGBA": "RGB", "LA": "L", "I;16": "I;16",
                 "I": "I", "1": "L", "F": "F"}  # fmt: skip


@pytest.mark.parametrize("mode", list(EXPECTED_MODE))
def test_every_mode_decodes_to_a_defined_mode_and_inspect_agrees(mode):
    original = _modes()[mode]
    data = _png(original)
    img = load_image_bytes(data, f"x.{mode}.png")
    assert img.mode == EXPECTED_MODE[mode]
    assert img.size == original.size
    assert inspect_bytes(data, "x.png")[:3] == (img.width, img.height, img.mode)


def test_deep_images_keep_their_full_depth():
    deep = Image.fromarray((gradient().astype(np.uint16) * 257).astype("<u2"))
    img = load_image_bytes(_png(deep), "deep.png")
    np.testing.assert_array_equal(np.asarray(img), np.asarray(deep))
    assert np.asarray(img).max() > 255


def test_alpha_is_composited_onto_black():
    gray = Image.fromarray(np.full((4, 4), 200, np.uint8), mode="L")
    alpha = Image.fromarray(np.array([[0, 255, 128, 64]] * 4, np.uint8), mode="L")
    la = load_image_bytes(_png(Image.merge("LA", (gray, alpha))), "la.png")
    np.testing.assert_array_equal(np.asarray(la)[0], np.round(200 * np.array([0, 255, 128, 64]) / 255))
    rgba = load_image_bytes(_png(Image.merge("RGBA", (gray, gray, gray, alpha))), "rgba.png")
    np.testing.assert_allclose(np.asarray(rgba)[0, :, 0], 200 * np.array([0, 255, 128, 64]) / 255, atol=1)


@pytest.mark.parametrize("orientation, swapped", [(1, False), (3, False), (6, True), (8, True)])
def test_exif_orientation_is_applied(orientation, swapped):
    array = np.zeros((30, 60), np.uint8)
    array[:, :10] = 255  # a bright band on the left edge tells where "left" went
    img = Image.fromarray(array, mode="L")
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    decoded = load_image_bytes(buffer.getvalue(), "rotated.jpeg")
    assert decoded.size == ((30, 60) if swapped else (60, 30))
    expected = (
        np.asarray(Image.fromarray(array).transpose(_TRANSPOSE[orientation])) if orientation != 1 else array
    )
    assert np.abs(np.asarray(decoded).astype(int) - expected).mean() < 8
    assert inspect_bytes(buffer.getvalue(), "rotated.jpeg")[:2] == decoded.size


_TRANSPOSE = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_270, 8: Image.Transpose.ROTATE_90}


def test_real_fixtures_keep_mode_and_progressive_file_decodes():
    rgb = load_image(KERMANY_FIXTURE / "chest_xray/train/PNEUMONIA/person1763_bacteria_4606.jpeg")
    progressive = KERMANY_FIXTURE / "chest_xray/train/PNEUMONIA/person1441_virus_2457.jpeg"
    assert rgb.mode == "RGB"
    assert Image.open(progressive).info.get("progressive")
    assert load_image(progressive).mode == "L"


@pytest.mark.parametrize("kind, words", [
    ("truncated", "truncated"), ("empty", "zero-byte"), ("text", "not an image"),
    ("dicom", "DICOM"), ("bomb", "decompression bomb"),
])  # fmt: skip
def test_each_bad_file_kind_raises_a_readable_reason(tmp_path, kind, words):
    pytest.importorskip("pydicom")
    path = write_bad_files(tmp_path)[kind]
    with pytest.raises(ImageDecodeError, match=words) as caught:
        load_image(path)
    assert isinstance(caught.value, PedclipError)
    with pytest.raises(ImageDecodeError, match=words):
        inspect_bytes(path.read_bytes(), path.name)  # the fast path must fail the same way


def test_bomb_warning_band_is_an_error_too():
    declared = int(Image.MAX_IMAGE_PIXELS * 1.5) // 10_000  # between the warning and the error limits
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        load_image_bytes(png_declaring(10_000, declared), "big.png")


def test_max_pixels_parameter_tightens_the_guard():
    data = _png(Image.fromarray(gradient(40, 30), mode="L"))
    assert load_image_bytes(data, "ok.png", max_pixels=40 * 30).size == (40, 30)
    with pytest.raises(ImageDecodeError, match="over the limit of 1199"):
        load_image_bytes(data, "big.png", max_pixels=40 * 30 - 1)


def test_truncated_jpeg_fails_even_though_its_header_is_fine():
    data = truncated_jpeg_bytes()
    assert Image.open(io.BytesIO(data)).size == (200, 160)
    with pytest.raises(ImageDecodeError, match="truncated"):
        load_image_bytes(data, "cut.jpeg")


def test_missing_file_is_a_decode_error(tmp_path):
    with pytest.raises(ImageDecodeError, match="does not exist"):
        load_image(tmp_path / "nope.png")


def test_npz_member_reads_exactly_that_array(tmp_path: Path):
    images = np.stack([gradient(8, 6, seed=i) for i in range(5)])
    path = tmp_path / "tiny.npz"
    np.savez_compressed(path, train_images=images, train_labels=np.zeros((5, 1), np.uint8))
    for index in (0, 3, 4):
        img = load_image(path, member=f"train:{index}")
        assert img.mode == "L"
        np.testing.assert_array_equal(np.asarray(img), images[index])
    with pytest.raises(ImageDecodeError, match="no image"):
        load_image(path, member="train:5")
    with pytest.raises(ImageDecodeError, match="no array"):
        load_image(path, member="val:0")


@pytest.mark.parametrize("member", ["train", "train:", ":3", "train:x"])
def test_bad_member_strings_are_rejected(member):
    with pytest.raises(ImageDecodeError, match="SPLIT:INDEX"):
        parse_member(member)


def test_npz_member_follows_a_rewritten_file_and_needs_a_member(tmp_path: Path):
    path = tmp_path / "tiny.npz"
    for seed in (1, 2):
        images = np.stack([gradient(8, 6, seed=seed * 10 + i) for i in range(3)])
        np.savez_compressed(
            path, val_images=images[: 2 + seed - 1], val_labels=np.zeros((1 + seed, 1), np.uint8)
        )
        np.testing.assert_array_equal(np.asarray(load_image(path, member="val:1")), images[1])
    with pytest.raises(ImageDecodeError, match="member 'SPLIT:INDEX'"):
        load_image(path)
