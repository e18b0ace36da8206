"""Reader stage: image references -> batches of `geometry` arrays, decoded by threads or worker processes.

Two schedules. `read_batches` overlaps: worker processes (given the PreprocessConfig, a small frozen
dataclass, never the model) decode, run `geometry` and fill the pixel cache while the main process runs the
model on the previous batch; at most `2 * workers` batches are in flight. That is right when the model runs
on a GPU. On a CPU the model already uses every core, so an overlapping decoder only takes cores from it
(and stalls its parallel operators when it preempts one of their threads): `read_batches_between` decodes
each batch with a thread per core in this process when the encoder asks for it, between two forwards
(PIL's decoders and resizes release the GIL). Measured (bench/README.md, session 7): from 1500x1200 JPEGs,
84-90% against 79-87% of the model-alone rate with ONNX Runtime, 97-99% against 89-98% with torch.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pedclip.data.imaging import ImageChangedError
from pedclip.embed.pixels import Decoder, PixelCache, cached_geometry, default_decoder
from pedclip.errors import PedclipError
from pedclip.lifetime import pool_initializer
from pedclip.models.base import PreprocessConfig

# What a bad file can raise while being decoded or resized; anything else is a bug and propagates.
DECODE_ERRORS = (PedclipError, OSError, ValueError, EOFError, SyntaxError, Image.DecompressionBombError)


@dataclass(frozen=True)
class ImageRef:
    """One distinct image to read: its content hash, where it is, and the cases that show it."""

    sha256: str
    path: str
    member: str | None = None
    case_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReadFailure:
    sha256: str
    path: str
    member: str | None
    case_ids: tuple[str, ...]
    reason: str
    changed: bool = False  # the file's bytes no longer match the sha256 ingest recorded

    def as_dict(self) -> dict:
        return {
            "case_ids": list(self.case_ids),
            "path": self.path,
            "member": self.member,
            "reason": self.reason,
            "changed": self.changed,
        }


@dataclass
class ReadBatch:
    """Arrays ready for `encoder.normalize`, the shas they belong to, and what could not be read."""

    shas: list[str] = field(default_factory=list)
    arrays: list[np.ndarray] = field(default_factory=list)
    failures: list[ReadFailure] = field(default_factory=list)
    cache_hits: int = 0


def read_batch(
    refs: Sequence[ImageRef],
    config: PreprocessConfig,
    pixel_root: str | None,
    decoder: Decoder = default_decoder,
) -> ReadBatch:
    """Read one batch (runs in a worker process): pixel cache first, else decode + geometry + cache."""
    cache = PixelCache(Path(pixel_root), config) if pixel_root is not None else None
    return _collect(refs, [read_one(ref, config, cache, decoder) for ref in refs])


def read_one(
    ref: ImageRef, config: PreprocessConfig, cache: PixelCache | None, decoder: Decoder = default_decoder
) -> tuple[np.ndarray, bool] | ReadFailure:
    """(geometry array, came from the pixel cache), or why the image could not be read."""
    try:
        return cached_geometry(cache, config, ref.sha256, ref.path, ref.member, decoder)
    except DECODE_ERRORS as exc:
        changed = isinstance(exc, ImageChangedError)
        reason = str(exc) if changed else f"cannot read image: {type(exc).__name__}: {exc}"
        return ReadFailure(ref.sha256, ref.path, ref.member, ref.case_ids, reason, changed)


def _collect(refs: Sequence[ImageRef], results: Sequence[tuple[np.ndarray, bool] | ReadFailure]) -> ReadBatch:
    batch = ReadBatch()
    for ref, result in zip(refs, results, strict=True):
        if isinstance(result, ReadFailure):
            batch.failures.append(result)
            continue
        array, hit = result
        batch.shas.append(ref.sha256)
        batch.arrays.append(array)
        batch.cache_hits += int(hit)
    return batch


def _chunks(items: Sequence[ImageRef], size: int) -> Iterator[Sequence[ImageRef]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def read_batches(
    refs: Sequence[ImageRef],
    config: PreprocessConfig,
    pixel_root: Path | None,
    batch_size: int,
    workers: int,
    decoder: Decoder = default_decoder,
    start_method: str = "fork",
) -> Iterator[ReadBatch]:
    """Batches of `batch_size` refs, in order; `workers=0` reads in this process (for tests and debugging)."""
    root = str(pixel_root) if pixel_root is not None else None
    if workers <= 0:
        for chunk in _chunks(refs, batch_size):
            yield read_batch(chunk, config, root, decoder)
        return
    context = multiprocessing.get_context(start_method)
    initializer, initargs = pool_initializer()  # workers die with this process, even on SIGKILL
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=initializer, initargs=initargs
    ) as pool:
        pending: deque[Future[ReadBatch]] = deque()
        chunks = _chunks(refs, batch_size)
        for chunk in chunks:
            pending.append(pool.submit(read_batch, chunk, config, root, decoder))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def read_batches_between(
    refs: Sequence[ImageRef],
    config: PreprocessConfig,
    pixel_root: Path | None,
    batch_size: int,
    threads: int,
    decoder: Decoder = default_decoder,
) -> Iterator[ReadBatch]:
    """Batches of `batch_size` refs, in order, each read by `threads` threads only when asked for: nothing is
    decoded while the consumer runs the model on the previous batch (the CPU schedule; see the docstring)."""
    cache = PixelCache(Path(pixel_root), config) if pixel_root is not None else None
    if threads <= 1:
        for chunk in _chunks(refs, batch_size):
            yield _collect(chunk, [read_one(ref, config, cache, decoder) for ref in chunk])
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pedclip-decode") as pool:
        for chunk in _chunks(refs, batch_size):
            yield _collect(chunk, list(pool.map(lambda ref: read_one(ref, config, cache, decoder), chunk)))
