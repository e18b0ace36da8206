"""`FinetuneConfig`: every fine-tuning setting (each CLI flag is one field) and the study's defaults.

A field left at None takes the study's value for the model family and dataset (audit section 1, Table 3):
Adam, lr 1e-5, weight decay 0.1 (a dataset that stands for UCSD) / 1e-5 (other) for CLIP and 1e-2 / 1e-4 for MedCLIP,
gradient clipping at 1.0 for MedCLIP only, patience 20 (the study's MedCLIP code used 5: `paper` keeps it).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace

from pedclip.data.roles import stands_for
from pedclip.errors import PedclipError
from pedclip.eval.protocols import PROTOCOL_LOSS, PROTOCOLS
from pedclip.train.losses import LOSSES

TEXTS = ("prompts", "reports")
THRESHOLD_SOURCES = ("source", "target")
OPTIMIZERS = ("adam", "adamw")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "fp16-master")
DEFAULT_TEMPLATE = "a photo of {} lungs."
CLASS_WORDS = {"sound": ("normal", "pneumonia"), "paper": ("normal", "covid")}  # paper: the study's "covid"

TRAINABLE_PATTERN = re.compile(r"^(all|projection|last-(\d+))$")


@dataclass(frozen=True)
class FinetuneConfig:
    """One fine-tuning run. None means "the study's default for this family and dataset"."""

    model: str  # spec of the model to start from
    dataset: str  # the dataset to train on (its train split) and select on (its val split)
    weights: str | None = None  # a weights file/folder for the spec (--weights)
    # clip (the study's hard targets) | semantic (MedCLIP's loss: targets softmax(label_sim), audit section 3)
    # | supcon (uniform targets over same-label pairs); None = per protocol: the study's clip for `paper`,
    # semantic for `sound` (same-class captions are not negatives: audit section 2, item 9)
    loss: str | None = None
    text: str = "prompts"  # prompts: each image's class prompt | reports: each case's report
    trainable: str = "all"  # all | last-N (last N blocks of each tower + heads) | projection
    epochs: int = 50
    patience: int | None = None  # epochs without improvement before stopping; None = study default
    batch_size: int = 256
    micro_batch: int | None = None  # images per forward (exact gradient accumulation); None = whole batch
    lr: float = 1e-5
    weight_decay: float | None = None  # None = study default per family and dataset
    optimizer: str = "adam"  # adam (the study's, coupled L2) | adamw
    grad_clip: float | None = None  # max gradient norm; None = study default (1.0 MedCLIP, off CLIP); 0 = off
    protocol: str = "sound"  # sound: select on val AUROC | paper: select on val loss, "covid" prompts
    prompt_template: str = DEFAULT_TEMPLATE
    class_words: tuple[str, str] | None = None  # (negative, positive) words; None = per protocol
    device: str | None = None  # None = cuda when available, else cpu
    # auto: `paper` CLIP fp16-master (the study's), else bf16 autocast on CUDA, fp32 on CPU | fp32 | bf16 |
    # fp16 (autocast + loss scaling, fp32 masters) | fp16-master (fp16 forward on CUDA, fp32 on CPU; Adam steps
    # in fp32, weights rounded back to fp16 after each step as the study's CLIP code did, so updates below half
    # an fp16 ulp vanish)
    precision: str = "auto"
    seed: int = 0
    train_split: str = "train"
    val_split: str = "val"
    reembed: tuple[str, ...] = ()  # datasets to embed with the result besides the training dataset
    embed: bool = True  # embed the training and --reembed datasets with the fine-tuned model
    embed_workers: int | None = None  # decoders for that embedding (EmbedConfig.workers; 0: none)
    allow_leakage: bool = False  # sound: train even when the dataset's splits leak patients or images
    # transfer: whose validation split gives the target's Youden threshold: source (strictly zero-shot on the
    # target) | target (the target's own validation split)
    threshold_from: str = "source"
    trust_torchscript: bool = False  # load --weights even if it is a TorchScript file that is not OpenAI's

    def __post_init__(self) -> None:
        if self.loss is not None:
            _check_choice("loss", self.loss, LOSSES)
        _check_choice("text", self.text, TEXTS)
        _check_choice("protocol", self.protocol, PROTOCOLS)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("threshold-from", self.threshold_from, THRESHOLD_SOURCES)
        if not TRAINABLE_PATTERN.match(self.trainable) or self.trainable == "last-0":
            raise PedclipError(
                f"--trainable {self.trainable!r} is not valid; use all, projection or last-N (N >= 1)"
            )
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise PedclipError(
                    f"--{name.replace('_', '-')} must be at least 1; got {getattr(self, name)}"
                )
        if self.batch_size < 2:
            raise PedclipError(
                f"--batch-size must be at least 2 for a contrastive loss; got {self.batch_size}"
            )
        if self.micro_batch is not None and self.micro_batch < 1:
            raise PedclipError(f"--micro-batch must be at least 1; got {self.micro_batch}")
        if self.patience is not None and self.patience < 1:
            raise PedclipError(f"--patience must be at least 1; got {self.patience}")
        if self.lr <= 0:
            raise PedclipError(f"--lr must be positive; got {self.lr}")
        if "{}" not in self.prompt_template:
            raise PedclipError(f"prompt template {self.prompt_template!r} needs a {{}} for the class word")

    @property
    def last_n(self) -> int | None:
        match = TRAINABLE_PATTERN.match(self.trainable)
        return int(match.group(2)) if match and match.group(2) else None

    @property
    def words(self) -> tuple[str, str]:
        return tuple(self.class_words) if self.class_words else CLASS_WORDS[self.protocol]

    @property
    def prompts(self) -> tuple[str, str]:
        """(negative, positive) class prompts, e.g. ("a photo of normal lungs.", "a photo of pneumonia lungs.")."""
        return tuple(self.prompt_template.format(w) for w in self.words)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["reembed"] = list(self.reembed)
        out["class_words"] = list(self.words)
        return out


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise PedclipError(f"--{name} {value!r} is not valid; expected one of: {', '.join(choices)}")


def is_medclip_family(family: str, arch: dict | None = None) -> bool:
    """MedCLIP-like (Swin/ResNet + BERT) rather than CLIP-like, from the encoder's family and architecture."""
    return "medclip" in family.lower() or "medclip" in str(arch or {}).lower()


