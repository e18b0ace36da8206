"""`fingerprint_for` gives exactly `load_encoder(...).fingerprint` for every family, without building a model;
`pedclip embed` on a fully cached dataset answers without loading one."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pedclip.cli import main
from pedclip.errors import PedclipError
from pedclip.models import fingerprint_for, load_encoder, save_local
from pedclip.models.openclip_config import CONFIG_DIR

TINY = "openclip:pedclip-tiny"
SIGLIP_LIKE = {
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
    "resize_mode": "squash",
    "interpolation": "bilinear",
}


def _tiny_weights(path: Path, seed: int = 1) -> Path:
    from safetensors.torch import save_file

    state = load_encoder(TINY, seed=seed).modules["model"].state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def _hub_snapshot(root: Path, repo: str, revision: str) -> Path:
    snapshot = root / f"models--{repo.replace('/', '--')}" / "snapshots" / revision
    snapshot.mkdir(parents=True)
    return snapshot


def _offline_hub(monkeypatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def case_untrained(**_) -> tuple[str, dict]:
    return TINY, {}


def case_seed_bf16(**_) -> tuple[str, dict]:
    return TINY, {"seed": 3, "dtype": "bf16"}


def case_weights_file(tmp_path, **_) -> tuple[str, dict]:
    return TINY, {"weights": _tiny_weights(tmp_path / "w.safetensors")}


def case_weights_folder(tmp_path, **_) -> tuple[str, dict]:
    _tiny_weights(tmp_path / "folder" / "open_clip_model.safetensors")
    return TINY, {"weights": tmp_path / "folder"}


def case_hub_tag(tmp_path, monkeypatch, home, **_) -> tuple[str, dict]:
    """A weights tag for pedclip-tiny (SigLIP-like preprocess) whose file sits in the offline HF cache."""
    import open_clip

    hub = _offline_hub(monkeypatch, tmp_path)
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "pedclip-tiny",
                        {"test": {"url": "", "hf_hub": "org/tiny-clip/", "quick_gelu": True, **SIGLIP_LIKE}})  # fmt: skip
    _tiny_weights(_hub_snapshot(hub, "org/tiny-clip", "rev1") / "open_clip_model.safetensors")
    return f"{TINY}/test", {"home": home}


def case_hf_hub(tmp_path, monkeypatch, with_weights: bool = False, **_) -> tuple[str, dict]:
    snapshot = _hub_snapshot(_offline_hub(monkeypatch, tmp_path), "org/tiny", "rev9")
    model_cfg = json.loads((CONFIG_DIR / "pedclip-tiny.json").read_text())
    config = {"model_cfg": model_cfg, "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3}}
    (snapshot / "open_clip_config.json").write_text(json.dumps(config))
    _tiny_weights(snapshot / "open_clip_model.safetensors")
    kwargs = {"weights": _tiny_weights(tmp_path / "other.safetensors", seed=2)} if with_weights else {}
    return "openclip:hf-hub:org/tiny", kwargs


def case_hf_hub_weights(**ctx) -> tuple[str, dict]:
    return case_hf_hub(**ctx, with_weights=True)


def case_medclip_vit(request, **_) -> tuple[str, dict]:
    return "medclip:vit", {"weights": request.getfixturevalue("tiny_medclip_vit").folder}


def case_medclip_resnet_bf16(request, **_) -> tuple[str, dict]:
    return "medclip:resnet", {
        "weights": request.getfixturevalue("tiny_medclip_resnet").folder,
        "dtype": "bf16",
    }


def case_medclip_default_place(request, home, **_) -> tuple[str, dict]:
    shutil.copytree(request.getfixturevalue("tiny_medclip_vit").folder, home / "checkpoints" / "medclip-vit")
    return "medclip:vit", {"home": home}


def case_local_openclip(tmp_path, **_) -> tuple[str, dict]:
    return f"local:{save_local(load_encoder(TINY, seed=4), tmp_path / 'run')}", {}


def case_local_medclip(tmp_path, request, **_) -> tuple[str, dict]:
    return f"local:{save_local(request.getfixturevalue('tiny_medclip'), tmp_path / 'run')}", {"dtype": "bf16"}


def case_demo(home, **_) -> tuple[str, dict]:
    save_local(load_encoder(TINY, seed=5), home / "checkpoints" / "demo-clip")
    return "demo:clip", {"home": home}


CASES = [case_untrained, case_seed_bf16, case_weights_file, case_weights_folder, case_hub_tag, case_hf_hub,
         case_hf_hub_weights, case_medclip_vit, case_medclip_resnet_bf16, case_medclip_default_place,
         case_local_openclip, case_local_medclip, case_demo]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__[len("case_") :])
def test_fingerprint_for_equals_the_loaded_encoders(case, request, tmp_path, home, monkeypatch) -> None:
    spec, kwargs = case(tmp_path=tmp_path, monkeypatch=monkeypatch, request=request, home=home)
    cheap = fingerprint_for(spec, **kwargs)
    assert cheap == load_encoder(spec, **kwargs).fingerprint
    assert fingerprint_for(spec, **kwargs) == cheap  # again: memos (open_clip tag table) change nothing
    assert len(cheap) == 20


def test_fingerprints_differ_where_the_models_do(tmp_path: Path) -> None:
    prints = {fingerprint_for(TINY), fingerprint_for(TINY, seed=1), fingerprint_for(TINY, dtype="bf16"),
              fingerprint_for(TINY, weights=_tiny_weights(tmp_path / "w.safetensors")),
              fingerprint_for("openclip:ViT-B-32-quickgelu")}  # fmt: skip
    assert len(prints) == 5


def test_hub_tag_preprocess_is_the_tags_own(tmp_path, monkeypatch, request, home) -> None:
    """Building with pretrained=None skipped the tag's mean/std/resize mode; the loader now applies them."""
    spec, _ = case_hub_tag(tmp_path=tmp_path, monkeypatch=monkeypatch, request=request, home=home)
    encoder = load_encoder(spec)
    config = encoder.preprocess_config
    assert (config.kind, config.mean, config.std, config.interpolation, config.size) == (
        "squash", SIGLIP_LIKE["mean"], SIGLIP_LIKE["std"], "bilinear", 64)  # fmt: skip
    assert encoder.weights_id == "hf:org/tiny-clip@rev1/open_clip_model.safetensors"


