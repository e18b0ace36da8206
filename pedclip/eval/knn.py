"""kNN vote on cached embeddings: P(positive) = similarity-weighted share of positive neighbors.

Neighbors come from the store's FAISS index (`pedclip.store.index.neighbors`) restricted to the
reference split; when the index cannot give k reference neighbors for every query, the exact cosine
search in numpy (`exact_neighbors`) is used instead. Both return case positions into the reference set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pedclip.eval.bootstrap import BootstrapConfig
from pedclip.eval.evaluation import (
    EvalResult,
    choose_threshold,
    finish,
    labelled_vectors,
    predictions_frame,
    sound_run,
)


def exact_neighbors(reference: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by inner product: (n, k) reference positions and (n, k) similarities, best first."""
    k = min(k, len(reference))
    sims = np.asarray(queries, np.float32) @ np.asarray(reference, np.float32).T
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    top_sims = np.take_along_axis(sims, top, axis=1)
    order = np.argsort(-top_sims, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_sims, order, axis=1)


def faiss_neighbors(store, fingerprint, dataset, reference: pd.DataFrame, queries, k) -> tuple | None:
    """Neighbors among `reference` cases from the dataset's FAISS index, or None when it cannot serve."""
    try:
        from pedclip.store.index import neighbors
    except ImportError:
        return None
    position = {int(u): i for i, u in enumerate(reference["uid"].to_numpy())}
    hits = neighbors(store, fingerprint, dataset, queries, k=min(4 * k + 16, 10_000))
    hits = hits[hits["uid"].map(lambda u: int(u) in position)]
    ranked = hits.groupby("query").head(k)
    if len(ranked) != k * len(queries):
        return None
    ranked = ranked.sort_values(["query", "rank"])
    idx = ranked["uid"].map(lambda u: position[int(u)]).to_numpy().reshape(len(queries), k)
    return idx, ranked["similarity"].to_numpy().reshape(len(queries), k)


def knn_scores(labels: np.ndarray, idx: np.ndarray, sims: np.ndarray, weighted: bool = True) -> np.ndarray:
    """(n,) positive share among each row's neighbors, weighted by (clipped) similarity when `weighted`."""
    votes = labels[idx].astype(np.float64)
    if not weighted:
        return votes.mean(1)
    w = np.clip(sims, 1e-6, None)
    return (votes * w).sum(1) / w.sum(1)


@dataclass(frozen=True)
class KnnConfig:
    k: int = 10
    weighted: bool = True  # weight votes by cosine similarity
    reference_split: str = "train"
    eval_split: str = "test"
    threshold: str = "youden"  # chosen on the reference dataset's validation split
    use_index: bool = True  # FAISS neighbors when the index can serve; exact numpy otherwise
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)


def _neighbors(
    store, encoder, train, ref, Xref, X, config, same_dataset
) -> tuple[np.ndarray, np.ndarray, str]:
    if config.use_index and same_dataset:
        found = faiss_neighbors(store, encoder.fingerprint, train, ref, X, config.k)
        if found is not None:
            return found[0], found[1], "faiss"
    idx, sims = exact_neighbors(Xref, X, config.k)
    return idx, sims, "exact"


def knn_eval(
    store, encoder, train: str, evaluate: str | None = None, config: KnnConfig = KnnConfig()
) -> EvalResult:
    """Vote of the k nearest `train` reference cases for each case of `evaluate`'s eval split (not saved)."""
    evaluate = evaluate or train
    ref, Xref = labelled_vectors(store, encoder.fingerprint, encoder.spec, train, (config.reference_split,))
    te, Xte = labelled_vectors(store, encoder.fingerprint, encoder.spec, evaluate, (config.eval_split,))
    labels = ref["label"].to_numpy()
    idx, sims, source = _neighbors(store, encoder, train, ref, Xref, Xte, config, evaluate == train)
    scores = knn_scores(labels, idx, sims, config.weighted)
    threshold = _val_threshold(store, encoder, train, labels, Xref, config)
    run = sound_run(
        "knn",
        encoder,
        train,
        evaluate,
        config.eval_split,
        {
            "k": config.k,
            "weighted": config.weighted,
            "neighbors": source,
            "reference_split": config.reference_split,
            "score": "positive neighbor share",
        },
    )
    preds = predictions_frame(te, scores, (scores >= threshold.value).astype(np.int64))
    return finish(run, preds, threshold, config.bootstrap)


def _val_threshold(store, encoder, train, labels, Xref, config):
    from pedclip.errors import PedclipError

    try:
        va, Xva = labelled_vectors(store, encoder.fingerprint, encoder.spec, train, ("val",))
    except PedclipError:
        return choose_threshold(config.threshold, None, None, 0.5)
    idx, sims = exact_neighbors(Xref, Xva, config.k)
    return choose_threshold(
        config.threshold, va["label"].to_numpy(), knn_scores(labels, idx, sims, config.weighted), 0.5
    )
