"""ONNX Runtime towers: same vectors as torch for every tower family, exported once per (fingerprint, size),
rebuilt when the file on disk is corrupt or stale, int8 under its own fingerprint, clear errors."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from pedclip.config import Paths
from pedclip.errors import PedclipError
from pedclip.models import fingerprint_for, load_encoder, save_local
from pedclip.models.onnx_export import EXACT_COSINE, GraphKey, sidecar_path, stale_reason
from pedclip.models.onnx_towers import TEXT_BUCKETS, OnnxTower, TowerGraph
from pedclip.models.runtime import check_dtype_hardware, resolve_runtime

pytest.importorskip("onnxruntime")
TINY = "openclip:pedclip-tiny"
TEXTS = ["a chest x-ray", "pneumonia of the right lower lobe", "normal"]
# Long enough for the second length bucket, so a batch of short and long prompts crosses buckets.
LONG = (
    "a frontal chest radiograph of a child showing a dense consolidation of the right lower lobe, no effusion"
)


def _pixels(encoder, n: int = 3, seed: int = 1) -> torch.Tensor:
    config = encoder.preprocess_config
    return torch.randn(
        n, config.channels, config.size, config.size, generator=torch.Generator().manual_seed(seed)
    )


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))  # both L2-normalised by the Encoder


def _assert_same_vectors(torch_encoder, onnx_encoder, texts=TEXTS) -> None:
    assert onnx_encoder.runtime == "onnx" and onnx_encoder.fingerprint == torch_encoder.fingerprint
    pixels = _pixels(torch_encoder)
    assert (
        _min_cosine(onnx_encoder.encode_images(pixels), torch_encoder.encode_images(pixels)) >= EXACT_COSINE
    )
    assert _min_cosine(onnx_encoder.encode_texts(texts), torch_encoder.encode_texts(texts)) >= EXACT_COSINE
    assert not onnx_encoder.image_tower.fallback and not onnx_encoder.text_tower.fallback


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory) -> Path:
    """One home whose tiny open_clip graphs are exported once for the module's tests."""
    home = tmp_path_factory.mktemp("onnx-home")
    encoder = load_encoder(TINY, runtime="onnx", home=home)
    encoder.encode_images(_pixels(encoder))
    encoder.encode_texts(TEXTS)
    return home


def test_openclip_towers_match_torch_and_text_keeps_the_trim(tiny_home: Path) -> None:
    reference = load_encoder(TINY)
    onnx = load_encoder(TINY, runtime="onnx", home=tiny_home)
    _assert_same_vectors(reference, onnx, [*TEXTS, LONG])
    graphs = sorted(p.name for p in (Paths.at(tiny_home).onnx / reference.fingerprint).glob("*.onnx"))
    # Short prompts ran the smallest trimmed-length graph, the long one a longer one: never the full 77.
    assert graphs[0] == "image-64-fp32.onnx"
    assert {g for g in graphs if g.startswith("text-")} <= {f"text-{b}-fp32.onnx" for b in TEXT_BUCKETS[:3]}
    assert len([g for g in graphs if g.startswith("text-")]) == 2


def test_describing_an_onnx_encoder_builds_no_text_session(tmp_path: Path) -> None:
    onnx = load_encoder(TINY, runtime="onnx", home=tmp_path)
    assert onnx.describe()["dim"] == load_encoder(TINY).dim
    assert onnx.text_tower._sessions == {} and not list(Paths.at(tmp_path).onnx.rglob("text-*.onnx"))


def test_dynamic_batch_one_graph_for_every_batch_size(tiny_home: Path) -> None:
    reference, onnx = load_encoder(TINY), load_encoder(TINY, runtime="onnx", home=tiny_home)
    for n in (1, 5):
        pixels = _pixels(reference, n, seed=n)
        assert _min_cosine(onnx.encode_images(pixels), reference.encode_images(pixels)) >= EXACT_COSINE