def _fingerprint_in_a_fresh_process(spec: str, home: Path) -> list[str]:
    code = ("import sys; from pedclip.models import fingerprint_for; "
            f"print(fingerprint_for({spec!r}, home={str(home)!r}), 'torch' in sys.modules, 'open_clip' in sys.modules)")  # fmt: skip
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()


def test_untagged_openclip_needs_neither_torch_nor_open_clip(home) -> None:
    assert _fingerprint_in_a_fresh_process(TINY, home) == [load_encoder(TINY).fingerprint, "False", "False"]


def test_a_tag_imports_open_clip_once_per_home(tmp_path, monkeypatch, home) -> None:
    """The study's CLIP: the first call asks open_clip's tag table, later ones (other processes too) the memo."""
    from pedclip.models import openclip

    hub = _offline_hub(monkeypatch, tmp_path)  # the child process inherits this environment
    (
        _hub_snapshot(hub, "timm/vit_base_patch32_clip_224.openai", "r1") / "open_clip_model.safetensors"
    ).touch()
    spec = "openclip:ViT-B-32-quickgelu/openai"
    first = fingerprint_for(spec, home=home)
    assert list((home / "cache").glob("open_clip-*-tags-v*.json"))
    assert _fingerprint_in_a_fresh_process(spec, home) == [first, "False", "False"]
    monkeypatch.setattr(
        openclip, "resolve_name", lambda *a: pytest.fail("open_clip's tag table was asked again")
    )
    assert fingerprint_for(spec, home=home) == first == fingerprint_for(spec, home=home, seed=5)
    assert first != fingerprint_for(spec, home=home, dtype="bf16")


def test_errors_are_the_loaders(tmp_path: Path) -> None:
    cases = [("openclip:ViT-B-32-quickgel", {}, "unknown open_clip model"),
             ("openclip:ViT-B-32-quickgelu/nope", {}, "invalid weights tag 'nope'"),
             (TINY, {"weights": tmp_path / "missing.pt"}, "does not exist"),
             (TINY, {"dtype": "fp8"}, "unknown dtype"),
             (f"local:{tmp_path / 'none'}", {}, "does not exist"),
             ("demo:clip", {"home": tmp_path}, "not built yet")]  # fmt: skip
    for spec, kwargs, message in cases:
        with pytest.raises(PedclipError, match=message):
            fingerprint_for(spec, **kwargs)
        with pytest.raises(PedclipError, match=message):
            load_encoder(spec, **kwargs)


def _insert_images(store, folder: Path, n: int) -> None:
    from pedclip.store.cases import CaseRow, replace_cases, upsert_dataset

    folder.mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        path = folder / f"img{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 50), dtype=np.uint8), "L").save(path)
        rows.append(CaseRow(case_id=path.name, path=str(path), image_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                            width=50, height=40, mode="L", label=i % 2, split="test"))  # fmt: skip
    upsert_dataset(store, "d", "folders", str(folder), ["normal", "pneumonia"])
    replace_cases(store, "d", rows)


def test_warm_embed_loads_no_model_and_reports_the_same(store, home, tmp_path, capsys, monkeypatch) -> None:
    import pedclip.models

    _insert_images(store, tmp_path / "images", 3)
    command = ["--home", str(home), "embed", "--model", TINY, "--dataset", "d", "--workers", "0", "--json"]
    assert main(command) == 0
    cold = json.loads(capsys.readouterr().out)

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded although every image is cached")

    with monkeypatch.context() as patch:
        patch.setattr(pedclip.models, "load_encoder", refuse)
        assert main(command) == 0
        warm = json.loads(capsys.readouterr().out)
    assert set(warm) == set(cold) and set(warm["seconds"]) == set(cold["seconds"])
    assert cold["embedded"] == 3 and warm["embedded"] == 0 and warm["already_embedded"] == 3
    assert warm["fingerprint"] == cold["fingerprint"] == load_encoder(TINY).fingerprint
    _insert_images(store, tmp_path / "images", 4)  # one more image: now the model is needed again
    assert main(command) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["embedded"], again["already_embedded"]) == (1, 3)
