"""ONNX Runtime in place of an Encoder's torch towers: same inputs, same outputs, same fingerprint in fp32.

`onnx_encoder(encoder, onnx_root)` returns a copy of `encoder` whose `image_tower` and `text_tower` are
`OnnxTower`s. Each one, on first use, loads its graph (checked by hash, see onnx_export) or exports it from
the torch tower and verifies it on a few inputs of two batch sizes (and two text lengths) against torch:
fp32 graphs below cosine EXACT_COSINE are discarded and the tower falls back to torch with one warning.
int8 graphs are ORT's dynamic quantisation of the verified fp32 graph; their measured cosine to torch is
recorded in the sidecar (bench/bench_runtime.py says what int8 costs in verdicts).

Towers: open_clip image towers (any open_clip architecture, traced through `encode_image`); open_clip text
towers trimmed to the batch's last EOT as in text_trim (the exported graph takes the trimmed tokens, with a
dynamic length); other open_clip text towers at full context length; MedCLIP's Swin and ResNet image towers
and its BERT text tower (dynamic batch and length). `local:` and `demo:` models are these families.
"""

from __future__ import annotations

import dataclasses
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from pedclip.errors import PedclipError
from pedclip.models.base import FEW_TEXTS, Encoder
from pedclip.models.onnx_export import (
    EXACT_COSINE,
    GraphKey,
    cpu_session,
    export_module,
    min_cosine,
    quantize_int8,
    record,
    remove,
    stale_reason,
)
from pedclip.models.runtime import import_onnxruntime

VERIFY_TEXTS = (
    ("a chest x-ray", "pneumonia"),
    ("normal", "no opacity", "lungs"),
    ("a chest radiograph showing pneumonia in the right lower lobe", "normal lungs"),
)
# open_clip text graphs are exported per trimmed length: the tracer bakes the sequence length into
# nn.MultiheadAttention's reshapes. Prompts are cut after the batch's last EOT and kept up to the next
# bucket (exact: the tower is causal, later positions never reach a pooled EOT).
TEXT_BUCKETS = (8, 16, 32, 77)


@dataclass(frozen=True)
class TowerGraph:
    """How one torch tower is exported and fed. `size_of(x)` names the graph that runs tower input `x` (the
    image size; the length bucket of a fixed-length text graph; 0 for dynamic text graphs), `prepare(x, size)`
    maps `x` to that graph's named inputs. A graph is traced from the first example that fits its size and
    verified on every one that fits."""

    module: torch.nn.Module
    prepare: Callable[[object, int], dict[str, torch.Tensor]]
    size_of: Callable[[object], int]
    dynamic_axes: dict[str, dict[int, str]]
    examples: tuple


class _Call(torch.nn.Module):
    """Positional graph inputs -> the wrapped callable (the tracer wants a Module with positional args)."""

    def __init__(self, module: torch.nn.Module, call: Callable):
        super().__init__()
        self.module, self.call = module, call
        self.eval()  # the exporter restores the wrapper's mode afterwards, onto the wrapped tower too

    def forward(self, *inputs):
        return self.call(self.module, *inputs)


def image_graph(encoder: Encoder) -> TowerGraph:
    config = encoder.preprocess_config
    generator = torch.Generator().manual_seed(0)
    shape = (config.channels, config.size, config.size)
    return TowerGraph(
        module=encoder.image_tower,
        prepare=lambda pixels, size: {"pixels": pixels.float()},
        size_of=lambda pixels: config.size,
        dynamic_axes={"pixels": {0: "batch"}},
        examples=tuple(torch.randn(n, *shape, generator=generator) for n in (2, 3)),
    )


def text_bucket(length: int, context: int) -> int:
    return next((b for b in TEXT_BUCKETS if b >= length and b <= context), context)