def test_medclip_swin_and_bert_match_torch(tiny_medclip_vit, tmp_path: Path) -> None:
    reference = load_encoder("medclip:vit", weights=tiny_medclip_vit.folder)
    onnx = load_encoder("medclip:vit", weights=tiny_medclip_vit.folder, runtime="onnx", home=tmp_path)
    # MedCLIP pads to the longest prompt of a call: two calls of different padded lengths, one graph
    _assert_same_vectors(reference, onnx, TEXTS)
    _assert_same_vectors(reference, onnx, ["normal", "lungs"])


def test_medclip_resnet_matches_torch(tiny_medclip_resnet, tmp_path: Path) -> None:
    reference = load_encoder("medclip:resnet", weights=tiny_medclip_resnet.folder)
    onnx = load_encoder("medclip:resnet", weights=tiny_medclip_resnet.folder, runtime="onnx", home=tmp_path)
    pixels = _pixels(reference)
    assert _min_cosine(onnx.encode_images(pixels), reference.encode_images(pixels)) >= EXACT_COSINE


def test_local_checkpoint_matches_torch(tiny_home: Path, tmp_path: Path) -> None:
    folder = save_local(load_encoder(TINY, seed=3), tmp_path / "child")
    reference = load_encoder(f"local:{folder}")
    _assert_same_vectors(reference, load_encoder(f"local:{folder}", runtime="onnx", home=tmp_path / "home"))


def test_another_model_exports_anew_and_size_names_the_graph(tiny_home: Path) -> None:
    first = load_encoder(TINY, runtime="onnx", home=tiny_home)
    other = load_encoder(TINY, runtime="onnx", home=tiny_home, seed=1)
    assert other.fingerprint != first.fingerprint
    root = Paths.at(tiny_home).onnx
    assert not (root / other.fingerprint).exists()
    other.encode_images(_pixels(other))
    assert (root / other.fingerprint / "image-64-fp32.onnx").is_file()
    key = GraphKey(first.fingerprint, "image", 64, "fp32")
    assert GraphKey(first.fingerprint, "image", 96, "fp32").path(root) != key.path(root)
    assert stale_reason(key, root) is None


