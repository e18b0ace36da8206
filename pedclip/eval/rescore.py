"""Instant re-scoring: new prompts against every cached image vector, without decoding an image.

Only the new prompts are encoded (and cached); the image matrix of (model, dataset, split) is kept in
memory between calls, keyed by the embedded cases' count and a hash of their splits and labels, so new
embeddings or a re-split invalidate it. The dashboard's prompt lab and `pedclip rescore` both call `rescore`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.compare import Comparison, compare_predictions
from pedclip.eval.evaluation import EvalResult, labelled_vectors, save
from pedclip.eval.metrics import Metric, roc_points
from pedclip.eval.prompts import PromptSet, prompt_set_from_dict
from pedclip.eval.zeroshot import PromptVectors, ZeroShotConfig, evaluate_prompts, prompt_vectors
from pedclip.store import Store
from pedclip.store.embeddings import embedded_state
from pedclip.store.runs import get_run, predictions_frame

RESCORE_RESAMPLES = 200  # interactive path: CIs from 200 resamples keep a rescore well under 0.2 s
_CACHE_SIZE = 8


class ImageMatrixCache:
    """(store, fingerprint, dataset, splits, embedded state) -> (cases, vectors); least recently used dropped."""

    def __init__(self, size: int = _CACHE_SIZE):
        self.size = size
        self._items: OrderedDict[tuple, tuple[pd.DataFrame, np.ndarray]] = OrderedDict()

    def get(self, store: Store, fingerprint: str, spec: str, dataset: str, splits, state: tuple):
        """(cases, vectors) of the splits; `state` (embedded count and a hash of case ids, splits and labels,
        from `embedded_state`) makes new embeddings, re-splits and relabels a new key."""
        key = (str(store.paths.db), fingerprint, dataset, splits, state)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = labelled_vectors(store, fingerprint, spec, dataset, splits)
        self._items[key] = value
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        self._items.clear()


IMAGE_CACHE = ImageMatrixCache()


class TextVectorCache:
    """(fingerprint, text, encoding context) -> unit vector in memory: a prompt is encoded once per process.

    The context is the encoder's `text_context` for the group (MedCLIP's vectors depend on the padded
    length of the texts encoded together; CLIP's do not), as in the store's text cache.
    """

    def __init__(self, size: int = 4096):
        self.size = size
        self._items: OrderedDict[tuple[str, str, str], np.ndarray] = OrderedDict()

    def vectors(self, encoder, texts: list[str]) -> np.ndarray:
        """(len(texts), d) vectors of `texts` encoded as one group, encoding only what is not cached."""
        context = encoder.text_context(texts) if hasattr(encoder, "text_context") else ""
        keys = [(encoder.fingerprint, t, context) for t in texts]
        missing = [k for k in dict.fromkeys(keys) if k not in self._items]
        if missing:
            group = (
                texts if context else [k[1] for k in missing]
            )  # in context: encode the group as it is used
            encoded = dict(zip(group, encoder.encode_texts(group), strict=True))
            for key in missing:
                self._items[key] = encoded[key[1]]
        out = np.stack([self._items[k] for k in keys])
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return out


TEXT_CACHE = TextVectorCache()


@dataclass
class RescoreResult:
    result: EvalResult
    roc: tuple[np.ndarray, np.ndarray]  # (fpr, tpr)
    comparison: Comparison | None  # against the baseline run, when given
    baseline_run: str | None

    @property
    def metrics(self) -> dict[str, Metric]:
        return self.result.metrics

    def as_dict(self, max_flips: int = 50) -> dict:
        out = self.result.as_dict()
        out["roc"] = {"fpr": self.roc[0].tolist(), "tpr": self.roc[1].tolist()}
        if self.comparison is not None:
            out["baseline_run"] = self.baseline_run
            out["comparison"] = self.comparison.as_dict(max_flips)
        return out


def rescore(
    store: Store,
    encoder,
    dataset: str,
    prompts: dict[str, list[str]] | PromptSet,
    split: str = "test",
    baseline_run: str | None = None,
    protocol: str = "sound",
    bootstrap: BootstrapConfig = BootstrapConfig(n_resamples=RESCORE_RESAMPLES),
    save_run: bool = False,
    cache: ImageMatrixCache = IMAGE_CACHE,
    text_cache: TextVectorCache = TEXT_CACHE,
) -> RescoreResult:
    """Score `prompts` ({class: [texts]} or a PromptSet) on the cached vectors of `dataset`'s `split`.

    Prompts are encoded once per process and written to the store's text cache only with `save_run` (an
    hour of trial prompts should not fill it); image vectors come from the in-memory matrix cache, so a
    call costs one state query, the new prompts' encoding, a matrix product and the metrics.
    """
    pset = prompts if isinstance(prompts, PromptSet) else prompt_set_from_dict(prompts)

    def embed(texts):
        return text_cache.vectors(encoder, texts)

    vectors = prompt_vectors(pset, embed)
    config = ZeroShotConfig(protocol=protocol, split=split, bootstrap=bootstrap, kind="rescore")
    result = _evaluate_cached(store, encoder, dataset, vectors, config, cache, embed)
    comparison = None
    if baseline_run:
        baseline = get_run(store, baseline_run)
        comparison = compare_predictions(
            predictions_frame(store, baseline["run_id"]), result.predictions, bootstrap
        )
        result.run["config"]["baseline_run"] = baseline["run_id"]
    if save_run:
        _persist_prompts(store, encoder, vectors)
        save(store, result)
    fpr, tpr, _ = roc_points(result.predictions["label"].to_numpy(), result.predictions["score"].to_numpy())
    return RescoreResult(result, (fpr, tpr), comparison, baseline_run)


def _persist_prompts(store: Store, encoder, vectors: PromptVectors) -> None:
    """Write the prompts to the store's text cache (with their encoding context), class by class."""
    from pedclip.embed.text import embed_texts

    for prompts in vectors.prompt_set.classes.values():
        embed_texts(store, encoder, list(prompts))


def _evaluate_cached(store, encoder, dataset, vectors: PromptVectors, config, cache, embed) -> EvalResult:
    state = embedded_state(store, encoder.fingerprint, dataset)  # one query per call, shared by the splits

    def load(splits):
        return cache.get(store, encoder.fingerprint, encoder.spec, dataset, splits, state)

    return evaluate_prompts(load, encoder, dataset, vectors, config, embed)
