"""Weights files: identity (sha256), reading state dicts in every format we accept, the HF cache, casting."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from pedclip.errors import PedclipError

if TYPE_CHECKING:  # imported on use: fingerprints need file hashes and the HF cache, not torch
    import torch


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive (OpenAI's JIT .pt) is a zip with a code/ folder and constants.pkl."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("constants.pkl") for n in names) and any("/code/" in n for n in names)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A plain, `{'state_dict': ...}`, `module.`-prefixed, safetensors or TorchScript checkpoint -> state dict."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        if is_torchscript(path):  # OpenAI's JIT file: weights_only cannot read it (audit section 4)
            with warnings.catch_warnings():  # torch deprecates jit.load, but OpenAI's file exists only as JIT
                warnings.simplefilter("ignore", FutureWarning)
                checkpoint = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise PedclipError(
            f"cannot read weights file {str(path)!r} ({exc}); pass a state dict, safetensors or JIT file"
        ) from exc
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise PedclipError(
            f"weights file {str(path)!r} holds no state dict; pass a state dict, safetensors or JIT file"
        )
    if all(k.startswith("module.") for k in checkpoint):
        checkpoint = {k[len("module.") :]: v for k, v in checkpoint.items()}
    return dict(checkpoint)


def hf_hub_cache() -> Path:
    """The HF hub cache folder, read from the environment now (huggingface_hub reads it once at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def hf_offline() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def cached_hub_file(repo_id: str, filenames: tuple[str, ...]) -> Path | None:
    """The first of `filenames` present in the local HF cache for `repo_id` (any snapshot), else None."""
    snapshots = hf_hub_cache() / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return None
    revisions = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    for name in filenames:
        for revision in revisions:
            if (revision / name).is_file():
                return revision / name
    return None


def cast_module(module: torch.nn.Module, device: str, dtype: torch.dtype) -> torch.nn.Module:
    """Move and cast the weights themselves (bf16 is weights, not autocast); eval mode."""
    return module.to(device=device, dtype=dtype).eval()


@contextlib.contextmanager
def quiet_root_logger():
    """open_clip logs "No pretrained weights loaded" and ORT's quantiser advice on the root logger; pedclip
    already warned (or meant it)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
