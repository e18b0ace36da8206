"""`pedclip embed`, `pedclip embed-text`, `pedclip neighbors`: fill the embedding cache and query it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from pedclip.cli.common import emit_json, interactive, load_model, print_table, state
from pedclip.cli.options import AsJson, Dataset, Device, Dtype, Model, Runtime, Weights
from pedclip.errors import PedclipError

ENGINES = ("local", "ray")
ENGINE_HELP = (
    "local: this process (+ decoding threads or processes) | ray: Ray Data (pip install 'pedclip[ray]')"
)
ADDRESS_HELP = "--engine ray: auto, HOST:PORT or ray://HOST:PORT of a Ray cluster (default: start one here)"
GPUS_HELP = "--engine ray: GPUs per encoder actor (default 1 with --device cuda, else 0)"


def _nothing_to_do(ctx: typer.Context, store, model: str, weights: str | None, dtype: str, dataset: str):
    """The report of a run with nothing to embed (every image cached for the model's fingerprint), found without
    building the model (`fingerprint_for`); None when something is missing and the model has to be loaded."""
    from pedclip.embed.pipeline import EmbedReport, plan_missing
    from pedclip.models import fingerprint_for

    fingerprint = fingerprint_for(model, weights=weights, dtype=dtype, home=state(ctx).home)
    started = time.perf_counter()
    cases, distinct, refs = plan_missing(store, fingerprint, dataset)
    if refs:
        return None
    report = EmbedReport(
        dataset=dataset,
        fingerprint=fingerprint,
        cases=cases,
        distinct_images=distinct,
        already_embedded=distinct,
    )
    report.seconds["plan"] = report.seconds["total"] = time.perf_counter() - started
    return report


def embed(
    ctx: typer.Context,
    model: Model,
    dataset: Dataset,
    weights: Weights = None,
    batch_size: int = typer.Option(32, "--batch-size", help="images per model forward"),
    reader: str = typer.Option(
        "auto",
        "--reader",
        help="how images are decoded: threads (between the model's batches: best on a CPU) | processes "
        "(while the model runs: best on a GPU) | auto (by --device)",
    ),
    workers: int = typer.Option(
        None,
        "--workers",
        help="decoders (threads: default all cores; processes: default half the cores; 0: the main thread); "
        "with --engine ray and no --address: the local Ray instance's CPUs (default: all cores)",
    ),
    chunk_size: int = typer.Option(
        256, "--chunk-size", help="images per committed chunk (what a kill can lose)"
    ),
    no_pixel_cache: bool = typer.Option(
        False, "--no-pixel-cache", help="neither read nor write the pixel cache"
    ),
    jpeg_draft: bool = typer.Option(
        False,
        "--jpeg-draft",
        help="decode big JPEGs at reduced scale (>= 2x the model input): faster, pixels within ~3 grey levels",
    ),
    device: Device = "cpu",
    dtype: Dtype = "fp32",
    runtime: Runtime = "auto",
    engine: str = typer.Option("local", "--engine", help=ENGINE_HELP),
    address: str = typer.Option(None, "--address", help=ADDRESS_HELP),
    actors: int = typer.Option(1, "--actors", help="--engine ray: encoder actors (model copies)"),
    gpus_per_actor: float = typer.Option(None, "--gpus-per-actor", help=GPUS_HELP),
    as_json: AsJson = False,
) -> None:
    """Embed every image of a dataset not yet cached for this model (resumable; reruns are cheap)."""
    from pedclip.embed.pipeline import EmbedConfig, embed_dataset

    if engine not in ENGINES:
        raise PedclipError(f"--engine {engine!r} is not valid; expected one of: {', '.join(ENGINES)}")
    if engine == "local" and (address or actors != 1 or gpus_per_actor is not None):
        raise PedclipError("--address, --actors and --gpus-per-actor need --engine ray")
    config = EmbedConfig(
        batch_size=batch_size,
        reader=reader,
        workers=workers if engine == "local" else 0,  # with ray, --workers is the local instance's CPUs
        chunk_size=chunk_size,
        use_pixel_cache=not no_pixel_cache,
        jpeg_draft=jpeg_draft,
    )
    store = state(ctx).store(create=False)
    report = _nothing_to_do(ctx, store, model, weights, dtype, dataset)
    if report is None:  # load the model only when an image lacks a vector
        options = {"weights": weights, "device": device or "cpu", "dtype": dtype, "runtime": runtime}
        with _ProgressBar(f"embedding {dataset}", show=interactive(as_json)) as bar:
            if engine == "ray":
                ray_config = _ray_config(address, actors, gpus_per_actor, workers)
                report = _embed_ray(ctx, store, model, options, dataset, config, ray_config, bar)
            else:
                encoder = load_model(ctx, model, **options)
                report = embed_dataset(store, encoder, dataset, config, progress=bar.update)
    if as_json:
        emit_json({"model": model, **report.as_dict()})
        return
    typer.echo(_summary(dataset, report))
    for failure in report.failures:
        typer.echo(f"skipped {', '.join(failure.case_ids)}: {failure.reason}", err=True)
    if report.changed:
        typer.echo(
            f"{report.changed} image(s) of {dataset} changed since ingest and were skipped: run `pedclip data"
            " ingest ...` again for this dataset, then embed",
            err=True,
        )


def _summary(dataset: str, report) -> str:
    seconds = report.seconds
    ray = report.engine == "ray"
    stages = ("start", "read", "encode", "wait", "write") if ray else ("read", "encode", "write")
    timings = ", ".join(f"{stage} {seconds.get(stage, 0.0):.1f}" for stage in stages)
    summed = " (read and encode summed over Ray workers)" if ray else ""
    return (
        f"{dataset}: {report.embedded} embedded ({report.pixel_cache_hits} from the pixel cache), "
        f"{report.already_embedded} already cached, {report.failed} failed, of {report.distinct_images} "
        f"distinct images in {report.cases} cases; {seconds['total']:.1f} s ({timings}){summed}, "
        f"{report.images_per_s:.1f} images/s"
    )


def _ray_config(address, actors, gpus_per_actor, workers):
    from pedclip.embed.ray_engine import RayConfig

    return RayConfig(address=address, actors=actors, gpus_per_actor=gpus_per_actor, cpus=workers)


def _embed_ray(ctx, store, model: str, options: dict, dataset: str, config, ray_config, bar):
    """The driver's copy of the model stays on the CPU under torch (it only names the fingerprint, the
    preprocessing and the `models` row); the actors build theirs with --device and --runtime."""
    from pedclip.embed.ray_engine import embed_dataset_ray
    from pedclip.embed.ray_stages import EncoderSpec
    from pedclip.models import load_encoder
    from pedclip.models.runtime import ONNX_ONLY_DTYPES, check_dtype_hardware

    check_dtype_hardware(options["dtype"], options["device"])  # as on the actors' device
    driver_runtime = "onnx" if options["dtype"] in ONNX_ONLY_DTYPES else "torch"
    encoder = load_encoder(model, weights=options["weights"], dtype=options["dtype"], home=state(ctx).home,
                           runtime=driver_runtime)  # fmt: skip
    # Absolute, since the workers start in other folders.
    weights = str(Path(options["weights"]).resolve()) if options["weights"] else None
    spec = EncoderSpec(model, encoder.fingerprint, weights, options["device"], options["dtype"],
                       home=str(store.paths.home.resolve()), runtime=options["runtime"])  # fmt: skip
    return embed_dataset_ray(store, encoder, spec, dataset, config, ray_config, progress=bar.update)


class _ProgressBar:
    """A rich bar driven by embed_dataset's (done, total) callback; silent when not on a terminal."""

    def __init__(self, label: str, show: bool):
        self.label, self.show = label, show
        self._bar = self._task = None

    def __enter__(self) -> _ProgressBar:
        if self.show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            )
            self._bar = Progress(*columns, transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=None)
        return self

    def update(self, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def embed_text(
    ctx: typer.Context,
    texts: Annotated[list[str], typer.Argument(help="texts (prompts) to embed")],
    model: Model,
    weights: Weights = None,
    device: Device = "cpu",
    dtype: Dtype = "fp32",
    runtime: Runtime = "auto",
    as_json: AsJson = False,
) -> None:
    """Embed prompts (cached by model fingerprint and exact text)."""
    from pedclip.embed.text import embed_texts

    store = state(ctx).store()
    encoder = load_model(ctx, model, weights=weights, device=device, dtype=dtype, runtime=runtime)
    vectors = embed_texts(store, encoder, texts)
    if as_json:
        rows = [{"text": t, "vector": v.tolist()} for t, v in zip(texts, vectors, strict=True)]
        emit_json(
            {"model": model, "fingerprint": encoder.fingerprint, "dim": int(vectors.shape[1]), "texts": rows}
        )
        return
    rows = [
        {"text": t, "dim": len(v), "first values": " ".join(f"{x:+.3f}" for x in v[:4])}
        for t, v in zip(texts, vectors, strict=True)
    ]
    print_table(rows, title=f"{model} ({encoder.fingerprint})")


def neighbors_command(
    ctx: typer.Context,
    model: Model,
    dataset: Dataset,
    case: str = typer.Option(None, "--case", help="case id of the dataset to start from"),
    image: Path = typer.Option(None, "--image", help="an image file not in the store"),
    k: int = typer.Option(10, "-k", help="how many neighbors"),
    weights: Weights = None,
    device: Device = "cpu",
    dtype: Dtype = "fp32",
    runtime: Runtime = "auto",
    as_json: AsJson = False,
) -> None:
    """Nearest cases of a dataset to one of its cases or to an image file (cosine on cached embeddings)."""
    if (case is None) == (image is None):
        raise PedclipError("pass exactly one of --case ID or --image FILE")
    from pedclip.store.index import case_query, neighbors

    store = state(ctx).store(create=False)
    if case is not None:  # the case's vector is in the store: the model's fingerprint is all it takes
        from pedclip.models import fingerprint_for

        fingerprint = fingerprint_for(model, weights=weights, dtype=dtype, home=state(ctx).home)
        uid, vector = case_query(store, fingerprint, dataset, case)
        exclude = [uid]
    else:
        from pedclip.data.imaging import load_image

        encoder = load_model(ctx, model, weights=weights, device=device, dtype=dtype, runtime=runtime)
        fingerprint = encoder.fingerprint
        vector, exclude = encoder.encode_images(encoder.preprocess(load_image(image))[None])[0], []
    found = neighbors(store, fingerprint, dataset, vector[None], k=k, exclude_uids=exclude)
    served = found.attrs.get("index", {})
    columns = ["rank", "case_id", "label", "split", "similarity", "distance", "path"]
    table = found[columns].astype(object)
    rows = table.where(table.notna(), None).to_dict(orient="records")
    if as_json:
        emit_json(
            {
                "model": model,
                "fingerprint": fingerprint,
                "dataset": dataset,
                "query": {"case": case} if case is not None else {"image": str(image)},
                "neighbors": rows,
                "index": served,
            }
        )
        return
    from pedclip.store.index import served_by

    print_table(rows, title=f"neighbors in {dataset} of {case or image}")
    typer.echo(served_by(served))


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)
    app.command("embed-text")(embed_text)
    app.command("neighbors")(neighbors_command)
