"""A stored run as one typed record: its row parsed once (config and metrics JSON), and how people name it.

Every reader (CLI, report, dashboard) takes a run through `RunRecord.from_row`, so the metrics JSON has one
shape (`Metric.as_dict` per name) and one parser, and a model has one name for people (`model_name`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pedclip.eval.metrics import Metric, undefined
from pedclip.eval.protocols import PROTOCOLS

LOCAL = "local:"
# What a run's kind says about how its model was obtained: the regimes the figures are grouped by.
REGIMES = {
    "zeroshot": "zero-shot",
    "rescore": "zero-shot",
    "probe": "probe",
    "fewshot": "probe",
    "knn": "probe",
    "finetune": "fine-tuned",
    "transfer": "transferred",
}
REGIME_ORDER = ("zero-shot", "probe", "fine-tuned", "transferred")
DEFAULT_THRESHOLD = 0.5


def short_run_id(run_id: str) -> str:
    """`finetune-20261130-154125-e8194a` -> `finetune-…-e8194a` (kind and unique suffix)."""
    parts = str(run_id).split("-")
    return f"{parts[0]}-…-{parts[-1]}" if len(parts) >= 4 else str(run_id)


def model_name(
    spec: str, trained_on: str | None = None, protocol: str | None = None, run_id: str | None = None
) -> str:
    """How people read a model: `demo:medclip · fine-tuned on peds-a · sound · finetune-…-e8194a`.

    `spec` is the spec a user typed (a bare checkpoint path reads as its folder name); `trained_on`,
    `protocol` and `run_id` say what fine-tuned it, when it was fine-tuned.
    """
    spec = str(spec)
    parts = [spec[len(LOCAL) :].rstrip("/").rsplit("/", 1)[-1] if spec.startswith(LOCAL) else spec]
    if trained_on:
        parts.append(f"fine-tuned on {trained_on}")
    if protocol:
        parts.append(protocol)
    if run_id:
        parts.append(short_run_id(run_id))
    return " · ".join(parts)


def _json(value) -> dict:
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value or "{}")
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class RunRecord:
    """One row of the runs table with `config` decoded and `metrics` as {name: Metric}."""

    run_id: str
    kind: str
    protocol: str
    model: str
    fingerprint: str | None = None
    train_dataset: str | None = None
    eval_dataset: str | None = None
    split: str | None = None
    status: str = "done"
    config: dict = field(default_factory=dict)
    metrics: dict[str, Metric] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row) -> RunRecord:
        """From a runs-table row (dict, Series or namedtuple) whose config/metrics are JSON text or dicts."""
        get = row.get if hasattr(row, "get") else lambda k, d=None: getattr(row, k, d)
        metrics = {name: Metric.from_dict(value) for name, value in _json(get("metrics")).items()}
        return cls(
            run_id=str(get("run_id")),
            kind=str(get("kind")),
            protocol=str(get("protocol")),
            model=str(get("model")),
            fingerprint=_text(get("fingerprint")),
            train_dataset=_text(get("train_dataset")),
            eval_dataset=_text(get("eval_dataset")),
            split=_text(get("split")),
            status=str(get("status") or "done"),
            config=_json(get("config")),
            metrics=metrics,
        )

    def metric(self, name: str) -> Metric:
        return self.metrics.get(name) or undefined("not computed for this run")

    @property
    def threshold(self) -> float:
        """The decision threshold the run's stored predictions were made at."""
        value = self.config.get("threshold", {})
        value = value.get("value") if isinstance(value, dict) else value
        return float(value) if isinstance(value, int | float) else DEFAULT_THRESHOLD

    @property
    def threshold_rule(self) -> str:
        value = self.config.get("threshold")
        return str(value.get("rule", "")) if isinstance(value, dict) else ""

    @property
    def auc_score_kind(self) -> str:
        """What the run's AUC is computed on: p_positive, or the study's top1_probability."""
        return str(self.config.get("score") or "p_positive")

    @property
    def regime(self) -> str:
        return REGIMES.get(self.kind, self.kind)

    @property
    def protocol_known(self) -> bool:
        return self.protocol in PROTOCOLS

    def model_name(self) -> str:
        """The run's model for people: what it started from and, when fine-tuned, on what."""
        if self.kind == "finetune":
            return model_name(self.model, self.train_dataset, self.protocol)
        if self.kind == "transfer":
            parent = self.config.get("parent_spec") or self.model
            return model_name(parent, self.config.get("train_dataset") or self.train_dataset, self.protocol)
        return model_name(self.model)
