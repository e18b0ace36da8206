"""No test peeking by default: prompts developed on the test split are remembered and every later run that
scores them on test says so, and a `sound` run refuses a dataset whose splits leak patients or images.

Prompt development is the prompt lab (`rescore(..., development=True)`): each prompt set it scores on a dataset's
test split is recorded by content (a hash of its classes and texts) in the dataset's attributes, so the
mark survives renaming the set and needs no table of its own.
"""

from __future__ import annotations

import hashlib
import json

from pedclip.errors import PedclipError
from pedclip.eval.leakage import AuditReport, audit_cases, leakage_message
from pedclip.eval.prompts import PromptSet
from pedclip.store import Store
from pedclip.store.cases import cases_frame, get_dataset, split_leak_counts, update_dataset_attributes

TUNED_ON_TEST = "prompts tuned on test"
_ATTRIBUTE = "prompts_developed_on_test"  # dataset attribute: sorted prompt-set keys


def prompt_key(prompt_set: PromptSet) -> str:
    """A short content hash of the prompt set: its classes and their texts, order kept."""
    payload = json.dumps({name: list(texts) for name, texts in prompt_set.classes.items()})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def touches_test(splits) -> bool:
    """Whether evaluated splits (None = every split pooled) include the test split."""
    return splits is None or "test" in splits


def record_development(store: Store, dataset: str, prompt_set: PromptSet, splits) -> None:
    """Remember that `prompt_set` was developed looking at `dataset`'s test split (when it was)."""
    if not touches_test(splits):
        return
    keys = set(get_dataset(store, dataset)["attributes"].get(_ATTRIBUTE, []))
    if prompt_key(prompt_set) not in keys:
        update_dataset_attributes(store, dataset, {_ATTRIBUTE: sorted(keys | {prompt_key(prompt_set)})})


def tuned_on_test(store: Store, dataset: str, prompt_set: PromptSet, splits) -> bool:
    """Whether this scoring touches test with prompts developed on that test split."""
    if not touches_test(splits):
        return False
    return prompt_key(prompt_set) in get_dataset(store, dataset)["attributes"].get(_ATTRIBUTE, [])


def leakage_report(store: Store, dataset: str) -> AuditReport:
    """`pedclip data audit` of the dataset's assigned splits."""
    info = get_dataset(store, dataset)
    return audit_cases(cases_frame(store, dataset), tuple(info["class_names"]))


def require_no_leakage(store: Store, dataset: str, allow: bool) -> dict | None:
    """Raise the audit's message when patients or images leak across `dataset`'s splits, unless `allow`;
    then return what was allowed (for the run's config). None when nothing leaks."""
    patients, images = split_leak_counts(store, dataset)
    if not patients and not images:
        return None
    if not allow:
        message = leakage_message(dataset, leakage_report(store, dataset))
        raise PedclipError(message + "; or pass --allow-leakage to run the sound protocol anyway")
    return {"dataset": dataset, "shared_patients": patients, "cross_split_duplicates": images}


def evaluated_splits(run: dict) -> tuple[str, ...] | None:
    """The splits a run scored (None: every split pooled), from its `split` label."""
    return None if run["split"] == "all" else tuple(run["split"].split("+"))


def mark_prompt_peeking(store: Store, dataset: str, prompt_set: PromptSet, run: dict) -> None:
    """Record on the run (config `prompts_tuned_on_test`) when it scores test with prompts developed on test."""
    if tuned_on_test(store, dataset, prompt_set, evaluated_splits(run)):
        run["config"]["prompts_tuned_on_test"] = True
        run["config"]["note"] = "; ".join(filter(None, [run["config"].get("note"), TUNED_ON_TEST]))
