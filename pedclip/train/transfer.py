"""`transfer`: fine-tune on A, evaluate zero-shot on B with the fine-tuning prompts (the study's Table 4).

With the audit's correction (section 1, Table 4): each direction uses the model fine-tuned on its own
source dataset (the study's MedCLIP runs both used the UCSD model). A finished fine-tuning run with the
same request is reused instead of training again, unless `reuse=False`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from pedclip.embed.pipeline import EmbedConfig
from pedclip.errors import PedclipError
from pedclip.eval.evaluation import save
from pedclip.models import load_encoder
from pedclip.store import Store
from pedclip.store.cases import get_dataset
from pedclip.store.runs import get_run, new_run_id, runs_frame
from pedclip.train.config import FinetuneConfig
from pedclip.train.evaluate import embed_with, evaluate_finetuned
from pedclip.train.finetune import FinetuneResult, finetune
from pedclip.train.loop import Progress

# Request fields that do not change the trained weights (where to embed, which device) are not compared.
IGNORED_FOR_REUSE = (
    "reembed",
    "embed",
    "embed_workers",
    "device",
    "trust_torchscript",
    "allow_leakage",
    "threshold_from",
)


@dataclass
class TransferResult:
    runs: list[dict] = field(default_factory=list)  # one per direction: run id, datasets, checkpoint, metrics

    def as_dict(self) -> dict:
        return {"runs": self.runs}


def _comparable(request: dict) -> str:
    return json.dumps(
        {k: v for k, v in request.items() if k not in IGNORED_FOR_REUSE}, sort_keys=True, default=str
    )


def find_finetune(store: Store, config: FinetuneConfig) -> dict | None:
    """The newest finished fine-tuning run of this exact request whose checkpoint is still on disk."""
    frame = runs_frame(store, kinds=["finetune"])
    wanted = _comparable(config.as_dict())
    for run_id, status in zip(frame["run_id"], frame["status"], strict=True):
        if status != "done":
            continue
        run = get_run(store, run_id)
        checkpoint = run["config"].get("checkpoint")
        if (
            _comparable(run["config"].get("request", {})) == wanted
            and checkpoint
            and Path(checkpoint).is_dir()
        ):
            return run
    return None


Trainer = Callable[..., FinetuneResult]  # finetune, or tune.tuned_finetune with its grid bound


def finetuned_spec(
    store: Store,
    config: FinetuneConfig,
    reuse: bool,
    progress: Progress | None,
    tags: dict | None = None,
    trainer: Trainer = finetune,
) -> tuple[str, str]:
    """(local: spec, fine-tuning run id) of a model fine-tuned with `config`, trained now unless reusable."""
    found = find_finetune(store, config) if reuse else None
    if found is not None:
        return f"local:{found['config']['checkpoint']}", found["run_id"]
    result = trainer(store, config, progress=progress, tags=tags)
    if result.stopped == "interrupted":
        raise KeyboardInterrupt
    return result.spec, result.run_id


def transfer_one(
    store: Store,
    config: FinetuneConfig,
    to_dataset: str,
    reuse: bool = True,
    progress: Progress | None = None,
    tags: dict | None = None,
    trainer: Trainer = finetune,
) -> dict:
    """Fine-tune on `config.dataset`, evaluate on `to_dataset` (protocol's splits), save a "transfer" run;
    `tags` (seed group ...) go into both runs' configs."""
    if to_dataset == config.dataset:
        raise PedclipError(f"--from and --to are both {to_dataset!r}; transfer needs two different datasets")
    spec, finetune_run = finetuned_spec(store, config, reuse, progress, tags, trainer)
    child = load_encoder(spec, device=config.device or "cpu", home=store.paths.home)
    embed_with(store, child, (to_dataset,), EmbedConfig(workers=config.embed_workers))
    threshold_dataset = config.dataset if config.threshold_from == "source" else to_dataset
    result = evaluate_finetuned(
        store,
        child,
        config,
        dataset=to_dataset,
        kind="transfer",
        split=None,
        threshold_dataset=threshold_dataset,
    )
    result.run["run_id"] = new_run_id("transfer")
    result.run["train_dataset"] = config.dataset
    result.run["config"] = {
        **(tags or {}),
        **result.run["config"],
        "train_dataset": config.dataset,
        "eval_dataset": to_dataset,
        "checkpoint": spec[len("local:") :],
        "finetune_run": finetune_run,
        "parent_spec": config.model,
        "parent_fingerprint": child.parent_fingerprint,
        "threshold_from": config.threshold_from,  # source: strictly zero-shot on the target
    }
    save(store, result)
    return {
        "run_id": result.run_id,
        "from": config.dataset,
        "to": to_dataset,
        "model": spec,
        "finetune_run": finetune_run,
        "split": result.run["split"],
        "seed": config.seed,
        "metrics": result.run["metrics"],
    }


def transfer(
    store: Store,
    config: FinetuneConfig,
    to_dataset: str,
    both: bool = False,
    reuse: bool = True,
    progress: Progress | None = None,
    tags: dict | None = None,
    trainer: Trainer = finetune,
) -> TransferResult:
    """A -> B (config.dataset -> to_dataset), and B -> A with B's own fine-tuned model when `both`."""
    get_dataset(store, to_dataset)
    result = TransferResult([transfer_one(store, config, to_dataset, reuse, progress, tags, trainer)])
    if both:
        reverse = replace(config, dataset=to_dataset, reembed=())
        result.runs.append(transfer_one(store, reverse, config.dataset, reuse, progress, tags, trainer))
    return result
