"""The study's MedCLIP prompt-count search as a distribution over seeds (audit section 1, Table 2).

The study tried n = 1..12 of MedCLIP's 12 COVID prompts on the pooled evaluation data, kept the n with the
best AUC and saved a second, re-sampled run of that n. `random.sample` was unseeded and called once per
batch of 256, so each batch was scored with its own prompts. One seed here replays that whole procedure
(shuffled batches of 256, a fresh sample per batch, the search, the re-run); many seeds give the spread
its published number was one draw from.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from pedclip.eval.metrics import auroc
from pedclip.eval.protocols import PROMPT_SEARCH_MAX, Protocol
from pedclip.eval.zeroshot import PromptVectors, classifier_for, prompt_vectors, subset_vectors

STUDY_BATCH = 256  # every script of the study (audit section 1)
DEFAULT_SEEDS = 20
PAPER_MEDCLIP_PROMPTS = "medclip-covid"  # the study's 12 generated COVID prompts, one class


@dataclass(frozen=True)
class SearchDraw:
    """One replay of the procedure: the n it chose, that n's AUC during the search, the re-run's AUC."""

    seed: int
    prompt_count: int
    search_auroc: float | None
    auroc: float | None


def _batch_scores(
    prompts: PromptVectors, X, batches, n: int, rng, protocol, scale, kind, embed
) -> np.ndarray:
    """Scores of every case, each batch with its own sample of n prompts (as the study's loop drew them);
    with `embed` each sample is embedded as its own group (MedCLIP pads to the longest prompt of the call)."""
    scores = np.empty(len(X), dtype=np.float64)
    for batch in batches:
        sampled = prompts.prompt_set.sample(n, seed=int(rng.integers(2**31)))
        vectors = prompt_vectors(sampled, embed) if embed is not None else subset_vectors(prompts, sampled)
        clf = classifier_for(vectors, protocol, scale, kind)
        scores[batch] = clf.positive_score(X[batch])
    return scores


def replay_search(
    prompts: PromptVectors,
    X: np.ndarray,
    y: np.ndarray,
    protocol: Protocol,
    scale: float,
    seed: int,
    kind: str = "zeroshot",
    batch_size: int = STUDY_BATCH,
    embed=None,
) -> SearchDraw:
    """One seeded replay of the study's search and re-run on (n, d) vectors X with labels y."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    batches = [order[i : i + batch_size] for i in range(0, len(X), batch_size)]
    top = min(len(prompts.prompt_set.texts), PROMPT_SEARCH_MAX)
    trials = {}
    for n in range(1, top + 1):
        trials[n] = auroc(y, _batch_scores(prompts, X, batches, n, rng, protocol, scale, kind, embed)).value
    best = max(trials, key=lambda n: -1.0 if trials[n] is None else trials[n])
    final = auroc(y, _batch_scores(prompts, X, batches, best, rng, protocol, scale, kind, embed)).value
    return SearchDraw(seed, best, trials[best], final)


def search_distribution(
    prompts: PromptVectors,
    X: np.ndarray,
    y: np.ndarray,
    protocol: Protocol,
    scale: float,
    n_seeds: int = DEFAULT_SEEDS,
    kind: str = "zeroshot",
    embed=None,
) -> dict:
    """The procedure over seeds 0..n_seeds-1: median, min and max of the saved AUC, and the n chosen."""
    draws = [
        replay_search(prompts, X, y, protocol, scale, seed, kind, embed=embed) for seed in range(n_seeds)
    ]
    values = [d.auroc for d in draws if d.auroc is not None]
    counts = [d.prompt_count for d in draws]
    return {
        "n_seeds": n_seeds,
        "median": statistics.median(values) if values else None,
        "min": min(values) if values else None,
        "max": max(values) if values else None,
        "prompt_counts": {n: counts.count(n) for n in sorted(set(counts))},
        "draws": [d.__dict__ for d in draws],
    }


def search_rows(
    store, encoder, datasets: dict[str, str], published: dict[str, float], n_seeds: int
) -> list[dict]:
    """One row per site: the published AUC beside the median and range of `n_seeds` replays on the pooled
    cached vectors of the site's dataset (`datasets`: site -> dataset)."""
    from pedclip.embed.text import embed_texts
    from pedclip.eval.evaluation import labelled_vectors
    from pedclip.eval.prompts import load_prompt_set
    from pedclip.eval.protocols import PAPER

    memo: dict[tuple[str, ...], np.ndarray] = {}

    def embed(texts):  # a replay asks for the same samples again and again
        key = tuple(texts)
        if key not in memo:
            memo[key] = embed_texts(store, encoder, texts)
        return memo[key]

    pset = load_prompt_set(PAPER_MEDCLIP_PROMPTS)
    # a group's vectors depend on its other texts only where padding enters the pooling (MedCLIP): re-embed
    # each sample there, take rows of the full set's vectors elsewhere (exact for CLIP)
    grouped = encoder.text_context(list(pset.texts)) != "" if hasattr(encoder, "text_context") else False
    rows = []
    for site, dataset in datasets.items():
        frame, X = labelled_vectors(store, encoder.fingerprint, encoder.spec, dataset, None)
        prompts = prompt_vectors(pset, embed)
        found = search_distribution(
            prompts,
            X,
            frame["label"].to_numpy(),
            PAPER,
            float(encoder.logit_scale),
            n_seeds,
            embed=embed if grouped else None,
        )
        rows.append(
            {
                "dataset": site,
                "published AUC": published.get(site),
                "median AUC": _rounded(found["median"]),
                "range": f"{found['min']:.4f}-{found['max']:.4f}" if found["min"] is not None else "",
                "seeds": n_seeds,
                "n chosen (seeds)": ", ".join(f"{n} ({k})" for n, k in found["prompt_counts"].items()),
                "n": len(frame),
            }
        )
    return rows


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
