"""Text-only loading: the same prompt vectors and fingerprint as the whole model, and no image tower."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pedclip.errors import PedclipError
from pedclip.models import load_encoder, save_local

TEXTS = ["a chest x-ray with clear lungs", "a chest x-ray with pneumonia", "normal"]


def _changed(encoder):
    """Weights that differ from the seeded init (as a trained checkpoint's do)."""
    with torch.no_grad():
        for param in encoder.modules["model"].parameters():
            param.add_(
                0.01 * torch.randn(param.shape, generator=torch.Generator().manual_seed(param.numel()))
            )
    return encoder


def _assert_text_only_matches(full, text) -> None:
    assert text.image_tower is None and full.image_tower is not None
    assert text.fingerprint == full.fingerprint
    assert text.logit_scale == pytest.approx(full.logit_scale)
    np.testing.assert_allclose(text.encode_texts(TEXTS), full.encode_texts(TEXTS), atol=1e-6)
    text_params = sum(p.numel() for p in text.modules["model"].parameters())
    assert text_params < sum(p.numel() for p in full.modules["model"].parameters())
    with pytest.raises(PedclipError, match="text only"):
        text.encode_images(torch.zeros(1, 3, 64, 64))


def test_openclip_text_only_equals_the_full_model(tmp_path: Path) -> None:
    folder = save_local(_changed(load_encoder("openclip:pedclip-tiny")), tmp_path / "ckpt")
    full = load_encoder(f"local:{folder}")
    text = load_encoder(f"local:{folder}", towers="text")
    assert not any(name.startswith("visual") for name, _ in text.modules["model"].named_parameters())
    _assert_text_only_matches(full, text)


def test_medclip_text_only_equals_the_full_model(tiny_medclip_vit, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    full = load_encoder("medclip:vit", weights=tiny_medclip_vit.folder)
    text = load_encoder("medclip:vit", weights=tiny_medclip_vit.folder, towers="text")
    _assert_text_only_matches(full, text)
    folder = save_local(full, tmp_path / "ckpt")  # a fine-tuned MedCLIP checkpoint, text only
    _assert_text_only_matches(load_encoder(f"local:{folder}"), load_encoder(f"local:{folder}", towers="text"))


def test_unknown_towers_value_is_a_user_error() -> None:
    with pytest.raises(PedclipError, match="towers must be one of"):
        load_encoder("openclip:pedclip-tiny", towers="image")
