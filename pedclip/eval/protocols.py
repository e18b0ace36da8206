"""The two evaluation protocols: `paper` (what the study's code computed) and `sound` (how it should be done).

`paper` (seed-audit section 1): zero-shot and transfer pooled over train+val+test; CLIP prompts scored
with softmax(100 * cos) and the AUC taken on the top-1 probability (the probability of the predicted
class, not P(pneumonia)); MedCLIP's one "COVID" class of generated prompts, max over prompts,
sigmoid >= 0.6, the prompt count picked on the evaluation data itself and the winner re-sampled; scores
in the study's arithmetic (`score_dtype`), so confident cases tie where its GPU code made them tie.
Splits: `paper` reads each case's `source_split` (the study's Train/Validation/Test folders), `sound` its
assigned `split` (patient-grouped by `pedclip data split`): both live in one store, no re-ingest.
`sound`: the held-out test split only, the AUC on P(positive), the model's learned logit scale, one prompt
set fixed in advance, the threshold chosen on validation (Youden), 95% bootstrap CIs by patient.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from pedclip.errors import PedclipError

# The fine-tuning loss each protocol uses when none is given: the study's hard CLIP targets in `paper`,
# label-similarity targets in `sound` (same-class captions are not negatives: audit section 2, item 9).
PROTOCOL_LOSS = {"sound": "semantic", "paper": "clip"}


@dataclass(frozen=True)
class Protocol:
    name: str
    eval_splits: tuple[str, ...] | None  # None: every case pooled (the study's zero-shot and transfer)
    auc_score: str  # "positive": P(positive); "top1": probability of the predicted class (study's CLIP)
    softmax_scale: float | None  # fixed scale for softmax sets; None: the model's learned logit scale
    threshold_rule: str  # "youden" on validation, or "fixed" (0.5 for softmax, the set's own for sigmoid)
    search_prompt_count: bool  # study's MedCLIP: try n = 1..12 prompts on the eval data, keep the best
    default_prompts: str  # prompt set used when none is given
    study_arithmetic: bool = False  # scores in the study's dtypes (`score_dtype`); False: float64
    split_column: str = "split"  # which split a case is in: as assigned (split) or as its source gave it

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
    study_arithmetic=True,
    split_column="source_split",  # the study's folders, whatever `pedclip data split` assigned since
)
PROTOCOLS = {p.name: p for p in (SOUND, PAPER)}
PROMPT_SEARCH_MAX = 12  # the study searched n = 1..12 (the size of MedCLIP's COVID set)


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise PedclipError(f"unknown protocol {name!r}; use one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def score_dtype(protocol: Protocol, mode: str, kind: str) -> str:
    """The floating-point type a zero-shot score is computed in (audit sections 1 and 2).

    `sound`: float64. `paper`: CLIP's softmax(100 * cos) in float16, zero-shot and fine-tuned alike (the
    study ran `clip.load` fp16 weights on a GPU, so a logit gap above ~8.3 rounds P to exactly 1.0); MedCLIP's
    sigmoid in float32 zero-shot and in transfer (its zero-shot code), float16 for the fine-tuned model's
    test run (logits and sigmoid under `autocast`, finetune_medclip.py:111).
    """
    if not protocol.study_arithmetic:
        return "float64"
    if mode == "softmax" or kind == "finetune":
        return "float16"
    return "float32"


def auc_scores(
    protocol: Protocol, mode: str, p_positive: np.ndarray, p_negative: np.ndarray | None = None
) -> tuple[np.ndarray, str]:
    """The score the protocol's AUC is computed on, and its name.

    The study took `top_probs` (the larger softmax column; `p_negative` is the negative column as computed,
    default 1 - p) for its two-prompt CLIP softmax; its MedCLIP sigmoid score was already positive-class.
    """
    if protocol.auc_score == "top1" and mode == "softmax":
        negative = 1.0 - p_positive if p_negative is None else p_negative
        return np.maximum(p_positive, negative), "top1_probability"
    return p_positive, "p_positive"


def eval_splits(protocol: Protocol, split: str | None) -> tuple[str, ...] | None:
    """The splits to evaluate: an explicit `split` ("all" pools everything) overrides the protocol."""
    if split is None:
        return protocol.eval_splits
    if split == "all":
        return None
    return tuple(s for s in split.replace(",", "+").split("+") if s)
