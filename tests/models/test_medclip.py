"""MedCLIP on tiny Swin/BERT/ResNet configurations saved in the released layout: strict bit-exact loading,
embeddings equal to a direct reference computation of MedCLIP's formulas, offline errors."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pedclip.errors import PedclipError
from pedclip.models import load_encoder

TEXTS = ["a chest x-ray", "right lower lobe consolidation of the lung", "no opacity"]
MEAN, STD = 0.5862785803043838, 0.27950088968644304


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))


def reference_pixels(img: Image.Image) -> torch.Tensor:
    """MedCLIPProcessor by hand: mode L, centred on a black square of side max(224, w, h), bicubic 224, normalise."""
    gray = img.convert("L")
    side = max(224, *gray.size)
    canvas = Image.new("L", (side, side), 0)
    canvas.paste(gray, ((side - gray.size[0]) // 2, (side - gray.size[1]) // 2))
    array = np.asarray(canvas.resize((224, 224), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    return torch.from_numpy((array - MEAN) / STD)[None, None]


def reference_text(tiny, texts: list[str]) -> np.ndarray:
    """MedCLIPTextModel: mean over all positions (padding too) of hidden states 1, 2, -1; mean; projection."""
    from transformers import BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(str(tiny.folder / "text"), local_files_only=True)
    tokens = tokenizer(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
    with torch.no_grad():
        hidden = tiny.bert(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                           output_hidden_states=True).hidden_states  # fmt: skip
        pooled = (hidden[1].mean(1) + hidden[2].mean(1) + hidden[-1].mean(1)) / 3
        out = pooled @ tiny.text_proj.T
    return torch.nn.functional.normalize(out, dim=-1).numpy()


def reference_image(tiny, pixels: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        rgb = pixels.repeat(1, 3, 1, 1)
        if tiny.variant == "vit":
            out = tiny.vision(pixel_values=rgb).last_hidden_state.mean(1) @ tiny.vision_proj.T
        else:
            out = tiny.vision(rgb)
    return torch.nn.functional.normalize(out, dim=-1).numpy()


def sample_images() -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 256, (300, 250), dtype=np.uint8), "L"),
            Image.fromarray(rng.integers(0, 256, (120, 180, 3), dtype=np.uint8), "RGB")]  # fmt: skip


@pytest.mark.parametrize("variant", ["vit", "resnet"])
def test_released_checkpoint_matches_reference(variant: str, request) -> None:
    tiny = request.getfixturevalue(f"tiny_medclip_{variant}")
    encoder = load_encoder(f"medclip:{variant}", weights=tiny.folder)
    model = encoder.modules["model"]
    for key, value in tiny.vision.state_dict().items():  # bit for bit, under the installed names
        assert torch.equal(model.vision_model.model.state_dict()[key], value), key
    for key, value in tiny.bert.state_dict().items():
        assert torch.equal(model.text_model.model.state_dict()[key], value), key
    np.testing.assert_allclose(encoder.encode_texts(TEXTS), reference_text(tiny, TEXTS), atol=1e-6)
    for img in sample_images():
        pixels = encoder.preprocess(img)[None]
        torch.testing.assert_close(pixels, reference_pixels(img), atol=1e-6, rtol=0)
        np.testing.assert_allclose(encoder.encode_images(pixels), reference_image(tiny, pixels), atol=1e-5)
    assert encoder.dim == 16 and encoder.preprocess_config.channels == 1


def test_padding_length_changes_text_embeddings(tiny_medclip_vit) -> None:
    """MedCLIP pools over padding too, so a text embedded alone differs from the same text in a longer batch."""
    encoder = load_encoder("medclip:vit", weights=tiny_medclip_vit.folder)
    alone = encoder.encode_texts(["a chest x-ray"])[0]
    batched = encoder.encode_texts(["a chest x-ray", "right lower lobe consolidation of the lung"])[0]
    assert not np.allclose(alone, batched, atol=1e-4)
    np.testing.assert_allclose(
        batched, reference_text(tiny_medclip_vit, TEXTS[:1] + TEXTS[1:2])[0], atol=1e-6
    )


def test_zip_file_and_safetensors_load_the_same(tiny_medclip_vit, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from pedclip.models.checkpoint import file_sha256

    folder = tiny_medclip_vit.folder
    archive = zip_of(folder, tmp_path / "medclip-vit-pretrained.zip")
    safe = tmp_path / "safe"
    shutil.copytree(folder, safe, ignore=shutil.ignore_patterns("pytorch_model.bin"))
    save_file({k: v.contiguous() for k, v in tiny_medclip_vit.state.items()}, str(safe / "model.safetensors"))
    from_folder = load_encoder("medclip:vit", weights=folder)
    pixels = from_folder.preprocess(sample_images()[0])[None]
    expected = from_folder.encode_images(pixels)
    # the zip carries only the weights: configs come from the HF cache (here a fake one built from the folder)
    cache = _fake_hub_cache(tmp_path / "hf", folder)
    for weights in (archive, folder / "pytorch_model.bin", safe):
        encoder = (
            load_encoder("medclip:vit", weights=weights)
            if weights != archive
            else _with_cache(cache, archive)
        )
        np.testing.assert_array_equal(encoder.encode_images(pixels), expected)
        assert encoder.weights_id == file_sha256(
            weights if weights.is_file() else weights / "model.safetensors"
        )


def zip_of(folder: Path, out: Path) -> Path:
    """The released zip: a top folder holding pytorch_model.bin."""
    with zipfile.ZipFile(out, "w") as archive:
        archive.write(folder / "pytorch_model.bin", "medclip-vit-pretrained/pytorch_model.bin")
    return out


def _fake_hub_cache(root: Path, folder: Path) -> Path:
    swin = root / "models--microsoft--swin-tiny-patch4-window7-224" / "snapshots" / "r1"
    bert = root / "models--emilyalsentzer--Bio_ClinicalBERT" / "snapshots" / "r2"
    swin.mkdir(parents=True)
    bert.mkdir(parents=True)
    shutil.copy(folder / "vision" / "config.json", swin / "config.json")
    shutil.copy(folder / "text" / "config.json", bert / "config.json")
    shutil.copy(folder / "text" / "vocab.txt", bert / "vocab.txt")
    return root


def _with_cache(cache: Path, weights: Path):
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_CACHE", str(cache))
    try:
        return load_encoder("medclip:vit", weights=weights)
    finally:
        mp.undo()


def test_logit_scale_is_clamped_like_medclip(tiny_medclip_vit, tmp_path: Path) -> None:
    folder = tmp_path / "big-scale"
    shutil.copytree(tiny_medclip_vit.folder, folder)
    torch.save({**tiny_medclip_vit.state, "logit_scale": torch.tensor(6.0)}, folder / "pytorch_model.bin")
    encoder = load_encoder("medclip:vit", weights=folder)
    assert encoder.logit_scale == pytest.approx(np.exp(4.6052), rel=1e-6)


@pytest.mark.parametrize("change", ["extra", "missing", "wrong_position_ids"])
def test_strict_loading_reports_bad_keys(tiny_medclip_vit, tmp_path: Path, change: str) -> None:
    state = dict(tiny_medclip_vit.state)
    if change == "extra":
        state["vision_model.model.surprise"] = torch.zeros(1)
    elif change == "missing":
        del state["text_model.model.pooler.dense.weight"]
    else:
        state["text_model.model.embeddings.position_ids"] = torch.zeros(1, 80, dtype=torch.long)
    folder = tmp_path / change
    shutil.copytree(tiny_medclip_vit.folder, folder)
    torch.save(state, folder / "pytorch_model.bin")
    expected = {
        "extra": "unexpected.*surprise",
        "missing": "missing.*pooler.dense.weight",
        "wrong_position_ids": "position_ids",
    }
    with pytest.raises(PedclipError, match=expected[change]):
        load_encoder("medclip:vit", weights=folder)


def test_offline_without_configs_names_the_hub_repo(tiny_medclip_vit, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(tiny_medclip_vit.folder / "pytorch_model.bin", bare / "pytorch_model.bin")
    with pytest.raises(PedclipError, match="microsoft/swin-tiny-patch4-window7-224.*--weights"):
        load_encoder("medclip:vit", weights=bare)
    shutil.copytree(tiny_medclip_vit.folder / "vision", bare / "vision")
    with pytest.raises(PedclipError, match="emilyalsentzer/Bio_ClinicalBERT.*--weights"):
        load_encoder("medclip:vit", weights=bare)


def test_missing_weights_name_the_zip_and_flag(home: Path) -> None:
    with pytest.raises(PedclipError) as info:
        load_encoder("medclip:vit", home=home)
    assert "medclip-vit-pretrained.zip" in str(info.value) and "medclip_vit_weight.txt" in str(info.value)
    assert "--weights" in str(info.value)
    with pytest.raises(PedclipError, match="medclip-pretrained.zip"):
        load_encoder("medclip:resnet", home=home)


def test_default_location_under_checkpoints(tiny_medclip_vit, home: Path) -> None:
    shutil.copytree(tiny_medclip_vit.folder, home / "checkpoints" / "medclip-vit")
    encoder = load_encoder("medclip:vit", home=home)
    assert encoder.fingerprint == load_encoder("medclip:vit", weights=tiny_medclip_vit.folder).fingerprint


def test_bf16_medclip_is_close_to_fp32(tiny_medclip_vit) -> None:
    fp32 = load_encoder("medclip:vit", weights=tiny_medclip_vit.folder)
    bf16 = load_encoder("medclip:vit", weights=tiny_medclip_vit.folder, dtype="bf16")
    assert bf16.fingerprint != fp32.fingerprint
    pixels = fp32.preprocess(sample_images()[0])[None]
    assert float(np.sum(bf16.encode_images(pixels) * fp32.encode_images(pixels))) > 0.97
    assert np.min(np.sum(bf16.encode_texts(TEXTS) * fp32.encode_texts(TEXTS), axis=1)) > 0.97
