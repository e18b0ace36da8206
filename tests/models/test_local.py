"""`save_local` -> `local:DIR` round trips (open_clip and MedCLIP), the demo specs, and `list_specs`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from pedclip.errors import PedclipError
from pedclip.models import list_specs, load_encoder, save_local
from pedclip.models.checkpoint import file_sha256

AUDIT_SWIN_BLOCK = {  # audit section 3: one Swin block's keys in the released checkpoint
    "layernorm_before.weight", "layernorm_before.bias", "attention.self.query.weight", "attention.self.query.bias",
    "attention.self.key.weight", "attention.self.key.bias", "attention.self.value.weight", "attention.self.value.bias",
    "attention.self.relative_position_bias_table", "attention.self.relative_position_index",
    "attention.output.dense.weight", "attention.output.dense.bias", "layernorm_after.weight", "layernorm_after.bias",
    "intermediate.dense.weight", "intermediate.dense.bias", "output.dense.weight", "output.dense.bias",
}  # fmt: skip
TEXTS = ["a chest x-ray", "pneumonia"]


def _finetune_a_little(encoder) -> None:
    """Stand-in for training: change the weights in place so the child really differs."""
    with torch.no_grad():
        for param in list(encoder.modules["model"].parameters())[:3]:
            param.add_(0.01)


def test_openclip_round_trip_is_bit_identical(tmp_path: Path) -> None:
    parent = load_encoder("openclip:pedclip-tiny")
    child = load_encoder("openclip:pedclip-tiny")
    _finetune_a_little(child)
    out = save_local(child, tmp_path / "run-1", run_id="run-1", extra={"epochs": 2})
    loaded = load_encoder(f"local:{out}")
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(loaded.encode_images(pixels), child.encode_images(pixels))
    np.testing.assert_array_equal(loaded.encode_texts(TEXTS), child.encode_texts(TEXTS))
    manifest = json.loads((out / "pedclip_model.json").read_text())
    assert manifest["parent_fingerprint"] == parent.fingerprint == loaded.parent_fingerprint
    assert manifest["training_run"] == "run-1" and manifest["extra"] == {"epochs": 2}
    assert manifest["family"] == "openclip" and manifest["arch"] == {"open_clip": "pedclip-tiny"}
    assert file_sha256(out / "open_clip_model.safetensors") == manifest["weights_sha256"]
    assert loaded.weights_id.startswith(manifest["weights_sha256"] + "+configs:")
    assert loaded.fingerprint != parent.fingerprint and not loaded.untrained
    assert loaded.preprocess_config == parent.preprocess_config and loaded.spec == f"local:{out}"
    grandchild = save_local(loaded, tmp_path / "run-2")
    assert (
        json.loads((grandchild / "pedclip_model.json").read_text())["parent_fingerprint"]
        == loaded.fingerprint
    )


def test_medclip_round_trip_keeps_the_released_layout(tiny_medclip_vit, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    parent = load_encoder("medclip:vit", weights=tiny_medclip_vit.folder)
    _finetune_a_little(parent)
    out = save_local(parent, tmp_path / "ft")
    with safe_open(str(out / "model.safetensors"), "pt") as handle:
        keys = set(handle.keys())
    block = "vision_model.model.encoder.layers.0.blocks.0."
    assert {k[len(block) :] for k in keys if k.startswith(block)} == AUDIT_SWIN_BLOCK
    assert keys == set(tiny_medclip_vit.state)  # same names as the released file, position_ids included
    loaded = load_encoder(f"local:{out}")
    pixels = parent.preprocess(_image())[None]
    np.testing.assert_array_equal(loaded.encode_images(pixels), parent.encode_images(pixels))
    np.testing.assert_array_equal(loaded.encode_texts(TEXTS), parent.encode_texts(TEXTS))
    assert loaded.fingerprint != parent.fingerprint and loaded.parent_fingerprint == parent.fingerprint
    # the saved folder is itself a valid --weights folder for medclip:vit (configs and tokenizer beside it)
    again = load_encoder("medclip:vit", weights=out)
    np.testing.assert_array_equal(again.encode_texts(TEXTS), parent.encode_texts(TEXTS))


def _image():
    from PIL import Image

    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (100, 80), dtype=np.uint8), "L")


def test_bf16_child_saves_and_loads(tmp_path: Path) -> None:
    child = load_encoder("openclip:pedclip-tiny", dtype="bf16")
    out = save_local(child, tmp_path / "bf16")
    loaded = load_encoder(f"local:{out}", dtype="bf16")
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    np.testing.assert_array_equal(loaded.encode_images(pixels), child.encode_images(pixels))


def test_local_errors(tmp_path: Path) -> None:
    with pytest.raises(PedclipError, match="does not exist"):
        load_encoder(f"local:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PedclipError, match="pedclip_model.json"):
        load_encoder(f"local:{tmp_path / 'empty'}")


def test_demo_specs_need_pedclip_demo(home: Path, tmp_path: Path) -> None:
    with pytest.raises(PedclipError, match="run `pedclip demo`"):
        load_encoder("demo:clip", home=home)
    save_local(load_encoder("openclip:pedclip-tiny"), home / "checkpoints" / "demo-clip")
    assert load_encoder("demo:clip", home=home).spec == "demo:clip"


def test_list_specs_reports_presence(home: Path, tiny_medclip_resnet, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "no-cache"))
    rows = {row["spec"]: row for row in list_specs(home=home)}
    assert rows["openclip:ViT-B-32-quickgelu/openai"]["weights_present"] is False
    assert rows["openclip:pedclip-tiny"]["weights_present"] is True
    assert rows["medclip:vit"]["weights_present"] is False and rows["demo:clip"]["weights_present"] is False
    with_hint = {row["spec"]: row for row in list_specs(weights=tiny_medclip_resnet.folder, home=home)}
    assert with_hint["medclip:resnet"]["weights_present"] is True
    assert all({"spec", "family", "needs", "weights_present", "weights_at"} <= set(r) for r in rows.values())


def test_narrow_medclip_resnet_round_trips_with_its_width(tmp_path: Path) -> None:
    """The demo's quarter-width MedCLIP ResNet: saved as local:, rebuilt at its width from the keys alone."""
    from pedclip.demo.models import RESNET_WIDTH, untrained_medclip

    encoder = untrained_medclip(["clear lungs.", "right lower lobe consolidation."], seed=3, vision="resnet")
    conv1 = encoder.modules["model"].vision_model.model.conv1
    assert conv1.out_channels == RESNET_WIDTH < 64
    loaded = load_encoder(f"local:{save_local(encoder, tmp_path / 'narrow')}")
    assert loaded.arch["vision"]["width"] == RESNET_WIDTH
    assert loaded.modules["model"].vision_model.model.layer4[0].conv3.out_channels == RESNET_WIDTH * 8 * 4
    pixels = torch.rand(2, 1, 224, 224)
    np.testing.assert_array_equal(loaded.encode_images(pixels), encoder.encode_images(pixels))


def test_editing_a_local_config_changes_the_fingerprint(tmp_path: Path, home: Path) -> None:
    """Issue 11, defect 4: the fingerprint covers every file that changes the computation, not only the weights."""
    from pedclip.models import fingerprint_for

    out = save_local(load_encoder("openclip:pedclip-tiny"), tmp_path / "run-1")
    before = load_encoder(f"local:{out}")
    assert fingerprint_for(f"local:{out}", home=home) == before.fingerprint
    config_path = out / "open_clip_config.json"
    config = json.loads(config_path.read_text())
    config["model_cfg"]["quick_gelu"] = not config["model_cfg"].get("quick_gelu", False)
    config_path.write_text(json.dumps(config))
    after = load_encoder(f"local:{out}")
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    assert not np.allclose(after.encode_images(pixels), before.encode_images(pixels))  # the edit matters
    assert after.fingerprint != before.fingerprint
    assert fingerprint_for(f"local:{out}", home=home) == after.fingerprint
