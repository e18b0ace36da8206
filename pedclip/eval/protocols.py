"""The two evaluation protocols: `paper` (what the study's code computed) and `sound` (how it should be done).

`paper` (seed-audit section 1): zero-shot and transfer pooled over train+val+test; CLIP prompts scored
with softmax(100 * cos) and the AUC taken on the top-1 probability (the probability of the predicted
class, not P(pneumonia)); MedCLIP's one "COVID" class of generated prompts, max over prompts,
sigmoid >= 0.6, the prompt count picked on the evaluation data itself and the winner re-sampled.
`sound`: the held-out test split only, the AUC on P(positive), the model's learned logit scale, one prompt
set fixed in advance, the threshold chosen on validation (Youden), 95% bootstrap CIs by patient.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from pedclip.errors import PedclipError


@dataclass(frozen=True)
class Protocol:
    name: str
    eval_splits: tuple[str, ...] | None  # None: every case pooled (the study's zero-shot and transfer)
    auc_score: str  # "positive": P(positive); "top1": probability of the predicted class (study's CLIP)
    softmax_scale: float | None  # fixed scale for softmax sets; None: the model's learned logit scale
    threshold_rule: str  # "youden" on validation, or "fixed" (0.5 for softmax, the set's own for sigmoid)
    search_prompt_count: bool  # study's MedCLIP: try n = 1..12 prompts on the eval data, keep the best
    default_prompts: str  # prompt set used when none is given

    def as_dict(self) -> dict:
        return asdict(self)


SOUND = Protocol(
    name="sound",
    eval_splits=("test",),
    auc_score="positive",
    softmax_scale=None,
    threshold_rule="youden",
    search_prompt_count=False,
    default_prompts="pneumonia",
)
PAPER = Protocol(
    name="paper",
    eval_splits=None,
    auc_score="top1",
    softmax_scale=100.0,
    threshold_rule="fixed",
    search_prompt_count=True,
    default_prompts="study-clip",
)
PROTOCOLS = {p.name: p for p in (SOUND, PAPER)}
PROMPT_SEARCH_MAX = 12  # the study searched n = 1..12 (the size of MedCLIP's COVID set)


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise PedclipError(f"unknown protocol {name!r}; use one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def auc_scores(protocol: Protocol, mode: str, p_positive: np.ndarray) -> tuple[np.ndarray, str]:
    """The score the protocol's AUC is computed on, and its name.

    The study took `top_probs` (max(p, 1 - p)) for its two-prompt CLIP softmax; its MedCLIP sigmoid score
    was already positive-class.
    """
    if protocol.auc_score == "top1" and mode == "softmax":
        return np.maximum(p_positive, 1.0 - p_positive), "top1_probability"
    return p_positive, "p_positive"


def eval_splits(protocol: Protocol, split: str | None) -> tuple[str, ...] | None:
    """The splits to evaluate: an explicit `split` ("all" pools everything) overrides the protocol."""
    if split is None:
        return protocol.eval_splits
    if split == "all":
        return None
    return tuple(s for s in split.replace(",", "+").split("+") if s)
