"""Reader -> encoder -> writer: fill the image-embedding cache for one (model, dataset).

plan (which distinct images lack a vector for this fingerprint) -> read (pixel cache or decode + geometry:
worker processes overlapping a GPU model, or threads between the forwards of a CPU model, embed/reader.py)
-> encode (this process: normalise + model forward) -> write (one transaction per chunk). Killing the
process loses at most the chunk in flight; a rerun plans again and finishes the job.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from pedclip.embed.device import host_to_device, is_cuda
from pedclip.embed.pixels import Decoder, DraftDecoder, default_decoder
from pedclip.embed.reader import ImageRef, ReadBatch, ReadFailure, read_batches, read_batches_between
from pedclip.errors import PedclipError
from pedclip.models.base import Encoder
from pedclip.store import Store
from pedclip.store.cases import cases_frame, get_dataset
from pedclip.store.embeddings import missing_images, put_image_embeddings, register_model

Progress = Callable[[int, int], None]  # (images done, images to do)
READERS = ("auto", "threads", "processes")


def default_workers() -> int:
    """Half the cores (at least one): the other half runs the model."""
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass(frozen=True)
class EmbedConfig:
    batch_size: int = 32  # images per model forward
    # threads: decode each batch between forwards with a thread per core (best when the model is on the CPU);
    # processes: worker processes decode while the model runs (best on a GPU); auto: by the encoder's device.
    reader: str = "auto"
    # Decoders: threads (None = every core) or processes (None = half the cores); 0 = this thread alone.
    workers: int | None = None
    chunk_size: int = 256  # images per committed transaction: the most a killed run can lose
    use_pixel_cache: bool = True  # read/write geometry arrays under Paths.pixels
    # Decode big JPEGs at 1/2-1/8 scale (PIL draft) while >= 2x the model input, then the same resize: ~30%
    # less decode time, pixels within 1-3 grey levels of a full decode (not identical, so off by default).
    jpeg_draft: bool = False
    # How decoding workers start: fork is cheapest (nothing to re-import); spawn where fork is unavailable.
    start_method: str = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"

    def __post_init__(self) -> None:
        for name in ("batch_size", "chunk_size"):
            if getattr(self, name) < 1:
                raise PedclipError(f"{name} must be at least 1; got {getattr(self, name)}")
        if self.workers is not None and self.workers < 0:
            raise PedclipError(f"workers must be 0 or more; got {self.workers}")
        if self.reader not in READERS:
            raise PedclipError(f"reader {self.reader!r} is not valid; expected one of: {', '.join(READERS)}")

    @property
    def resolved_workers(self) -> int:
        """Decoding processes for the `processes` reader."""
        return default_workers() if self.workers is None else self.workers

    def reader_for(self, device: str) -> str:
        """`threads` or `processes`: what `auto` means for a model on `device`."""
        if self.reader != "auto":
            return self.reader
        return "processes" if is_cuda(device) else "threads"

    @property
    def decode_threads(self) -> int:
        """Decoding threads for the `threads` reader."""
        return (os.cpu_count() or 1) if self.workers is None else self.workers


@dataclass
class EmbedReport:
    dataset: str
    fingerprint: str
    engine: str = "local"  # local | ray
    cases: int = 0
    distinct_images: int = 0
    already_embedded: int = 0  # distinct images that had a vector before this run
    embedded: int = 0  # distinct images embedded by this run
    pixel_cache_hits: int = 0  # of those, how many skipped decoding
    failures: list[ReadFailure] = field(default_factory=list)
    seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(("plan", "read", "encode", "write"), 0.0)
    )

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def changed(self) -> int:
        """Images skipped because their file changed since ingest (counted among `failed`)."""
        return sum(f.changed for f in self.failures)

    @property
    def decoded(self) -> int:
        return self.embedded - self.pixel_cache_hits

    @property
    def images_per_s(self) -> float:
        total = self.seconds.get("total", 0.0)
        return self.embedded / total if total > 0 else 0.0

    def as_dict(self) -> dict:
        out = asdict(self)
        out["failures"] = [f.as_dict() for f in self.failures]
        out.update(
            failed=self.failed,
            changed=self.changed,
            decoded=self.decoded,
            images_per_s=round(self.images_per_s, 2),
        )
        out["seconds"] = {k: round(v, 4) for k, v in self.seconds.items()}
        return out


def plan_missing(store: Store, fingerprint: str, dataset: str) -> tuple[int, int, list[ImageRef]]:
    """(cases, distinct images, refs of the distinct images with no vector for `fingerprint`)."""
    get_dataset(store, dataset)  # a clear error for an unknown dataset
    frame = cases_frame(store, dataset)
    by_sha: dict[str, list] = {}
    columns = zip(frame["case_id"], frame["image_sha256"], frame["path"], frame["member"], strict=True)
    for case_id, sha, path, member in columns:
        entry = by_sha.setdefault(sha, [path, None if _is_null(member) else member, []])
        entry[2].append(case_id)
    missing = missing_images(store, fingerprint, list(by_sha))
    refs = [ImageRef(sha, by_sha[sha][0], by_sha[sha][1], tuple(by_sha[sha][2])) for sha in missing]
    return len(frame), len(by_sha), refs


def _is_null(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def encode_batches(encoder: Encoder, batches: Iterable[ReadBatch], timings: dict[str, float]) -> Iterator:
    """Encoder stage: (batch, vectors) per read batch; accumulates read-wait and encode seconds."""
    iterator = iter(batches)
    while True:
        start = time.perf_counter()
        batch = next(iterator, None)
        timings["read"] += time.perf_counter() - start
        if batch is None:
            return
        start = time.perf_counter()
        pixels = host_to_device(encoder.normalize(batch.arrays), encoder.device) if batch.arrays else None
        vectors = encoder.encode_images(pixels) if pixels is not None else None
        timings["encode"] += time.perf_counter() - start
        yield batch, vectors


class ChunkWriter:
    """Writer stage: buffers vectors and commits every `chunk_size` images in one transaction."""

    def __init__(self, store: Store, fingerprint: str, chunk_size: int):
        self.store, self.fingerprint, self.chunk_size = store, fingerprint, chunk_size
        self._shas: list[str] = []
        self._vectors: list[np.ndarray] = []
        self.written = 0
        self.seconds = 0.0

    def add(self, shas: list[str], vectors: np.ndarray) -> None:
        self._shas.extend(shas)
        self._vectors.append(vectors)
        if len(self._shas) >= self.chunk_size:
            self.flush()

    def flush(self) -> None:
        if not self._shas:
            return
        start = time.perf_counter()
        put_image_embeddings(self.store, self.fingerprint, self._shas, np.concatenate(self._vectors))
        self.seconds += time.perf_counter() - start
        self.written += len(self._shas)
        self._shas, self._vectors = [], []


def embed_dataset(
    store: Store,
    encoder: Encoder,
    dataset: str,
    config: EmbedConfig = EmbedConfig(),
    progress: Progress | None = None,
    decoder: Decoder = default_decoder,
) -> EmbedReport:
    """Embed every image of `dataset` that lacks a vector for this encoder; returns counts and timings."""
    started = time.perf_counter()
    report = EmbedReport(dataset=dataset, fingerprint=encoder.fingerprint)
    report.cases, report.distinct_images, refs = plan_missing(store, encoder.fingerprint, dataset)
    report.already_embedded = report.distinct_images - len(refs)
    report.seconds["plan"] = time.perf_counter() - started
    if refs:
        register_model(store, encoder.describe())
        _run_stages(store, encoder, refs, config, report, progress, decoder)
    report.seconds["total"] = time.perf_counter() - started
    return report


def _run_stages(
    store: Store,
    encoder: Encoder,
    refs: list[ImageRef],
    config: EmbedConfig,
    report: EmbedReport,
    progress: Progress | None,
    decoder: Decoder,
) -> None:
    pixel_root = store.paths.pixels if config.use_pixel_cache else None
    if config.jpeg_draft and decoder is default_decoder:
        decoder = DraftDecoder(encoder.preprocess_config)
    preprocess, size = encoder.preprocess_config, config.batch_size
    if config.reader_for(encoder.device) == "threads":
        batches = read_batches_between(refs, preprocess, pixel_root, size, config.decode_threads, decoder)
    else:
        workers = config.resolved_workers
        batches = read_batches(refs, preprocess, pixel_root, size, workers, decoder, config.start_method)
    writer = ChunkWriter(store, encoder.fingerprint, config.chunk_size)
    done = 0
    for batch, vectors in encode_batches(encoder, batches, report.seconds):
        report.failures.extend(batch.failures)
        report.pixel_cache_hits += batch.cache_hits
        if vectors is not None:
            writer.add(batch.shas, vectors)
        done += len(batch.shas) + len(batch.failures)
        if progress is not None:
            progress(done, len(refs))
    writer.flush()
    report.embedded = writer.written
    report.seconds["write"] = writer.seconds
