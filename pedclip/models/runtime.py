"""Which engine runs a model's towers: torch (eager) or ONNX Runtime, and which dtypes a CPU can really run.

`auto` is ONNX Runtime on a CPU when `onnxruntime` is importable (same vectors within cosine 0.99999, ~1.2x
faster on AVX2: bench/README.md) and torch everywhere else (CUDA, or onnxruntime missing). fp32 under either
runtime is the same computation and shares one fingerprint; int8 (ORT dynamic quantisation) is another
computation with its own. The onnxruntime import is a parameter (`importer`), so "not installed" is testable
without uninstalling anything.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from pedclip.errors import PedclipError

RUNTIMES = ("auto", "torch", "onnx")
ONNX_ONLY_DTYPES = ("int8",)  # ORT dynamic quantisation; torch has no runner for these here
INSTALL_HINT = "pip install 'pedclip[onnx]' (or: pip install onnxruntime onnx)"
BF16_FLAGS = ("avx512_bf16", "amx_bf16")

Importer = Callable[[str], ModuleType]


def import_onnxruntime(importer: Importer = importlib.import_module) -> ModuleType:
    """onnxruntime, or a one-line error with the install hint."""
    try:
        return importer("onnxruntime")
    except ImportError as exc:
        raise PedclipError(
            f"--runtime onnx needs onnxruntime, which is not installed; {INSTALL_HINT}"
        ) from exc


def onnxruntime_available(importer: Importer = importlib.import_module) -> bool:
    try:
        import_onnxruntime(importer)
        return True
    except PedclipError:
        return False


def resolve_runtime(
    runtime: str, device: str, dtype: str, importer: Importer = importlib.import_module
) -> str:
    """auto|torch|onnx (+ device, dtype) -> the runtime that will run: 'torch' or 'onnx'."""
    if runtime not in RUNTIMES:
        raise PedclipError(f"unknown runtime {runtime!r}; expected one of: {', '.join(RUNTIMES)}")
    on_cpu = str(device).startswith("cpu")
    if runtime == "onnx" or (runtime == "auto" and dtype in ONNX_ONLY_DTYPES):
        if not on_cpu:
            raise PedclipError(f"--runtime onnx runs on the CPU; got --device {device}; use --runtime torch")
        import_onnxruntime(importer)
        resolved = "onnx"
    elif runtime == "auto":
        resolved = "onnx" if on_cpu and dtype == "fp32" and onnxruntime_available(importer) else "torch"
    else:
        resolved = "torch"
    if dtype in ONNX_ONLY_DTYPES and resolved != "onnx":
        raise PedclipError(
            f"--dtype {dtype} is ONNX Runtime's dynamic quantisation; use --runtime onnx or auto"
        )
    return resolved


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo is unreadable, e.g. macOS)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def check_dtype_hardware(dtype: str, device: str, flags: set[str] | None = None) -> None:
    """Refuse bf16 on a CPU that would only emulate it (measured ~7x slower than fp32 here, not faster)."""
    if dtype != "bf16" or not str(device).startswith("cpu"):
        return
    flags = cpu_flags() if flags is None else flags
    if flags and not flags & set(BF16_FLAGS):
        raise PedclipError(
            "--dtype bf16: this CPU has no bf16 hardware (no avx512_bf16 or amx_bf16 in /proc/cpuinfo), so torch"
            " emulates it, ~7x slower than fp32; use --dtype fp32 (exact) or --dtype int8 (faster, approximate)"
        )
