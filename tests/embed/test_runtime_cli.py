"""`--runtime` and `--dtype` through the CLI: ONNX Runtime embeds the same vectors under the same fingerprint;
bf16 without bf16 hardware and int8 under torch are refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pedclip.cli import main
from pedclip.config import Paths
from pedclip.models.runtime import BF16_FLAGS, cpu_flags
from pedclip.store.embeddings import case_vectors
from tests.embed.conftest import insert_dataset, write_images

TINY = "openclip:pedclip-tiny"


def test_embed_with_onnx_runtime_gives_torch_vectors(capsys, store, home, tmp_path, tiny_encoder) -> None:
    pytest.importorskip("onnxruntime")
    insert_dataset(store, "ds", write_images(tmp_path / "img", 6))
    capsys.readouterr()
    args = ["--home", str(home), "embed", "--model", TINY, "--dataset", "ds", "--workers", "0", "--json"]
    assert main([*args, "--runtime", "onnx"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["embedded"], report["fingerprint"]) == (6, tiny_encoder.fingerprint)
    assert (Paths.at(home).onnx / tiny_encoder.fingerprint / "image-64-fp32.onnx").is_file()
    frame, vectors = case_vectors(store, tiny_encoder.fingerprint, "ds")
    from pedclip.embed.pixels import load_pixels

    pixels = load_pixels(store.paths.pixels, tiny_encoder.preprocess_config, frame)
    expected = tiny_encoder.encode_images(tiny_encoder.normalize(pixels))
    assert float(np.min(np.sum(vectors * expected, axis=1))) >= 0.99999


def test_bf16_without_hardware_and_int8_under_torch_are_one_line_errors(capsys, store, home) -> None:
    if set(BF16_FLAGS) & cpu_flags():
        pytest.skip("this CPU has bf16 hardware")
    for extra in (["--dtype", "bf16"], ["--dtype", "int8", "--runtime", "torch"]):
        capsys.readouterr()
        code = main(["--home", str(home), "embed-text", "--model", TINY, "a chest x-ray", *extra])
        err = capsys.readouterr().err.strip()
        assert code != 0 and len(err.splitlines()) == 1, err
        assert ("fp32" in err and "int8" in err) if "bf16" in extra else "--runtime onnx" in err
