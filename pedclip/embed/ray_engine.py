"""`pedclip embed --engine ray`: the local engine's plan and writer around a Ray Data pipeline.

driver: plan the distinct images with no vector for this fingerprint (`plan_missing`, as the local engine)
  -> Ray Data: one decode task per batch (CPU; `read_batch`, the pixel cache when every node is this machine)
  -> a pool of encoder actors (each builds the model once from the registry; GPUs per actor on CUDA)
  -> the driver commits vectors as they arrive through the local engine's `ChunkWriter`, so a killed run
     loses at most the chunk in flight and a rerun plans again.
The store never leaves the driver; workers only read the sources (shared storage or URLs).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from pedclip.embed.device import is_cuda
from pedclip.embed.pipeline import ChunkWriter, EmbedConfig, EmbedReport, Progress, plan_missing
from pedclip.embed.pixels import DraftDecoder, default_decoder
from pedclip.embed.ray_stages import EncodeActor, EncoderSpec, decode_rows
from pedclip.embed.reader import ImageRef, ReadFailure
from pedclip.errors import PedclipError, require
from pedclip.models.base import Encoder
from pedclip.store import Store
from pedclip.store.embeddings import register_model

RAY_STAGES = ("plan", "start", "read", "encode", "wait", "write")


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide the Ray pipeline runs. CLI: --address, --actors, --gpus-per-actor, --workers."""

    address: str | None = None  # None: start a local instance; "auto", "HOST:PORT" or "ray://HOST:PORT"
    actors: int = 1  # encoder actors, each holding one copy of the model
    gpus_per_actor: float | None = None  # None: 1 on a CUDA device, 0 on CPU; fractions share a GPU
    cpus: int | None = None  # CPUs of a local instance (--workers); None: every core

    def __post_init__(self) -> None:
        if self.actors < 1:
            raise PedclipError(f"--actors must be at least 1; got {self.actors}")
        if self.gpus_per_actor is not None and self.gpus_per_actor < 0:
            raise PedclipError(f"--gpus-per-actor must be 0 or more; got {self.gpus_per_actor}")
        if self.cpus is not None and self.cpus <= self.actors:
            raise PedclipError(
                f"--workers {self.cpus} leaves no CPU for decoding beside {self.actors} encoder actor(s); "
                f"pass --workers {self.actors + 1} or more"
            )

    def gpus(self, device: str) -> float:
        if self.gpus_per_actor is not None:
            return self.gpus_per_actor
        return 1.0 if is_cuda(device) else 0.0

    def local_cpus(self) -> int:
        return self.cpus or os.cpu_count() or 2


def require_ray() -> ModuleType:
    require("ray.data", "ray")
    return require("ray", "ray")


@contextlib.contextmanager
def ray_session(config: RayConfig) -> Iterator[ModuleType]:
    """Ray, connected: to `config.address`, to a local instance started here (and stopped on exit), or to the
    connection this process already has (tests share one instance per session)."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if config.address:
            ray.init(address=config.address, **quiet)
        else:
            ray.init(num_cpus=config.local_cpus(), include_dashboard=False, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = config.address or "a new local instance"
        raise PedclipError(
            f"cannot start Ray on {where} ({exc}); check --address (auto, HOST:PORT or ray://HOST:PORT) "
            "or drop it to start a local instance"
        ) from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def _quiet_data_context(ray: ModuleType) -> None:
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def all_nodes_here(ray: ModuleType) -> bool:
    """True when every live Ray node is this machine, so workers can use the driver's pixel cache."""
    here = ray.util.get_node_ip_address()
    return all(node["NodeManagerAddress"] == here for node in ray.nodes() if node.get("Alive"))