def is_ucsd_like(dataset: dict) -> bool:
    """Whether the dataset stands for the study's UCSD (Kermany) set: its recorded role, never its name."""
    return stands_for(dataset) == "ucsd"


def study_defaults(medclip: bool, ucsd_like: bool, protocol: str) -> dict:
    """The study's weight decay, gradient clipping and patience for a family and dataset (audit section 1)."""
    if medclip:
        return {
            "weight_decay": 1e-2 if ucsd_like else 1e-4,
            "grad_clip": 1.0,
            "patience": 5 if protocol == "paper" else 20,
        }
    return {"weight_decay": 0.1 if ucsd_like else 1e-5, "grad_clip": 0.0, "patience": 20}


def auto_precision(protocol: str, medclip: bool, device: str) -> str:
    """`paper` CLIP: the study's fp16 master weights (any device; the forward runs in fp16 on CUDA only, see
    `step.autocast`); otherwise bf16 autocast on CUDA and fp32 on CPU (where bf16 is emulated)."""
    if protocol == "paper" and not medclip:
        return "fp16-master"
    return "bf16" if device.startswith("cuda") else "fp32"


def resolve(config: FinetuneConfig, medclip: bool, ucsd_like: bool, cuda_available: bool) -> FinetuneConfig:
    """The config with every None filled: study defaults, device and precision."""
    defaults = study_defaults(medclip, ucsd_like, config.protocol)
    filled = {k: v for k, v in defaults.items() if getattr(config, k) is None}
    device = config.device or ("cuda" if cuda_available else "cpu")
    precision = config.precision
    if precision == "auto":
        precision = auto_precision(config.protocol, medclip, device)
    loss = config.loss or PROTOCOL_LOSS[config.protocol]
    return replace(config, **filled, loss=loss, device=device, precision=precision, class_words=config.words)
