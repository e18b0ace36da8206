"""ONNX graphs of torch towers on disk: exported once, hashed, checked on every load, rebuilt when wrong.

A graph is named by `GraphKey` (model fingerprint, tower, image size, dtype) and lives at
`<home>/onnx/<fingerprint>/<tower>-<size>-<dtype>.onnx` with a JSON sidecar recording that key, the export
format and the file's sha256. A graph whose sidecar is missing, names another key or format, or whose bytes no
longer hash to the recorded value (a truncated copy, a crashed export, an edited file) is never used: it is
exported again. Files appear only complete (written under a temporary name, then renamed).

Exporter: torch's TorchScript-based exporter (`dynamo=False`). torch 2.14 defaults to the torch.export-based
one, which needs the extra `onnxscript` package (and onnx_ir) and re-traces through torch.export, which HF's
data-dependent mask code resists; the tracer exports every tower here (open_clip, Swin, ResNet, BERT) in
seconds, and every export is verified against torch before use, so a trace that baked in a shape would be
caught and fall back to torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pedclip.models.checkpoint import file_sha256, quiet_root_logger

FORMAT = 1  # bump when the export recipe changes: every older graph becomes stale and is rebuilt
OPSET = 17
EXACT_COSINE = 0.99999  # fp32 ONNX vs torch, per vector; below this the graph is not used


@dataclass(frozen=True)
class GraphKey:
    """What one exported graph computes; its path and sidecar derive from it."""

    fingerprint: str  # the encoder's fingerprint (dtype included, so int8 has its own folder)
    tower: str  # image | text
    size: int  # image side in pixels; 0 for text towers
    dtype: str  # fp32 | int8

    def path(self, onnx_root: Path) -> Path:
        return Path(onnx_root) / self.fingerprint / f"{self.tower}-{self.size}-{self.dtype}.onnx"

    def identity(self) -> dict:
        return {**asdict(self), "format": FORMAT, "opset": OPSET}


def sidecar_path(graph: Path) -> Path:
    return graph.with_suffix(".json")


def stale_reason(key: GraphKey, onnx_root: Path) -> str | None:
    """None when the graph on disk is exactly the one `key` names; else why it cannot be used."""
    graph = key.path(onnx_root)
    if not graph.is_file():
        return "not exported yet"
    try:
        recorded = json.loads(sidecar_path(graph).read_text())
    except (OSError, ValueError):
        return "no readable sidecar"
    if recorded.get("key") != key.identity():
        return "exported for another model, size, dtype or export format"
    if recorded.get("sha256") != file_sha256(graph):
        return "file changed since export (hash mismatch)"
    return None


def record(key: GraphKey, onnx_root: Path, extra: dict | None = None) -> None:
    """Write the sidecar of a freshly exported graph: its key and the sha256 of its bytes."""
    graph = key.path(onnx_root)
    document = {"key": key.identity(), "sha256": file_sha256(graph), **(extra or {})}
    _atomic_write(sidecar_path(graph), json.dumps(document, indent=2, sort_keys=True).encode())


def remove(key: GraphKey, onnx_root: Path) -> None:
    graph = key.path(onnx_root)
    for path in (graph, sidecar_path(graph)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def export_module(
    module,
    example: tuple,
    input_names: Sequence[str],
    dynamic_axes: dict[str, dict[int, str]],
    out: Path,
) -> None:
    """torch.onnx.export (TorchScript tracer, opset 17) of `module(*example)` to `out`, atomically."""
    import torch

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    # Grad mode on: under no_grad nn.MultiheadAttention takes a fused fast path the exporter cannot write.
    with warnings.catch_warnings(), torch.inference_mode(False), torch.enable_grad():
        warnings.simplefilter("ignore")  # the tracer's deprecation and TracerWarnings: verification decides
        example = tuple(t.clone() for t in example)  # not inference tensors, whatever mode made them
        torch.onnx.export(
            module,
            example,
            str(tmp),
            dynamo=False,
            input_names=list(input_names),
            output_names=["features"],
            dynamic_axes={**dynamic_axes, "features": {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
        )
    os.replace(tmp, out)


def quantize_int8(source: Path, out: Path) -> None:
    """ORT dynamic quantisation: int8 weights (per output channel) for MatMul/Gemm, activations quantised
    per batch at run time. Convolutions stay fp32, so a ResNet tower gains little (bench/README.md)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    with quiet_root_logger():  # the quantiser advises pre-processing on the root logger; measured, not needed
        quantize_dynamic(
            str(source),
            str(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Gemm"],
        )
    os.replace(tmp, out)


def cpu_session(ort, path: Path, threads: int):
    """An ORT CPU session with full graph optimisation; idle threads sleep instead of spinning, so decoding
    workers on the same cores get them between batches."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest row-wise cosine between two (n, d) feature arrays."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return float(np.min(np.sum(a.astype(np.float64) * b, axis=1)))