def text_graph(encoder: Encoder) -> TowerGraph:
    """The text tower's export recipe, by tower type (open_clip trimmed or full; MedCLIP's BERT)."""
    from pedclip.models.medclip_arch import Text
    from pedclip.models.text_trim import TextTower, encode_trimmed, pooled_positions

    tower = encoder.text_tower
    examples = tuple(encoder._tokenize_group(list(texts), list(texts)) for texts in VERIFY_TEXTS)
    if isinstance(tower, TextTower) and tower.trim:
        model = tower.model

        def size_of(tokens):
            return text_bucket(int(pooled_positions(model, tokens).max()) + 1, tokens.shape[1])

        return TowerGraph(
            module=_Call(model, encode_trimmed),
            prepare=lambda tokens, size: {"tokens": tokens[:, :size]},
            size_of=size_of,
            dynamic_axes={"tokens": {0: "batch"}},
            examples=examples,
        )
    if isinstance(tower, TextTower):
        return TowerGraph(
            module=_Call(tower.model, lambda model, tokens: model.encode_text(tokens)),
            prepare=lambda tokens, size: {"tokens": tokens},
            size_of=lambda tokens: 0,
            dynamic_axes={"tokens": {0: "batch"}},
            examples=examples,
        )
    if isinstance(tower, Text):
        return TowerGraph(
            module=_Call(tower, lambda text, ids, mask: text({"input_ids": ids, "attention_mask": mask})),
            prepare=lambda tokens, size: {
                "input_ids": tokens["input_ids"],
                "attention_mask": tokens["attention_mask"],
            },
            size_of=lambda tokens: 0,
            dynamic_axes={
                "input_ids": {0: "batch", 1: "length"},
                "attention_mask": {0: "batch", 1: "length"},
            },
            examples=examples,
        )
    raise PedclipError(f"no ONNX recipe for the text tower {type(tower).__name__} of {encoder.spec}")


class OnnxTower:
    """Called like the torch tower it replaces (same input, a float32 tensor out), run by ONNX Runtime.

    Graphs are prepared on first use (load, or export + verify), so a command that only encodes images never
    exports the text tower. An fp32 graph that fails export or verification leaves the torch tower in charge,
    with one warning; an int8 one has no torch equivalent and raises.
    """

    def __init__(
        self, torch_tower, recipe: Callable[[], TowerGraph], key: GraphKey, onnx_root: Path, fp32=None
    ):
        self.torch_tower, self.recipe, self.key, self.onnx_root = torch_tower, recipe, key, Path(onnx_root)
        self.fp32_fingerprint = fp32  # for int8: the fingerprint of the fp32 graphs it quantises
        self._graph: TowerGraph | None = None
        self._sessions: dict[tuple[int, int], object] = {}
        self._lock = threading.Lock()  # dashboard sessions share one encoder: one export at a time
        self.fallback = False  # True once torch took over

    @property
    def graph(self) -> TowerGraph:
        if self._graph is None:
            self._graph = self.recipe()
        return self._graph

    def key_for(self, size: int, dtype: str | None = None) -> GraphKey:
        dtype = dtype or self.key.dtype
        fingerprint = self.key.fingerprint if dtype == self.key.dtype else self.fp32_fingerprint
        return dataclasses.replace(self.key, fingerprint=fingerprint, size=size, dtype=dtype)

    def __call__(self, inputs) -> torch.Tensor:
        if self.fallback:
            return self.torch_tower(inputs)
        size = self.graph.size_of(inputs)
        named = self.graph.prepare(inputs, size)
        rows = next(iter(named.values())).shape[0]
        session = self._session(size, 1 if self.key.tower == "text" and rows <= FEW_TEXTS else None)
        if session is None:
            return self.torch_tower(inputs)
        feeds = {name: value.detach().cpu().numpy() for name, value in named.items()}
        return torch.from_numpy(session.run(None, feeds)[0])

    def _session(self, size: int, threads: int | None):
        """One session per (graph, thread count): a few prompts run on one thread (Encoder.encode_texts)."""
        threads = threads or torch.get_num_threads()
        with self._lock:
            return self._session_locked(size, threads)

    def _session_locked(self, size: int, threads: int):
        if (size, threads) not in self._sessions:
            key = self.key_for(size)
            try:
                ensure_graph(self.graph, self.torch_tower, key, self.onnx_root, self.key_for(size, "fp32"))
            except ExportRejected as exc:
                if key.dtype != "fp32":
                    raise PedclipError(f"{key.dtype} ONNX {key.tower} tower unavailable: {exc}") from exc
                warnings.warn(f"ONNX {key.tower} tower not used ({exc}); running it in torch", stacklevel=5)
                self.fallback = True
                return None
            self._sessions[size, threads] = cpu_session(
                import_onnxruntime(), key.path(self.onnx_root), threads
            )
        return self._sessions[size, threads]


