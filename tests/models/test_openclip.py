"""The open_clip family on the tiny config: determinism, weight files in every format, preprocess parity
with open_clip's own val transform, dtype, fingerprints, offline errors."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pedclip.errors import PedclipError
from pedclip.models import load_encoder
from pedclip.models.base import PreprocessConfig

TINY = "openclip:pedclip-tiny"


@pytest.fixture(scope="module")
def tiny():
    return load_encoder(TINY)


@pytest.fixture(scope="module")
def other():
    """The same architecture with different (seed 1) weights: what the files below hold."""
    return load_encoder(TINY, seed=1)


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    return torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))


TEXTS = ["a chest radiograph", "pneumonia in the right lower lobe", ""]


def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (80, 100, 3), dtype=np.uint8), "RGB"),
        Image.fromarray(rng.integers(0, 256, (90, 70), dtype=np.uint8), "L"),
        Image.fromarray(rng.integers(0, 256, (40, 50), dtype=np.uint8), "L"),  # smaller than 64: upscaled
        Image.fromarray(rng.integers(0, 256, (64, 64, 4), dtype=np.uint8), "RGBA"),
    ]


def test_tiny_is_deterministic_untrained_fp32(tiny, other, pixels) -> None:
    again = load_encoder(TINY)
    assert tiny.weights_id == "untrained:seed=0" and tiny.untrained and tiny.dtype == "fp32"
    assert all(p.dtype == torch.float32 for p in tiny.modules["model"].parameters())
    np.testing.assert_array_equal(tiny.encode_images(pixels), again.encode_images(pixels))
    np.testing.assert_array_equal(tiny.encode_texts(TEXTS), again.encode_texts(TEXTS))
    assert tiny.fingerprint == again.fingerprint != other.fingerprint
    assert not np.allclose(tiny.encode_images(pixels), other.encode_images(pixels))
    assert tiny.dim == 32 and tiny.encode_images(pixels).shape == (3, 32)
    assert np.allclose(np.linalg.norm(tiny.encode_texts(TEXTS), axis=1), 1, atol=1e-5)


def test_loading_does_not_touch_the_global_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_encoder(TINY)
    assert torch.equal(torch.rand(3), expected)


def test_preprocess_matches_open_clip_val_transform(tiny) -> None:
    import open_clip

    _, _, reference = open_clip.create_model_and_transforms("pedclip-tiny")
    for img in images():
        torch.testing.assert_close(tiny.preprocess(img), reference(img), atol=1e-6, rtol=0)


def test_preprocess_matches_on_a_real_radiograph(tiny, shared_data) -> None:
    import open_clip

    path = next((shared_data / "kermany-sample").rglob("*.jpeg"))
    _, _, reference = open_clip.create_model_and_transforms("pedclip-tiny")
    with Image.open(path) as img:
        torch.testing.assert_close(tiny.preprocess(img), reference(img), atol=1e-6, rtol=0)


def _state(encoder) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in encoder.modules["model"].state_dict().items()}


def _write_plain(state, path: Path) -> Path:
    torch.save(state, path)
    return path


def _write_wrapped(state, path: Path) -> Path:
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    return path


def _write_safetensors(state, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def _write_jit(encoder, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(encoder.modules["model"], (torch.zeros(1, 3, 64, 64), torch.zeros(1, 77, dtype=torch.long)),
                                 strict=False, check_trace=False)  # fmt: skip
    traced.save(str(path))
    return path


@pytest.mark.parametrize(
    ("kind", "name"),
    [("plain", "w.pt"), ("wrapped", "w.bin"), ("safetensors", "w.safetensors"), ("jit", "ViT.pt")],
)
def test_weights_file_round_trip(other, pixels, tmp_path: Path, kind: str, name: str) -> None:
    from pedclip.models.checkpoint import file_sha256

    state = _state(other)
    writers = {"plain": _write_plain, "wrapped": _write_wrapped, "safetensors": _write_safetensors}
    path = _write_jit(other, tmp_path / name) if kind == "jit" else writers[kind](state, tmp_path / name)
    loaded = load_encoder(TINY, weights=path, trust_torchscript=kind == "jit")  # not OpenAI's file: trusted
    for key, value in loaded.modules["model"].state_dict().items():
        assert torch.equal(value, state[key]), key
    np.testing.assert_array_equal(loaded.encode_images(pixels), other.encode_images(pixels))
    np.testing.assert_array_equal(loaded.encode_texts(TEXTS), other.encode_texts(TEXTS))
    assert loaded.weights_id == file_sha256(path) and not loaded.untrained
    assert loaded.fingerprint not in (other.fingerprint, load_encoder(TINY).fingerprint)


def test_wrong_weights_file_is_a_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    torch.save({"visual.proj": torch.zeros(2, 2)}, bad)
    with pytest.raises(PedclipError, match="does not fit this open_clip architecture"):
        load_encoder(TINY, weights=bad)
    with pytest.raises(PedclipError, match="does not exist"):
        load_encoder(TINY, weights=tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(PedclipError):
        load_encoder(TINY, weights=tmp_path / "junk.pt")


def test_fingerprint_changes_with_weights_preprocess_and_dtype(tiny, tmp_path: Path) -> None:
    state = _state(tiny)
    first = load_encoder(TINY, weights=_write_safetensors(state, tmp_path / "a.safetensors"))
    state["logit_scale"] = state["logit_scale"] + 1
    second = load_encoder(TINY, weights=_write_safetensors(state, tmp_path / "b.safetensors"))
    shifted = dataclasses.replace(
        tiny, preprocess_config=dataclasses.replace(tiny.preprocess_config, size=65)
    )
    bf16 = load_encoder(TINY, dtype="bf16")
    prints = {tiny.fingerprint, first.fingerprint, second.fingerprint, shifted.fingerprint, bf16.fingerprint}
    assert len(prints) == 5


def test_bf16_casts_weights_and_stays_close(tiny, pixels) -> None:
    bf16 = load_encoder(TINY, dtype="bf16")
    assert all(p.dtype == torch.bfloat16 for p in bf16.modules["model"].parameters())
    out, ref = bf16.encode_images(pixels), tiny.encode_images(pixels)
    assert out.dtype == np.float32
    assert np.min(np.sum(out * ref, axis=1)) > 0.98
    assert np.min(np.sum(bf16.encode_texts(TEXTS) * tiny.encode_texts(TEXTS), axis=1)) > 0.98
    with pytest.raises(PedclipError, match="unknown dtype 'fp8'"):
        load_encoder(TINY, dtype="fp8")


def test_preprocess_config_is_the_models_own(tiny) -> None:
    assert tiny.preprocess_config == PreprocessConfig(kind="resize_crop", size=64)


def test_untrained_real_architecture_warns() -> None:
    with pytest.warns(UserWarning, match="random weights"):
        enc = load_encoder("openclip:RN50")  # smallest built-in config cheap enough to build
    assert enc.untrained and enc.weights_id == "untrained:seed=0"


def test_hub_tag_offline_error_names_file_source_and_flag(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with pytest.raises(PedclipError) as info:
        load_encoder("openclip:ViT-B-32-quickgelu/openai")
    message = str(info.value)
    assert "open_clip_model.safetensors" in message and "timm/vit_base_patch32_clip_224.openai" in message
    assert "--weights" in message and "ViT-B-32.pt" in message
    with pytest.raises(
        PedclipError, match="hf-hub:org/repo is not in the local Hugging Face cache.*--weights"
    ):
        load_encoder("openclip:hf-hub:org/repo")


def test_hub_tag_loads_from_the_local_cache(other, pixels, monkeypatch, tmp_path: Path) -> None:
    """A cached hub snapshot is used offline and its revision is the weights identity."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshot = tmp_path / "hub" / "models--timm--vit_base_patch32_clip_224.openai" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    from pedclip.models import openclip

    cfg = {"hf_hub": "timm/vit_base_patch32_clip_224.openai/"}
    _write_safetensors(_state(other), snapshot / "open_clip_model.safetensors")
    path, weights_id = openclip.hub_tag_file("ViT-B-32-quickgelu", "openai", cfg)
    assert path == snapshot / "open_clip_model.safetensors"
    assert weights_id == "hf:timm/vit_base_patch32_clip_224.openai@abc123/open_clip_model.safetensors"


