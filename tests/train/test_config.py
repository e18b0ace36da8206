"""Study defaults per family and dataset, and flag checking."""

from __future__ import annotations

import pytest

from pedclip.errors import PedclipError
from pedclip.train.config import FinetuneConfig, is_medclip_family, is_ucsd_like, resolve


@pytest.mark.parametrize(
    ("medclip", "ucsd", "protocol", "expected"),
    [
        (False, True, "sound", {"weight_decay": 0.1, "grad_clip": 0.0, "patience": 20}),
        (False, False, "paper", {"weight_decay": 1e-5, "grad_clip": 0.0, "patience": 20}),
        (True, True, "sound", {"weight_decay": 1e-2, "grad_clip": 1.0, "patience": 20}),
        (True, False, "paper", {"weight_decay": 1e-4, "grad_clip": 1.0, "patience": 5}),  # the study's code
    ],
)
def test_study_defaults_fill_only_what_was_not_given(medclip, ucsd, protocol, expected):
    config = FinetuneConfig(model="m", dataset="d", protocol=protocol)
    resolved = resolve(config, medclip=medclip, ucsd_like=ucsd, cuda_available=False)
    assert {k: getattr(resolved, k) for k in expected} == expected
    assert (resolved.lr, resolved.batch_size, resolved.epochs, resolved.optimizer) == (1e-5, 256, 50, "adam")
    paper_clip = protocol == "paper" and not medclip  # the study's fp16 master weights, on any device
    assert (resolved.device, resolved.precision) == ("cpu", "fp16-master" if paper_clip else "fp32")
    given = resolve(FinetuneConfig(model="m", dataset="d", weight_decay=0.5, patience=3, grad_clip=0.0),
                    medclip=medclip, ucsd_like=ucsd, cuda_available=True)  # fmt: skip
    assert (given.weight_decay, given.patience, given.grad_clip) == (0.5, 3, 0.0)
    assert (given.device, given.precision) == ("cuda", "bf16")


def test_loss_follows_the_protocol_unless_given():
    def loss(**kw):
        return resolve(FinetuneConfig(model="m", dataset="d", **kw), False, True, False).loss

    assert loss(protocol="paper") == "clip"  # the study's: same-class captions as negatives
    assert loss(protocol="sound") == "semantic"  # the audit's fix
    assert (
        loss(protocol="sound", loss="clip") == "clip"
        and loss(protocol="paper", loss="semantic") == "semantic"
    )
    with pytest.raises(PedclipError, match="--loss"):
        FinetuneConfig(model="m", dataset="d", loss="hinge")


def test_prompts_follow_the_protocol():
    assert FinetuneConfig(model="m", dataset="d").prompts == (
        "a photo of normal lungs.",
        "a photo of pneumonia lungs.",
    )
    assert FinetuneConfig(model="m", dataset="d", protocol="paper").prompts[1] == "a photo of covid lungs."


def test_family_and_dataset_detection():
    assert is_medclip_family("medclip") and not is_medclip_family("openclip", {"open_clip": "ViT-B-32"})
    assert not is_ucsd_like(
        {"name": "ucsd", "source_kind": "kermany", "attributes": {}}
    )  # names do not count
    assert is_ucsd_like({"name": "site1", "source_kind": "synth", "attributes": {"stands_for": "ucsd"}})
    assert not is_ucsd_like({"name": "ucsd", "source_kind": "folders", "attributes": {"stands_for": "ori"}})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("loss", "focal", "--loss 'focal'"), ("trainable", "last-0", "--trainable"), ("batch_size", 1, "--batch-size"),
     ("text", "captions", "--text"), ("protocol", "best", "--protocol"), ("lr", 0.0, "--lr")],
)  # fmt: skip
def test_bad_values_name_the_flag(field, value, message):
    with pytest.raises(PedclipError, match=message):
        FinetuneConfig(model="m", dataset="d", **{field: value})


def test_last_n_is_parsed():
    assert FinetuneConfig(model="m", dataset="d", trainable="last-3").last_n == 3


def test_checkpoint_choice_per_protocol():
    from pedclip.train.loop import is_better

    best = {"val_loss": 2.0, "val_auroc": 0.9}
    assert is_better({"val_loss": 1.5, "val_auroc": 0.8}, best, "paper")
    assert not is_better({"val_loss": 1.5, "val_auroc": 0.8}, best, "sound")
    assert is_better({"val_loss": 2.5, "val_auroc": 0.95}, best, "sound")
    assert is_better({"val_loss": 1.9, "val_auroc": 0.9}, best, "sound")  # equal AUROC: the loss decides
    assert not is_better({"val_loss": 2.0 - 1e-6, "val_auroc": 0.9}, best, "sound")  # noise is no improvement