def actor_threads(ray: ModuleType, actors: int) -> int:
    """Torch threads per CPU actor: the cluster's CPUs shared among the actors (Ray would give each one)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)) // actors)


# What a decode task reserves per image of its batch: a 2500x2000 film decoded, converted and resized holds a
# few copies of ~5 MB. The reservation also keeps Ray Data from fusing decoding into the encoder actors (it
# fuses maps whose resource arguments agree, as they would on CPU): an actor decoding its own JPEGs starves
# its GPU and serialises the decoding.
DECODE_BYTES_PER_IMAGE = 16 * 2**20


def _readable_here(path: str) -> bool:
    return "://" in path or os.path.exists(path)


def build_dataset(ray: ModuleType, refs: list[ImageRef], encoder: Encoder, spec: EncoderSpec, config: EmbedConfig,
                  ray_config: RayConfig, pixel_root: str | None):  # fmt: skip
    """The lazy Ray Dataset: refs -> decode tasks -> encoder actor pool (nothing runs until iterated)."""
    decoder = DraftDecoder(encoder.preprocess_config) if config.jpeg_draft else default_decoder
    items = [
        {"sha256": r.sha256, "path": r.path, "member": r.member or "", "driver_sees": _readable_here(r.path)}
        for r in refs
    ]
    blocks = math.ceil(len(items) / config.batch_size)
    decoded = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
        decode_rows,
        batch_size=config.batch_size,
        batch_format="numpy",
        fn_kwargs={"config": encoder.preprocess_config, "pixel_root": pixel_root, "decoder": decoder},
        num_cpus=1,
        memory=config.batch_size * DECODE_BYTES_PER_IMAGE,
    )
    return decoded.map_batches(
        EncodeActor,
        batch_size=config.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=ray_config.actors),
        fn_constructor_kwargs={"spec": spec, "threads": actor_threads(ray, ray_config.actors)},
        num_cpus=1,
        num_gpus=ray_config.gpus(spec.device),
    )


def embed_dataset_ray(
    store: Store,
    encoder: Encoder,
    spec: EncoderSpec,
    dataset: str,
    config: EmbedConfig = EmbedConfig(),
    ray_config: RayConfig = RayConfig(),
    progress: Progress | None = None,
) -> EmbedReport:
    """`embed_dataset` on Ray: same plan, same vectors, same fingerprint, same chunked commits.

    `encoder` (on the driver, any device) gives the fingerprint, preprocess config and `models` row; the actors
    build their own from `spec`. Seconds: read and encode are summed over workers; wait is the driver's wait.
    """
    started = time.perf_counter()
    report = EmbedReport(dataset=dataset, fingerprint=encoder.fingerprint, engine="ray")
    report.seconds.update(dict.fromkeys(RAY_STAGES, 0.0))
    report.cases, report.distinct_images, refs = plan_missing(store, encoder.fingerprint, dataset)
    report.already_embedded = report.distinct_images - len(refs)
    report.seconds["plan"] = time.perf_counter() - started
    if spec.fingerprint != encoder.fingerprint:
        raise PedclipError(f"spec {spec.spec!r} names fingerprint {spec.fingerprint}, not the encoder's")
    if refs:
        register_model(store, encoder.describe())
        tick = time.perf_counter()
        with ray_session(ray_config) as ray:
            _quiet_data_context(ray)
            report.seconds["start"] = time.perf_counter() - tick
            _run(ray, store, encoder, spec, refs, config, ray_config, report, progress)
    report.seconds["total"] = time.perf_counter() - started
    return report


def _run(ray, store, encoder, spec, refs, config, ray_config, report, progress) -> None:
    pixel_root = str(store.paths.pixels) if config.use_pixel_cache and all_nodes_here(ray) else None
    dataset = build_dataset(ray, refs, encoder, spec, config, ray_config, pixel_root)
    by_sha = {r.sha256: r for r in refs}
    writer = ChunkWriter(store, encoder.fingerprint, config.chunk_size)
    batches = iter(dataset.iter_batches(batch_size=None, batch_format="numpy"))
    done = 0
    while True:
        tick = time.perf_counter()
        batch = _next_batch(batches)
        report.seconds["wait"] += time.perf_counter() - tick
        if batch is None:
            break
        _take(batch, by_sha, writer, report)
        done += len(batch["sha256"])
        if progress is not None:
            progress(done, len(refs))
    writer.flush()
    report.embedded = writer.written
    report.seconds["write"] = writer.seconds


def _next_batch(batches: Iterator[dict]) -> dict | None:
    """The next result batch; our own error raised on a worker (a PedclipError) comes back as itself."""
    try:
        return next(batches, None)
    except Exception as exc:
        message = user_error_message(exc)
        if message is not None:
            raise PedclipError(message) from exc
        raise


USER_ERROR_LINE = re.compile(r"pedclip\.errors\.\w*Error: (.+)")


def user_error_message(exc: BaseException) -> str | None:
    """The message of a PedclipError raised on a worker: Ray hands the driver a RayTaskError whose text holds
    the worker's traceback (the original exception object does not always survive the trip)."""
    seen, current = set(), [exc]
    while current:
        error = current.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, PedclipError) and not type(error).__module__.startswith("ray"):
            return str(error)
        found = USER_ERROR_LINE.search(str(error))
        if found:
            return found.group(1).strip()
        current += [getattr(error, "cause", None), error.__cause__, error.__context__]
    return None


def _take(batch: dict, by_sha: dict[str, ImageRef], writer: ChunkWriter, report: EmbedReport) -> None:
    """Count one result batch: timings, failures, and vectors for the writer."""
    report.seconds["read"] += float(np.sum(batch["read_s"]))
    report.seconds["encode"] += float(np.sum(batch["encode_s"]))
    report.pixel_cache_hits += int(np.sum(batch["cache_hit"]))
    ok = np.array([not r for r in batch["reason"]], dtype=bool)
    failed = zip(batch["sha256"][~ok], batch["reason"][~ok], batch["changed"][~ok], strict=True)
    for sha, reason, changed in failed:
        ref = by_sha[str(sha)]
        report.failures.append(
            ReadFailure(ref.sha256, ref.path, ref.member, ref.case_ids, str(reason), bool(changed))
        )
    if ok.any():
        writer.add([str(s) for s in batch["sha256"][ok]], np.asarray(batch["vector"][ok], dtype=np.float32))
