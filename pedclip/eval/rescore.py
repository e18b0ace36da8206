"""Instant re-scoring: new prompts against every cached image vector, without decoding an image.

Only the new prompts are encoded (and cached); the image matrix of (model, dataset, split) is kept in
memory between calls, keyed by the embedded cases' count and a hash of their splits and labels, so new
embeddings or a re-split invalidate it. The dashboard's prompt lab and `pedclip rescore` both call `rescore`.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pedclip.embed.text import TextVectorCache
from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.compare import Comparison, compare_predictions
from pedclip.eval.evaluation import EvalResult, labelled_vectors, save, split_column_for
from pedclip.eval.guards import mark_prompt_peeking, record_development, require_no_leakage
from pedclip.eval.metrics import Metric, roc_points
from pedclip.eval.prompts import PromptSet, prompt_set_from_dict
from pedclip.eval.protocols import eval_splits, get_protocol
from pedclip.eval.zeroshot import PromptVectors, ZeroShotConfig, evaluate_prompts, prompt_vectors
from pedclip.store import Store
from pedclip.store.embeddings import embedded_state
from pedclip.store.prompt_trials import prompts_document
from pedclip.store.prompt_trials import record_trial as put_trial
from pedclip.store.runs import get_run, predictions_frame

RESCORE_RESAMPLES = 200  # interactive path: CIs from 200 resamples keep a rescore well under 0.2 s
_CACHE_SIZE = 8


class ImageMatrixCache:
    """(store, fingerprint, dataset, splits, embedded state) -> (cases, vectors); least recently used dropped."""

    def __init__(self, size: int = _CACHE_SIZE):
        self.size = size
        self._items: OrderedDict[tuple, tuple[pd.DataFrame, np.ndarray]] = OrderedDict()

    def get(
        self, store: Store, fingerprint: str, spec: str, dataset: str, splits, state: tuple, column="split"
    ):
        """(cases, vectors) of the splits (of `column`); `state` (embedded count and a hash of case ids,
        splits and labels, from `embedded_state`) makes new embeddings, re-splits and relabels a new key."""
        key = (str(store.paths.db), fingerprint, dataset, splits, state, column)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = labelled_vectors(store, fingerprint, spec, dataset, splits, column)
        self._items[key] = value
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value


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
    split: str = "val",
    baseline_run: str | None = None,
    protocol: str = "sound",
    bootstrap: BootstrapConfig = BootstrapConfig(n_resamples=RESCORE_RESAMPLES),
    save_run: bool = False,
    cache: ImageMatrixCache | None = None,
    text_cache: TextVectorCache | None = None,
    development: bool = False,
    allow_leakage: bool = False,
    history: bool = False,
) -> RescoreResult:
    """Score `prompts` ({class: [texts]} or a PromptSet) on the cached vectors of `dataset`'s `split`
    (validation by default: prompts are tuned there, test is for the end).

    `development` (the prompt lab): this scoring is prompt development, so scoring these prompts on the test
    split marks them, and every later test run with them, "prompts tuned on test".

    `history` (the prompt lab, unless read-only): the prompts and their AUROC join the lab's history of
    (model, dataset) (store/prompt_trials.py).

    `cache` and `text_cache` belong to the caller (a `Workspace` keeps them between calls; without them a
    call starts empty). Prompts are encoded once per text cache and written to the store's text cache only
    with `save_run`, from the vectors already encoded; image vectors come from the matrix cache, so a
    repeated call costs one state query, the new prompts' encoding, a matrix product and the metrics.
    """
    pset = prompts if isinstance(prompts, PromptSet) else prompt_set_from_dict(prompts)
    cache, text_cache = cache or ImageMatrixCache(), text_cache or TextVectorCache()

    def embed(texts):
        return text_cache.vectors(encoder, texts)

    vectors = prompt_vectors(pset, embed)
    config = ZeroShotConfig(
        protocol=protocol, split=split, bootstrap=bootstrap, kind="rescore", allow_leakage=allow_leakage
    )
    if development:
        record_development(store, dataset, pset, eval_splits(get_protocol(protocol), split))
    # One read-only connection for the scoring's dozen queries (leakage, cache state, case rows per split ...):
    # each fresh connection costs ~15 ms and starts with a cold block cache.
    with contextlib.nullcontext() if store.in_transaction else store.reading():
        result = _evaluate_cached(store, encoder, dataset, vectors, config, cache, embed)
    if history:
        record_trial(store, encoder.fingerprint, dataset, split, pset, result)
    comparison = None
    if baseline_run:
        baseline = get_run(store, baseline_run)
        comparison = compare_predictions(
            predictions_frame(store, baseline["run_id"]), result.predictions, bootstrap
        )
        result.run["config"]["baseline_run"] = baseline["run_id"]
    if save_run:
        persist_prompts(store, encoder, pset, text_cache)
        save(store, result)
    fpr, tpr, _ = roc_points(result.predictions["label"].to_numpy(), result.predictions["score"].to_numpy())
    return RescoreResult(result, (fpr, tpr), comparison, baseline_run)


def record_trial(store: Store, fingerprint: str, dataset: str, split: str, pset: PromptSet, result) -> None:
    """One prompt-lab trial: these prompts scored `result` on the split."""
    metric = result.metrics.get("auroc")
    value = (None, None, None) if metric is None else (metric.value, metric.lo, metric.hi)
    document = prompts_document(pset.classes, pset.positive)
    put_trial(store, fingerprint, dataset, split, document, value, len(result.predictions))


def persist_prompts(store: Store, encoder, prompt_set: PromptSet, text_cache: TextVectorCache) -> None:
    """Write the prompts' vectors to the store's text cache class by class, as they were encoded (no re-encoding)."""
    for prompts in prompt_set.classes.values():
        text_cache.persist(store, encoder, list(prompts))


def cached_loader(store: Store, encoder, dataset: str, protocol, cache: ImageMatrixCache):
    """(`load(splits) -> (cases, vectors)` of the dataset's cached image vectors through `cache`, the split
    column they are selected by: the protocol's)."""
    state = embedded_state(store, encoder.fingerprint, dataset)  # one query per call, shared by the splits
    column = split_column_for(store, dataset, protocol.split_column)

    def load(splits):
        return cache.get(store, encoder.fingerprint, encoder.spec, dataset, splits, state, column)

    return load, column


def _evaluate_cached(store, encoder, dataset, vectors: PromptVectors, config, cache, embed) -> EvalResult:
    protocol = get_protocol(config.protocol)
    allowed = require_no_leakage(store, dataset, config.allow_leakage) if protocol.name == "sound" else None
    load, column = cached_loader(store, encoder, dataset, protocol, cache)
    result = evaluate_prompts(load, encoder, dataset, vectors, config, embed)
    result.run["config"]["split_column"] = column
    if allowed:
        result.run["config"]["leakage_allowed"] = allowed
    mark_prompt_peeking(store, dataset, vectors.prompt_set, result.run)
    return result