class ExportRejected(Exception):
    """An export that failed or whose outputs differ from torch's."""


def ensure_graph(graph: TowerGraph, torch_tower, key: GraphKey, onnx_root: Path, fp32_key: GraphKey) -> None:
    """Make `key`'s graph on disk valid: keep a verified one, else (re)export, verify and record it."""
    if stale_reason(key, onnx_root) is None:
        return
    remove(key, onnx_root)
    if key.dtype == "fp32":
        _export_verified(graph, torch_tower, key, onnx_root)
        return
    ensure_graph(graph, torch_tower, fp32_key, onnx_root, fp32_key)
    quantize_int8(fp32_key.path(onnx_root), key.path(onnx_root))
    record(key, onnx_root, {"cosine_to_torch_fp32": _cosine_to_torch(graph, torch_tower, key, onnx_root)})


def _fitting(graph: TowerGraph, size: int) -> list:
    """The examples a graph of `size` can run (a text bucket runs prompts up to its length)."""
    fitting = [x for x in graph.examples if graph.size_of(x) <= size] if size else list(graph.examples)
    return fitting or list(graph.examples[:1])


def _export_verified(graph: TowerGraph, torch_tower, key: GraphKey, onnx_root: Path) -> None:
    first = graph.prepare(_fitting(graph, key.size)[0], key.size)
    try:
        export_module(
            graph.module, tuple(first.values()), list(first), graph.dynamic_axes, key.path(onnx_root)
        )
        cosine = _cosine_to_torch(graph, torch_tower, key, onnx_root)
    except Exception as exc:  # noqa: BLE001 - any exporter or ORT failure means: not this graph
        remove(key, onnx_root)
        raise ExportRejected(
            f"export failed: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
        ) from exc
    if cosine < EXACT_COSINE:
        remove(key, onnx_root)
        raise ExportRejected(f"verification cosine {cosine:.7f} < {EXACT_COSINE}")
    record(key, onnx_root, {"cosine_to_torch_fp32": cosine})


def _cosine_to_torch(graph: TowerGraph, torch_tower, key: GraphKey, onnx_root: Path) -> float:
    """Min cosine, over the examples the graph fits, between its features and the torch tower's."""
    session = cpu_session(import_onnxruntime(), key.path(onnx_root), torch.get_num_threads())
    worst = 1.0
    with torch.inference_mode():
        for example in _fitting(graph, key.size):
            named = graph.prepare(example, key.size)
            ours = session.run(None, {k: v.numpy() for k, v in named.items()})[0]
            worst = min(worst, min_cosine(ours, torch_tower(example).float().numpy()))
    return worst


def onnx_encoder(encoder: Encoder, onnx_root: Path, dtype: str = "fp32") -> Encoder:
    """`encoder` with both towers run by ONNX Runtime; `dtype` fp32 (same fingerprint) or int8 (its own)."""
    import_onnxruntime()
    out = dataclasses.replace(encoder, dtype=dtype)
    fp32 = dataclasses.replace(encoder, dtype="fp32").fingerprint
    towers = {
        "image_tower": OnnxTower(
            encoder.image_tower,
            lambda: image_graph(encoder),
            GraphKey(out.fingerprint, "image", 0, dtype),
            onnx_root,
            fp32,
        )
        if encoder.image_tower is not None  # loaded with towers="text"
        else None,
        "text_tower": OnnxTower(
            encoder.text_tower,
            lambda: text_graph(encoder),
            GraphKey(out.fingerprint, "text", 0, dtype),
            onnx_root,
            fp32,
        ),
    }
    onnx = dataclasses.replace(out, runtime="onnx", **towers)
    # `dim` (describe(), every model registration) would otherwise encode a text through ONNX Runtime, building
    # the text session (~1.3 s) in commands that never encode text; the torch tower answers in ~40 ms
    onnx.dim = encoder.dim
    return onnx