def test_hf_hub_repo_loads_from_the_local_cache(other, pixels, monkeypatch, tmp_path: Path) -> None:
    import json

    from pedclip.models.openclip import CONFIG_DIR

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshot = tmp_path / "hub" / "models--org--tiny" / "snapshots" / "rev9"
    snapshot.mkdir(parents=True)
    model_cfg = json.loads((CONFIG_DIR / "pedclip-tiny.json").read_text())
    (snapshot / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}})
    )
    _write_safetensors(_state(other), snapshot / "open_clip_model.safetensors")
    encoder = load_encoder("openclip:hf-hub:org/tiny")
    assert encoder.weights_id == "hf:org/tiny@rev9" and encoder.arch == {"open_clip_config": model_cfg}
    np.testing.assert_array_equal(encoder.encode_images(pixels), other.encode_images(pixels))
    np.testing.assert_array_equal(encoder.encode_texts(TEXTS), other.encode_texts(TEXTS))


def test_squash_preprocess_matches_open_clip() -> None:
    """open_clip's resize_mode="squash" (SigLIP, CLIPA configs) maps to PreprocessConfig(kind="squash")."""
    import open_clip

    from pedclip.models.base import geometry, normalize

    config = PreprocessConfig(
        kind="squash", size=64, interpolation="bilinear", mean=(0.5,) * 3, std=(0.5,) * 3
    )
    reference = open_clip.image_transform(64, is_train=False, mean=(0.5,) * 3, std=(0.5,) * 3,
                                          resize_mode="squash", interpolation="bilinear")  # fmt: skip
    for img in images():
        torch.testing.assert_close(
            normalize([geometry(img, config)], config)[0], reference(img), atol=1e-6, rtol=0
        )
