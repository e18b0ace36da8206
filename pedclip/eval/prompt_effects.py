"""What each prompt of a set does: the validation AUROC without it (leave one out), and the prompts' own
map (their vectors and the class centroids on one PCA plane). The prompt lab shows both."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from pedclip.eval.metrics import auroc
from pedclip.eval.projection import pca_2d
from pedclip.eval.protocols import get_protocol
from pedclip.eval.zeroshot import PromptVectors, classifier_for, prompt_vectors, subset_vectors

EFFECT_COLUMNS = ["class", "prompt", "auroc_without", "effect", "note"]


@dataclass(frozen=True)
class PromptEffects:
    split: str
    n_cases: int
    auroc: float | None  # with every prompt
    effects: pd.DataFrame  # EFFECT_COLUMNS; effect = auroc - auroc_without (> 0: the prompt helps)
    prompt_map: pd.DataFrame  # kind (prompt | centroid), class, text, x, y


def without(prompts: PromptVectors, class_name: str, text: str, embed=None) -> PromptVectors:
    """The prompt vectors less one prompt; re-embedded as a group with `embed` (MedCLIP pads per group)."""
    pset = prompts.prompt_set
    classes = {k: tuple(t for t in v if not (k == class_name and t == text)) for k, v in pset.classes.items()}
    smaller = replace(pset, classes=classes)
    return prompt_vectors(smaller, embed) if embed is not None else subset_vectors(prompts, smaller)


def leave_one_out(
    prompts: PromptVectors, X: np.ndarray, y: np.ndarray, protocol, scale: float, embed=None
) -> tuple[float | None, pd.DataFrame]:
    """(AUROC with every prompt, one row per prompt with the AUROC without it), scored as a rescore is."""

    def score(vectors: PromptVectors) -> float | None:
        return auroc(y, classifier_for(vectors, protocol, scale, "rescore").positive_score(X)).value

    full = score(prompts)
    rows = []
    for name, texts in prompts.prompt_set.classes.items():
        for text in texts:
            if len(texts) < 2:
                rows.append([name, text, None, None, "the only prompt of its class"])
                continue
            alone = score(without(prompts, name, text, embed))
            effect = None if full is None or alone is None else full - alone
            rows.append([name, text, alone, effect, ""])
    return full, pd.DataFrame(rows, columns=EFFECT_COLUMNS)


def prompt_map(prompts: PromptVectors) -> pd.DataFrame:
    """Each prompt and each class's centroid (mean of its unit vectors, as the classifier takes) on the
    prompts' two leading principal components."""
    unit = prompts.vectors / np.linalg.norm(prompts.vectors, axis=1, keepdims=True)
    names = {prompts.prompt_set.label_of(k): k for k in prompts.prompt_set.classes}
    texts = [t for v in prompts.prompt_set.classes.values() for t in v]
    centroids = [unit[prompts.labels == label].mean(0) for label in sorted(names)]
    points = np.vstack([unit, np.stack(centroids)])
    coords = pca_2d(points)
    kinds = ["prompt"] * len(unit) + ["centroid"] * len(centroids)
    classes = [names[label] for label in prompts.labels] + [names[label] for label in sorted(names)]
    labels = texts + [f"centroid of {names[label]}" for label in sorted(names)]
    return pd.DataFrame(
        {"kind": kinds, "class": classes, "text": labels, "x": coords[:, 0], "y": coords[:, 1]}
    )


def prompt_effects(load, encoder, prompts: PromptVectors, split: str = "val", embed=None) -> PromptEffects:
    """Leave-one-out AUROCs on `split` of the vectors `load(splits)` gives (sound protocol's arithmetic,
    the encoder's learned scale for sigmoid sets), and the prompts' map."""
    frame, X = load((split,))
    y = frame["label"].to_numpy()
    full, effects = leave_one_out(prompts, X, y, get_protocol("sound"), float(encoder.logit_scale), embed)
    return PromptEffects(split, len(frame), full, effects, prompt_map(prompts))
