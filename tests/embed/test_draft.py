"""JPEG draft decoding: reduced-scale decode (>= 2x the resize target), then the same resize; measured against
the full decode within a stated tolerance; other formats and small JPEGs are decoded exactly as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pedclip.embed.pixels import DraftDecoder, default_decoder
from pedclip.models.base import PreprocessConfig, draft_floor, geometry
from pedclip.models.medclip import PREPROCESS as MEDCLIP

# Stated tolerance of a draft decode after the resize (uint8 grey levels), 1500x1200 -> 224 (a 1/2-scale
# decode). Deeper reductions err more: 1/8 scale (1500x1200 -> 64 px) measured max 6, mean 1.2.
MAX_GREY_LEVELS = 3
MEAN_GREY_LEVELS = 0.5


def _radiograph(path: Path, width: int, height: int, fmt: str = "JPEG") -> Path:
    rng = np.random.default_rng(width + height)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 120 + 60 * np.sin(xx / 40) * np.cos(yy / 47) + rng.normal(0, 12, (height, width))
    Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "L").save(path, fmt, quality=90)
    return path


@pytest.mark.parametrize("config", [PreprocessConfig(size=224), MEDCLIP], ids=["resize_crop", "pad_square"])
def test_draft_decode_stays_within_the_stated_tolerance(tmp_path: Path, config: PreprocessConfig) -> None:
    path = _radiograph(tmp_path / "big.jpg", 1500, 1200)
    drafted = DraftDecoder(config)(str(path))
    floor = draft_floor(1500, 1200, config)
    assert drafted.size[0] < 1500 and drafted.size[0] >= floor[0] and drafted.size[1] >= floor[1]
    full = geometry(default_decoder(str(path)), config).astype(int)
    fast = geometry(drafted, config).astype(int)
    assert full.shape == fast.shape
    assert np.abs(full - fast).max() <= MAX_GREY_LEVELS
    assert np.abs(full - fast).mean() <= MEAN_GREY_LEVELS


def test_small_jpegs_and_other_formats_decode_exactly(tmp_path: Path) -> None:
    config = PreprocessConfig(size=64)
    small = _radiograph(tmp_path / "small.jpg", 150, 120)  # < 2x the resize target: no reduction allowed
    png = _radiograph(tmp_path / "big.png", 1500, 1200, "PNG")
    for path in (small, png):
        drafted, full = DraftDecoder(config)(str(path)), default_decoder(str(path))
        assert drafted.size == full.size
        assert np.array_equal(np.asarray(drafted), np.asarray(full))


def test_draft_floor_is_twice_the_resized_size() -> None:
    assert draft_floor(1500, 1200, PreprocessConfig(size=224)) == (560, 448)
    assert draft_floor(1500, 1200, MEDCLIP) == (448, 359)
    assert draft_floor(300, 200, PreprocessConfig(size=224)) == (300, 200)  # never above the original
