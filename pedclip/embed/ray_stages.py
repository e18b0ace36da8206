"""The two remote stages of `--engine ray`: decode tasks and encoder actors. They run on Ray workers.

Rows carry `geometry` arrays as `.npy` bytes (uint8 for 8-bit films: a quarter of normalised float32 on the
wire, and any shape or dtype survives exactly); the actor runs `normalize` and the model, so its vectors are
the local engine's. Decoding reuses the local engine's `read_batch` (same decoder, same pixel cache).
"""

from __future__ import annotations

import io
import os
import socket
import time
from dataclasses import dataclass

import numpy as np

from pedclip.embed.device import host_to_device, is_cuda
from pedclip.embed.pixels import Decoder, default_decoder
from pedclip.embed.reader import ImageRef, read_batch
from pedclip.errors import PedclipError
from pedclip.models.base import PreprocessConfig

SHARED_STORAGE_HINT = (
    "sources must be on storage every Ray node mounts at the same path, or URLs (s3://, gs://) "
    "in a CSV manifest"
)


@dataclass(frozen=True)
class EncoderSpec:
    """What an actor needs to build the driver's model through the registry, and the fingerprint it must get."""

    spec: str
    fingerprint: str
    weights: str | None = None
    device: str = "cpu"
    dtype: str = "fp32"
    home: str | None = None
    seed: int = 0
    runtime: str = "torch"  # auto | torch | onnx (--runtime): what runs the towers on the actor

    def load(self):
        from pedclip.models import load_encoder

        return load_encoder(
            self.spec,
            weights=self.weights,
            device=self.device,
            dtype=self.dtype,
            home=self.home,
            seed=self.seed,
            runtime=self.runtime,
        )


def _unreadable(path: str) -> bool:
    """True when this worker cannot see a local source path at all."""
    return "://" not in path and not os.path.exists(path)


def decode_rows(
    batch: dict, config: PreprocessConfig, pixel_root: str | None, decoder: Decoder = default_decoder
) -> dict:
    """Ray Data batch {sha256, path, member, driver_sees} -> {sha256, npy, reason, changed, cache_hit, read_s}.

    A file missing everywhere is a failure like any bad file (recorded and skipped); a path the driver can
    read and this worker cannot stops the whole run at once: the sources are not shared."""
    start = time.perf_counter()
    members = [m or None for m in batch["member"]]
    columns = zip(batch["sha256"], batch["path"], members, strict=True)
    read = read_batch([ImageRef(str(s), str(p), m) for s, p, m in columns], config, pixel_root, decoder)
    driver_sees = dict(zip(batch["sha256"], batch["driver_sees"], strict=True))
    shas, blobs, reasons = list(read.shas), [_npy_bytes(a) for a in read.arrays], [""] * len(read.shas)
    changed = [False] * len(read.shas)
    for failure in read.failures:
        shas.append(failure.sha256)
        blobs.append(b"")
        reasons.append(_failure_reason(failure, bool(driver_sees[failure.sha256])))
        changed.append(failure.changed)
    n = len(shas)
    hits = [True] * read.cache_hits + [False] * (n - read.cache_hits)  # only their count is used
    return {
        "sha256": np.array(shas, dtype=object),
        "npy": np.array(blobs, dtype=object),
        "reason": np.array(reasons, dtype=object),
        "changed": np.array(changed, dtype=bool),
        "cache_hit": np.array(hits, dtype=bool),
        "read_s": np.full(n, (time.perf_counter() - start) / max(n, 1)),
    }


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _failure_reason(failure, driver_sees: bool) -> str:
    """The local engine's reason; raises when this worker lacks a path the driver has (not shared)."""
    if driver_sees and _unreadable(failure.path):
        raise PedclipError(
            f"Ray worker on {socket.gethostname()} cannot read {failure.path}, which the driver can; "
            f"{SHARED_STORAGE_HINT}"
        )
    return failure.reason


class EncodeActor:
    """Builds the model once (from the registry, on its own device) and encodes every batch it is given."""

    def __init__(self, spec: EncoderSpec, threads: int | None = None):
        import torch

        if threads and not is_cuda(spec.device):
            torch.set_num_threads(max(1, min(threads, os.cpu_count() or threads)))
        # Ray hides the other GPUs (CUDA_VISIBLE_DEVICES), so "cuda:3" on the driver is "cuda" here.
        device = "cuda" if is_cuda(spec.device) else spec.device
        self.encoder = EncoderSpec(**{**spec.__dict__, "device": device}).load()
        if self.encoder.fingerprint != spec.fingerprint:
            raise PedclipError(
                f"the model built on Ray worker {socket.gethostname()} has fingerprint "
                f"{self.encoder.fingerprint}, the driver's {spec.fingerprint}: its weights or configs differ; "
                "put the same weights on every node (shared storage)"
            )
        self.dim = self.encoder.dim

    def __call__(self, batch: dict) -> dict:
        ok = np.array([not r for r in batch["reason"]], dtype=bool)
        vectors = np.zeros((len(ok), self.dim), dtype=np.float32)
        start = time.perf_counter()
        if ok.any():
            arrays = [np.load(io.BytesIO(blob), allow_pickle=False) for blob in batch["npy"][ok]]
            pixels = host_to_device(self.encoder.normalize(arrays), self.encoder.device)
            vectors[ok] = self.encoder.encode_images(pixels)
        seconds = (time.perf_counter() - start) / max(len(ok), 1)
        out = {k: batch[k] for k in ("sha256", "reason", "changed", "cache_hit", "read_s")}
        return {**out, "vector": vectors, "encode_s": np.full(len(ok), seconds)}
