"""After training: embed datasets with the fine-tuned model and evaluate it zero-shot with its own prompts."""

from __future__ import annotations

from pedclip.embed.pipeline import EmbedConfig, embed_dataset
from pedclip.eval.evaluation import EvalResult, split_column_for
from pedclip.eval.prompts import PromptSet, load_prompt_set, prompt_set_from_dict
from pedclip.eval.protocols import get_protocol
from pedclip.eval.zeroshot import ZeroShotConfig, zeroshot_eval
from pedclip.models.base import Encoder
from pedclip.store import Store
from pedclip.store.cases import cases_frame
from pedclip.train.config import CLASS_WORDS, DEFAULT_TEMPLATE, FinetuneConfig, is_medclip_family

STUDY_MEDCLIP_FINETUNE_PROMPTS = "study-finetune"  # one "a photo of covid lungs." class, sigmoid >= 0.6


def embed_with(
    store: Store, encoder: Encoder, datasets: tuple[str, ...], config: EmbedConfig | None = None
) -> dict:
    """Embed each dataset (once, in order) with `encoder`; {dataset: embedding report}."""
    reports = {}
    for name in dict.fromkeys(datasets):
        report = embed_dataset(store, encoder, name, config or EmbedConfig())
        reports[name] = {k: v for k, v in report.as_dict().items() if k != "failures"} | {
            "failed": report.failed
        }
    return reports


def finetune_prompt_set(config: FinetuneConfig, family: str, arch: dict | None = None) -> PromptSet:
    """The fine-tuning prompts as a prompt set: two classes, softmax; in `paper` a MedCLIP model is scored as
    the study did (its one "covid" prompt, sigmoid, threshold 0.6)."""
    study_prompts = config.prompts == tuple(DEFAULT_TEMPLATE.format(w) for w in CLASS_WORDS["paper"])
    if config.protocol == "paper" and is_medclip_family(family, arch) and study_prompts:
        return load_prompt_set(STUDY_MEDCLIP_FINETUNE_PROMPTS)
    negative, positive = config.prompts
    return prompt_set_from_dict({"normal": [negative], "pneumonia": [positive]}, name="finetune")


def evaluate_finetuned(
    store: Store,
    encoder: Encoder,
    config: FinetuneConfig,
    dataset: str | None = None,
    kind: str = "finetune",
    split: str | None = "test",
    threshold_dataset: str | None = None,
) -> EvalResult | None:
    """Zero-shot of the fine-tuned model on `dataset` (default: its training set's test split, Table 3);
    `split` None uses the protocol's splits. None when the dataset has no cases in `split`."""
    dataset = dataset or config.dataset
    column = split_column_for(store, dataset, get_protocol(config.protocol).split_column)
    if split is not None and cases_frame(store, dataset, splits=[split], split_column=column).empty:
        return None
    pset = finetune_prompt_set(config, encoder.family, encoder.arch)
    zs = ZeroShotConfig(
        protocol=config.protocol,
        split=split,
        kind=kind,
        threshold_dataset=threshold_dataset,
        allow_leakage=config.allow_leakage,
    )
    return zeroshot_eval(store, encoder, dataset, pset, zs)