def _damage(graph: Path, how: str) -> None:
    if how == "flip a byte":
        data = bytearray(graph.read_bytes())
        data[len(data) // 2] ^= 0xFF
        graph.write_bytes(bytes(data))
    elif how == "truncate":
        graph.write_bytes(graph.read_bytes()[:1000])
    elif how == "stale format":
        sidecar = json.loads(sidecar_path(graph).read_text())
        sidecar["key"]["format"] = -1
        sidecar_path(graph).write_text(json.dumps(sidecar))
    else:
        sidecar_path(graph).unlink()


def test_every_kind_of_damage_is_detected(tiny_home: Path, tmp_path: Path) -> None:
    fingerprint = load_encoder(TINY).fingerprint
    source = GraphKey(fingerprint, "image", 64, "fp32").path(Paths.at(tiny_home).onnx)
    for how in ("flip a byte", "truncate", "stale format", "no sidecar"):
        root = tmp_path / how
        copy = GraphKey(fingerprint, "image", 64, "fp32").path(root)
        copy.parent.mkdir(parents=True)
        copy.write_bytes(source.read_bytes())
        sidecar_path(copy).write_bytes(sidecar_path(source).read_bytes())
        assert stale_reason(GraphKey(fingerprint, "image", 64, "fp32"), root) is None
        _damage(copy, how)
        assert stale_reason(GraphKey(fingerprint, "image", 64, "fp32"), root) is not None, how


@pytest.mark.parametrize("damage", ["flip a byte", "stale format"])
def test_corrupt_or_stale_graph_is_rebuilt_never_used(tmp_path: Path, damage: str) -> None:
    encoder = load_encoder(TINY, runtime="onnx", home=tmp_path)
    pixels = _pixels(encoder)
    expected = encoder.encode_images(pixels)
    root, key = Paths.at(tmp_path).onnx, GraphKey(encoder.fingerprint, "image", 64, "fp32")
    _damage(key.path(root), damage)
    assert stale_reason(key, root) is not None
    again = load_encoder(TINY, runtime="onnx", home=tmp_path)
    assert _min_cosine(again.encode_images(pixels), expected) >= EXACT_COSINE
    assert stale_reason(key, root) is None and not again.image_tower.fallback


def test_int8_has_its_own_fingerprint_and_graph(tiny_home: Path) -> None:
    fp32 = load_encoder(TINY)
    int8 = load_encoder(TINY, runtime="onnx", dtype="int8", home=tiny_home)
    assert int8.fingerprint != fp32.fingerprint
    assert int8.fingerprint == fingerprint_for(TINY, dtype="int8")
    pixels = _pixels(fp32)
    assert _min_cosine(int8.encode_images(pixels), fp32.encode_images(pixels)) > 0.9  # close, not equal
    assert (Paths.at(tiny_home).onnx / int8.fingerprint / "image-64-int8.onnx").is_file()
    with pytest.raises(PedclipError, match="int8"):
        load_encoder(TINY, runtime="torch", dtype="int8")


def test_a_graph_that_differs_from_torch_falls_back_with_one_warning(tmp_path: Path) -> None:
    class Traced(torch.nn.Module):  # the tracer bakes the numpy round trip into a constant
        def forward(self, x):
            return torch.from_numpy(x.detach().numpy() * 2.0) + x

    tower = Traced()
    examples = (torch.randn(2, 4), torch.randn(2, 4))
    graph = TowerGraph(tower, lambda x, size: {"pixels": x}, lambda x: 4, {"pixels": {0: "batch"}}, examples)
    onnx = OnnxTower(tower, lambda: graph, GraphKey("f" * 20, "image", 4, "fp32"), tmp_path)
    x = torch.randn(3, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert torch.equal(onnx(x), tower(x))
        onnx(x)
    assert onnx.fallback and len(caught) == 1 and "running it in torch" in str(caught[0].message)
    assert not GraphKey("f" * 20, "image", 4, "fp32").path(tmp_path).exists()


def _missing(name: str):
    raise ImportError(f"No module named {name!r}")


def test_runtime_resolution_and_the_missing_onnxruntime_hint() -> None:
    assert resolve_runtime("auto", "cpu", "fp32") == "onnx"
    assert resolve_runtime("auto", "cuda:0", "fp32") == "torch"
    assert resolve_runtime("auto", "cpu", "bf16") == "torch"
    assert resolve_runtime("auto", "cpu", "fp32", importer=_missing) == "torch"
    assert resolve_runtime("torch", "cpu", "fp32") == "torch"
    with pytest.raises(PedclipError, match=r"needs onnxruntime.*pip install") as caught:
        resolve_runtime("onnx", "cpu", "fp32", importer=_missing)
    assert "\n" not in str(caught.value)
    with pytest.raises(PedclipError, match="runtime onnx runs fp32 or int8"):
        resolve_runtime("onnx", "cpu", "bf16")
    with pytest.raises(PedclipError, match="unknown runtime"):
        resolve_runtime("tensorrt", "cpu", "fp32")


def test_bf16_refused_on_a_cpu_without_bf16_hardware() -> None:
    with pytest.raises(PedclipError, match="fp32.*int8") as caught:
        check_dtype_hardware("bf16", "cpu", flags={"avx2", "fma"})
    assert "\n" not in str(caught.value)
    check_dtype_hardware("bf16", "cpu", flags={"avx2", "amx_bf16"})
    check_dtype_hardware("bf16", "cuda:0", flags={"avx2"})
    check_dtype_hardware("fp32", "cpu", flags={"avx2"})
