"""One registry: spec family -> loader. `load_encoder(spec)` is the only way models are built.

Each family module registers itself with `@register(family, lister=...)`; the lister says which specs
of that family exist, what they need and whether their weights are on disk (for `pedclip models list`).
`fingerprint_for(spec)` gives the fingerprint `load_encoder(spec)` would, without building the model,
from the function each family registers with `@register_fingerprint(family)` in a module that does not
import torch at import time (FINGERPRINT_MODULES).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pedclip.errors import PedclipError
from pedclip.models.runtime import resolve_runtime
from pedclip.models.spec import FAMILIES, ModelSpec, parse_spec

if TYPE_CHECKING:
    from pedclip.models.base import Encoder

FAMILY_MODULES = {"openclip": "openclip", "medclip": "medclip", "local": "local", "demo": "local"}
FINGERPRINT_MODULES = {"openclip": "openclip_config", "medclip": "medclip", "local": "local", "demo": "local"}
LOAD_DTYPES = ("fp32", "bf16", "int8")


@dataclass(frozen=True)
class LoadOptions:
    """How to load a spec: weights file or folder (--weights), device, dtype, PEDCLIP_HOME, untrained seed,
    and the runtime that runs the towers."""

    weights: Path | None = None
    device: str = "cpu"
    dtype: str = "fp32"  # fp32 | bf16 (bf16 casts the weights; no autocast) | int8 (ONNX Runtime only)
    home: Path | None = None
    seed: int = 0  # only for untrained (random) weights
    runtime: str = "torch"  # auto | torch | onnx (models/runtime.py); training needs torch
    trust_torchscript: bool = False  # load a TorchScript file that is not OpenAI's (its code runs on load)
    towers: str = "both"  # both | text: "text" builds and loads no image tower where it can (text_only.py)


Loader = Callable[[ModelSpec, LoadOptions], "Encoder"]
Lister = Callable[[LoadOptions], list[dict]]
Fingerprinter = Callable[[ModelSpec, LoadOptions], str]


@dataclass(frozen=True)
class Family:
    loader: Loader
    lister: Lister | None


_FAMILIES: dict[str, Family] = {}
_FINGERPRINTERS: dict[str, Fingerprinter] = {}


def register(family: str, lister: Lister | None = None) -> Callable[[Loader], Loader]:
    """Decorator: make `loader` the loader of `family` (one of spec.FAMILIES)."""

    def wrap(loader: Loader) -> Loader:
        if family not in FAMILIES:
            raise ValueError(f"family {family!r} is not in spec.FAMILIES {FAMILIES}")
        _FAMILIES[family] = Family(loader, lister)
        return loader

    return wrap


def register_fingerprint(family: str) -> Callable[[Fingerprinter], Fingerprinter]:
    """Decorator: make `fingerprinter` compute `family`'s fingerprint without building the model."""

    def wrap(fingerprinter: Fingerprinter) -> Fingerprinter:
        if family not in FAMILIES:
            raise ValueError(f"family {family!r} is not in spec.FAMILIES {FAMILIES}")
        _FINGERPRINTERS[family] = fingerprinter
        return fingerprinter

    return wrap


def family_loader(family: str) -> Family:
    if family not in _FAMILIES:
        importlib.import_module(f"pedclip.models.{FAMILY_MODULES[family]}")
    return _FAMILIES[family]


def load_encoder(
    spec: str,
    *,
    weights: str | Path | None = None,
    device: str = "cpu",
    dtype: str = "fp32",
    home: str | Path | None = None,
    seed: int = 0,
    runtime: str = "torch",
    trust_torchscript: bool = False,
    towers: str = "both",
) -> Encoder:
    """Build the `Encoder` a spec names (see `pedclip models list`), in eval mode on `device`; `runtime`
    auto|onnx runs its towers in ONNX Runtime (graphs exported once under `<home>/onnx/`). A TorchScript
    weights file loads only when it is one of OpenAI's CLIP files or `trust_torchscript` (its code runs).
    With towers="text" only the text tower is built where the family allows (encode_images then refuses)."""
    from pedclip.models.text_only import check_towers

    parsed, options = _checked(spec, weights, device, dtype, home, seed, runtime)
    options = replace(options, trust_torchscript=trust_torchscript, towers=check_towers(towers))
    resolved = resolve_runtime(runtime, options.device, options.dtype)
    encoder = family_loader(parsed.family).loader(parsed, options)
    if resolved == "onnx":
        from pedclip.config import Paths
        from pedclip.models.onnx_towers import onnx_encoder

        return onnx_encoder(encoder, Paths.at(options.home).onnx, options.dtype)
    return encoder


def fingerprint_for(
    spec: str,
    weights: str | Path | None = None,
    dtype: str = "fp32",
    home: str | Path | None = None,
    seed: int = 0,
) -> str:
    """The fingerprint `load_encoder(spec, ...)` would give, without building the network or loading weights:
    from the weights' identity (seed, hub revision, file sha256) and the configs on disk. Families without
    a registered fingerprinter fall back to loading the model; so do, within the families, the cases that
    cannot be done cheaply (see each family's fingerprinter). Not device-dependent."""
    parsed, options = _checked(spec, weights, "cpu", dtype, home, seed)
    if parsed.family not in _FINGERPRINTERS and parsed.family in FINGERPRINT_MODULES:
        importlib.import_module(f"pedclip.models.{FINGERPRINT_MODULES[parsed.family]}")
    fingerprinter = _FINGERPRINTERS.get(parsed.family)
    if fingerprinter is None:
        return family_loader(parsed.family).loader(parsed, options).fingerprint
    return fingerprinter(parsed, options)


def _checked(spec, weights, device, dtype, home, seed, runtime="torch") -> tuple[ModelSpec, LoadOptions]:
    """Parse the spec and check the options the same way for loading and fingerprinting."""
    if dtype not in LOAD_DTYPES:
        raise PedclipError(f"unknown dtype {dtype!r}; expected one of: {', '.join(LOAD_DTYPES)}")
    parsed = parse_spec(spec)
    options = LoadOptions(
        weights=Path(weights).expanduser() if weights else None,
        device=str(device),
        dtype=dtype,
        home=Path(home) if home is not None else None,
        seed=seed,
        runtime=runtime,
    )
    if options.weights is not None and not options.weights.exists():
        raise PedclipError(
            f"weights path {str(options.weights)!r} does not exist; pass an existing file or folder"
        )
    return parsed, options


def list_specs(weights: str | Path | None = None, home: str | Path | None = None) -> list[dict]:
    """Rows {spec, family, needs, weights_present, weights_at} for every known spec family."""
    options = LoadOptions(weights=Path(weights) if weights else None, home=Path(home) if home else None)
    rows: list[dict] = []
    for family in FAMILIES:
        lister = family_loader(family).lister
        if lister is not None:
            rows.extend(lister(options))
    return rows
