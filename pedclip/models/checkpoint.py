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


UNREADABLE_WEIGHTS = (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError)


def unreadable_weights(label: str, exc: BaseException, expected: str) -> PedclipError:
    """One line for a weights file torch cannot read (empty, truncated, not a pickle of tensors): what is wrong
    in a few words, never torch's advice to retry with weights_only=False (that would run the file's code)."""
    if isinstance(exc, EOFError) or "EOF" in str(exc)[:200]:
        why = "it is empty or truncated"
    elif isinstance(exc, pickle.UnpicklingError) or "weights_only" in str(exc):
        why = "it is not a PyTorch file of tensors (pedclip never unpickles code)"
    else:
        why = " ".join(str(exc).split())[:160] or type(exc).__name__
    return PedclipError(f"cannot read weights file {label!r}: {why}; pass {expected}")


def openai_torchscript_sha256s() -> frozenset[str]:
    """sha256 of OpenAI's published CLIP TorchScript files: open_clip's pretrained table names each in its URL
    (openaipublic.azureedge.net/clip/models/<sha256>/<name>.pt)."""
    import open_clip

    digests = set()
    for name, tag in open_clip.list_pretrained():
        url = open_clip.get_pretrained_cfg(name, tag).get("url", "")
        if "openaipublic" in url:
            digests.add(url.rstrip("/").split("/")[-2])
    return frozenset(digests)


def check_torchscript_trusted(path: Path, trust: bool) -> None:
    """TorchScript runs the archive's code (`__setstate__`) when loaded: only OpenAI's own files, or on request."""
    if trust or file_sha256(path) in openai_torchscript_sha256s():
        return
    raise PedclipError(
        f"refusing to load {str(path)!r}: it is a TorchScript archive, whose code runs when it is loaded, and it"
        " is not one of OpenAI's published CLIP checkpoints (by sha256); convert it to a state dict where you"
        " trust it (torch.save(torch.jit.load(FILE).state_dict(), 'weights.pt')) or, if you trust its source,"
        " rerun as `pedclip --trust-torchscript ...`"
    )


def read_state_dict(path: Path, trust_torchscript: bool = False) -> dict[str, torch.Tensor]:
    """A plain, `{'state_dict': ...}`, `module.`-prefixed, safetensors or TorchScript checkpoint -> state dict.
    TorchScript only when trusted (`check_torchscript_trusted`)."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        if is_torchscript(path):  # OpenAI's JIT file: weights_only cannot read it (audit section 4)
            check_torchscript_trusted(path, trust_torchscript)
            with warnings.catch_warnings():  # torch deprecates jit.load, but OpenAI's file exists only as JIT
                warnings.simplefilter("ignore", FutureWarning)
                checkpoint = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except UNREADABLE_WEIGHTS as exc:
        raise unreadable_weights(str(path), exc, "a state dict, safetensors or OpenAI JIT file") from exc
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
