"""Zero-shot classification from cached image vectors and prompt vectors; no image is decoded.

`ZeroShotClassifier` is a nearest-centroid estimator whose centroids are prompt embeddings:
softmax mode: class embedding = normalised mean of the normalised prompt embeddings,
P(positive) = softmax over classes of scale * cos; sigmoid mode (MedCLIP): one class,
score = sigmoid(max over its prompts of scale * cos).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pedclip.errors import PedclipError
from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.evaluation import (
    EvalResult,
    Threshold,
    choose_threshold,
    finish,
    labelled_vectors,
    predictions_frame,
    split_column_for,
    split_label,
)
from pedclip.eval.guards import mark_prompt_peeking, require_no_leakage
from pedclip.eval.metrics import auroc
from pedclip.eval.prompts import PromptSet
from pedclip.eval.protocols import (
    PROMPT_SEARCH_MAX,
    Protocol,
    auc_scores,
    eval_splits,
    get_protocol,
    score_dtype,
)

SCORE_DTYPES = ("float64", "float32", "float16")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class ZeroShotClassifier:
    """Prompt-embedding classifier over (n, d) unit image vectors; labels are 0 (negative) and 1 (positive).

    `dtype` is the arithmetic of the scores: float64 (exact), or float32/float16 to reproduce the study's
    code, which computed them in its model's dtype (see `protocols.score_dtype`).
    """

    def __init__(
        self,
        mode: str = "softmax",
        reduce: str = "mean",
        logit_scale: float = 100.0,
        threshold=None,
        dtype: str = "float64",
    ):
        self.mode = mode
        self.reduce = reduce
        self.logit_scale = logit_scale
        self.threshold = threshold
        self.dtype = dtype

    def fit(self, prompt_vectors: np.ndarray, prompt_labels: np.ndarray) -> ZeroShotClassifier:
        """Prompt vectors (m, d) with their class labels (m,); two classes (softmax) or one (sigmoid)."""
        vectors = _unit(np.asarray(prompt_vectors, dtype=np.float32))
        labels = np.asarray(prompt_labels)
        self.prompt_classes_ = np.unique(labels)
        want = 2 if self.mode == "softmax" else 1
        if len(self.prompt_classes_) != want:
            raise PedclipError(
                f"{self.mode} zero-shot needs {want} prompt classes; got {len(self.prompt_classes_)}"
            )
        if self.dtype not in SCORE_DTYPES:
            raise PedclipError(f"unknown score dtype {self.dtype!r}; use one of {', '.join(SCORE_DTYPES)}")
        if self.reduce == "mean":
            self.centroids_ = np.stack([_unit(vectors[labels == c].mean(0)) for c in self.prompt_classes_])
        self.prompt_vectors_, self.prompt_labels_ = vectors, labels
        self.classes_ = np.array([0, 1])
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """(n, C) scaled cosine per prompt class (C = 2 for softmax, 1 for sigmoid)."""
        X = np.asarray(X, dtype=np.float32)
        if self.reduce == "mean":
            return self.logit_scale * (X @ self.centroids_.T)
        sims = X @ self.prompt_vectors_.T
        return self.logit_scale * np.stack(
            [sims[:, self.prompt_labels_ == c].max(1) for c in self.prompt_classes_], 1
        )

    def class_probabilities(self, X: np.ndarray) -> np.ndarray:
        """(n, 2) [negative, positive] probabilities computed in `dtype`, returned as float64 (exactly the
        values that arithmetic gave; a sigmoid's negative column is 1 - p)."""
        if self.dtype != "float64":
            return self._probabilities_in_dtype(X)
        logits = self.decision_function(X).astype(np.float64)
        if self.mode == "softmax":
            p = 1.0 / (1.0 + np.exp(logits[:, 0] - logits[:, 1]))  # softmax of two = sigmoid of the gap
        else:
            p = 1.0 / (1.0 + np.exp(-logits[:, 0]))
        return np.stack([1.0 - p, p], axis=1)

    def _probabilities_in_dtype(self, X: np.ndarray) -> np.ndarray:
        """The study's arithmetic as a GPU does it: every op's result rounded to `dtype`, products and sums
        accumulated in float32. Image vectors re-normalised, CLIP's `(100 * x) @ t.T` then softmax,
        MedCLIP's `(x @ t.T) * scale` then max over prompts and sigmoid."""
        dtype = np.dtype(self.dtype)

        def r(a: np.ndarray) -> np.ndarray:  # round to the dtype, keep computing in float32
            return np.asarray(a, dtype=np.float32).astype(dtype).astype(np.float32)

        x = r(X)
        x = r(x / np.linalg.norm(x, axis=-1, keepdims=True))
        prompts = r(self.centroids_ if self.reduce == "mean" else self.prompt_vectors_)
        if self.mode == "softmax":
            logits = self._per_class(r(r(self.logit_scale * x) @ prompts.T))
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            return r(e / e.sum(axis=1, keepdims=True)).astype(np.float64)
        logits = self._per_class(r(r(x @ prompts.T) * np.float32(self.logit_scale)))
        p = r(1.0 / (1.0 + np.exp(-logits[:, 0]))).astype(np.float64)
        return np.stack([1.0 - p, p], axis=1)

    def _per_class(self, sims: np.ndarray) -> np.ndarray:
        """(n, C) from (n, m) prompt logits: as is for centroids, the max over each class's prompts."""
        if self.reduce == "mean":
            return sims
        return np.stack([sims[:, self.prompt_labels_ == c].max(axis=1) for c in self.prompt_classes_], axis=1)

    def positive_score(self, X: np.ndarray) -> np.ndarray:
        """(n,) P(positive) (softmax) or sigmoid score (one class), as float64."""
        return self.class_probabilities(X)[:, 1]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.class_probabilities(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        threshold = 0.5 if self.threshold is None else self.threshold
        return (self.positive_score(X) >= threshold).astype(np.int64)


@dataclass(frozen=True)
class PromptVectors:
    vectors: np.ndarray  # (m, d)
    labels: np.ndarray  # (m,) 0/1
    prompt_set: PromptSet


def prompt_vectors(prompt_set: PromptSet, embed) -> PromptVectors:
    """Embed each class's prompts with `embed(texts) -> (m, d)`, one call per class as MedCLIP's
    classifier tokenises them (its vectors depend on the padded length of the group)."""
    vectors, labels = [], []
    for name, prompts in prompt_set.classes.items():
        vectors.append(np.asarray(embed(list(prompts)), dtype=np.float32))
        labels += [prompt_set.label_of(name)] * len(prompts)
    return PromptVectors(np.concatenate(vectors), np.array(labels), prompt_set)


def classifier_for(
    prompts: PromptVectors, protocol: Protocol, learned_scale: float, kind: str = "zeroshot"
) -> ZeroShotClassifier:
    """The protocol's classifier for these prompts: its scale and its arithmetic for this kind of run."""
    pset = prompts.prompt_set
    scale = protocol.softmax_scale if (pset.mode == "softmax" and protocol.softmax_scale) else learned_scale
    dtype = score_dtype(protocol, pset.mode, kind)
    return ZeroShotClassifier(pset.mode, pset.reduce, scale, dtype=dtype).fit(prompts.vectors, prompts.labels)


def fallback_threshold(prompt_set: PromptSet) -> float:
    return float(prompt_set.threshold) if prompt_set.threshold is not None else 0.5


def _search_prompt_count(
    prompts: PromptVectors, X, y, protocol, scale, embed=None, kind: str = "zeroshot"
) -> tuple[PromptVectors, dict]:
    """The study's MedCLIP search: n = 1..12 prompts scored on the evaluation data, best AUC kept, then the
    winner re-sampled once more (seeded here; the study's unseeded per-batch resampling is not reproduced).
    With `embed`, each sample is re-embedded as its own group (MedCLIP pads per call)."""
    pset, trials = prompts.prompt_set, []

    def vectors_of(sampled: PromptSet) -> PromptVectors:
        return prompt_vectors(sampled, embed) if embed is not None else subset_vectors(prompts, sampled)

    for n in range(1, min(len(pset.texts), PROMPT_SEARCH_MAX) + 1):
        sub = vectors_of(pset.sample(n, seed=pset.seed + n))
        trials.append(
            {"n": n, "auroc": auroc(y, classifier_for(sub, protocol, scale, kind).positive_score(X)).value}
        )
    best = max(trials, key=lambda t: -1.0 if t["auroc"] is None else t["auroc"])
    final = vectors_of(pset.sample(best["n"], seed=pset.seed + 1000 + best["n"]))
    note = (
        "prompt count chosen on the evaluation data; winner re-sampled once (seeded); no per-batch resampling"
    )
    return final, {
        "prompt_search": trials,
        "prompt_count": best["n"],
        "search_auroc": best["auroc"],
        "note": note,
    }


def subset_vectors(prompts: PromptVectors, sampled: PromptSet) -> PromptVectors:
    """The rows of `prompts` that a sample of its prompt set kept (no re-embedding)."""
    index = {t: i for i, t in enumerate(t for v in prompts.prompt_set.classes.values() for t in v)}
    rows = [index[t] for v in sampled.classes.values() for t in v]
    return PromptVectors(prompts.vectors[rows], prompts.labels[rows], sampled)


@dataclass(frozen=True)
class ZeroShotConfig:
    protocol: str = "sound"
    split: str | None = None  # None: the protocol's splits; "all" pools every split
    threshold: str | float | None = None  # None: the protocol's rule
    bootstrap: BootstrapConfig = BootstrapConfig()
    kind: str = "zeroshot"
    # the dataset whose validation split gives a Youden threshold; None: the evaluated one. Transfer sets the
    # source site's, so that scoring another site stays strictly zero-shot
    threshold_dataset: str | None = None
    allow_leakage: bool = False  # sound: run even when the dataset's splits leak patients or images


VectorLoader = Callable[[tuple[str, ...] | None], tuple[pd.DataFrame, np.ndarray]]


def zeroshot_eval(store, encoder, dataset: str, prompt_set: PromptSet, config: ZeroShotConfig) -> EvalResult:
    """Zero-shot evaluation of `encoder` on cached vectors of `dataset` (not saved; see `evaluation.save`)."""
    from pedclip.embed.text import embed_texts

    protocol = get_protocol(config.protocol)
    allowed = require_no_leakage(store, dataset, config.allow_leakage) if protocol.name == "sound" else None
    column = split_column_for(store, dataset, protocol.split_column)
    threshold_dataset = config.threshold_dataset or dataset
    threshold_column = split_column_for(store, threshold_dataset, protocol.split_column)

    def embed(texts):
        return embed_texts(store, encoder, texts)

    def load(splits):
        return labelled_vectors(store, encoder.fingerprint, encoder.spec, dataset, splits, column)

    def load_threshold(splits):
        return labelled_vectors(
            store, encoder.fingerprint, encoder.spec, threshold_dataset, splits, threshold_column
        )

    vectors = prompt_vectors(prompt_set, embed)
    result = evaluate_prompts(load, encoder, dataset, vectors, config, embed, load_threshold)
    result.run["config"].update(split_column=column, threshold_dataset=threshold_dataset)
    if allowed:
        result.run["config"]["leakage_allowed"] = allowed
    mark_prompt_peeking(store, dataset, prompt_set, result.run)
    return result


def evaluate_prompts(
    load: VectorLoader,
    encoder,
    dataset: str,
    prompts: PromptVectors,
    config,
    embed=None,
    load_threshold: VectorLoader | None = None,
) -> EvalResult:
    """Score prompt vectors against the vectors `load(splits)` returns; `encoder` gives spec, fingerprint
    and the learned logit scale (anything with those attributes will do); `embed(texts)` re-embeds
    prompt samples in the paper protocol's prompt-count search; `load_threshold` gives the validation
    vectors a Youden threshold is chosen on (default `load`: the evaluated dataset's own)."""
    protocol = get_protocol(config.protocol)
    splits = eval_splits(protocol, config.split)
    frame, X = load(splits)
    y = frame["label"].to_numpy()
    extra: dict = {}
    learned = float(encoder.logit_scale)
    if protocol.search_prompt_count and prompts.prompt_set.mode == "sigmoid" and len(prompts.labels) > 1:
        prompts, extra = _search_prompt_count(prompts, X, y, protocol, learned, embed, config.kind)
    clf = classifier_for(prompts, protocol, learned, config.kind)
    proba = clf.class_probabilities(X)
    p_pos = proba[:, 1]
    threshold = _threshold(load_threshold or load, clf, prompts.prompt_set, protocol, config)
    scores, score_kind = auc_scores(protocol, prompts.prompt_set.mode, p_pos, proba[:, 0])
    auc_column = None if scores is p_pos else scores
    predicted = (p_pos >= threshold.value).astype(np.int64)
    run = {
        "kind": config.kind,
        "protocol": protocol.name,
        "model": encoder.spec,
        "fingerprint": encoder.fingerprint,
        "train_dataset": None,
        "eval_dataset": dataset,
        "split": split_label(splits),
        "config": {
            "prompts": prompts.prompt_set.as_dict(),
            "logit_scale": float(clf.logit_scale),
            "score": score_kind,  # what the AUC is computed on; stored scores are always P(positive)
            "score_dtype": clf.dtype,
            "protocol": protocol.as_dict(),
            **extra,
        },
    }
    return finish(run, predictions_frame(frame, p_pos, predicted, auc_column), threshold, config.bootstrap)


def _threshold(load: VectorLoader, clf, pset, protocol, config) -> Threshold:
    rule = config.threshold if config.threshold is not None else protocol.threshold_rule
    fallback = fallback_threshold(pset)
    if rule != "youden":
        return choose_threshold(rule, None, None, fallback)
    try:
        val, Xv = load(("val",))
    except PedclipError:
        return choose_threshold("youden", None, None, fallback)
    chosen = choose_threshold("youden", val["label"].to_numpy(), clf.positive_score(Xv), fallback)
    source = getattr(config, "threshold_dataset", None)
    if source and chosen.rule.startswith("youden on val"):  # say whose validation split it was
        return Threshold(chosen.value, chosen.rule.replace("on val", f"on val of {source}", 1))
    return chosen
