"""End to end on the tiny model: fine-tune, save, register, re-embed; early stopping; seeds; Ctrl-C."""

from __future__ import annotations

import numpy as np
import torch

from pedclip.embed.pipeline import EmbedConfig, embed_dataset
from pedclip.models import load_encoder
from pedclip.store.embeddings import case_vectors, models_frame
from pedclip.store.runs import epochs_frame, get_run, predictions_frame
from pedclip.train.config import FinetuneConfig
from pedclip.train.data import load_split
from pedclip.train.finetune import finetune, save_child
from pedclip.train.step import StepSettings, accumulate_gradients, optimizer_step
from pedclip.train.trainable import select_trainable
from tests.train.conftest import fresh_tiny

TINY = "openclip:pedclip-tiny"


def config(**overrides) -> FinetuneConfig:
    fields = {
        "model": TINY,
        "dataset": "site-a",
        "epochs": 2,
        "batch_size": 8,
        "lr": 3e-4,
        "device": "cpu",
        "embed_workers": 0,
    }
    return FinetuneConfig(**{**fields, **overrides})


def test_finetune_registers_a_child_and_embeds_with_it_leaving_the_parent_alone(store, site):
    parent = load_encoder(TINY)
    embed_dataset(store, parent, site, EmbedConfig(workers=0))
    parent_frame, parent_before = case_vectors(store, parent.fingerprint, site)

    result = finetune(store, config(reembed=(site,)))

    assert result.parent_fingerprint == parent.fingerprint != result.fingerprint
    assert result.checkpoint == (store.paths.checkpoints / result.run_id).resolve()
    models = models_frame(store).set_index("fingerprint")
    assert models.loc[result.fingerprint, "parent_fingerprint"] == parent.fingerprint
    child_frame, child_vectors = case_vectors(store, result.fingerprint, site)
    assert len(child_frame) == len(parent_frame) == 32  # every case re-embedded with the child
    _, parent_after = case_vectors(store, parent.fingerprint, site)
    np.testing.assert_array_equal(parent_after, parent_before)
    assert not np.allclose(child_vectors, parent_before, atol=1e-3)

    run = get_run(store, result.run_id)
    assert (run["kind"], run["status"], run["train_dataset"], run["split"]) == (
        "finetune",
        "done",
        site,
        "test",
    )
    assert run["config"]["parent_fingerprint"] == parent.fingerprint
    assert run["config"]["resolved"]["weight_decay"] == 1e-5  # CLIP family, not a UCSD-like dataset
    assert "auroc" in run["metrics"] and len(predictions_frame(store, result.run_id)) == 8
    curves = epochs_frame(store, result.run_id)
    assert curves["epoch"].tolist() == [1, 2] and {"train_loss", "val_loss", "val_auroc"} <= set(curves)


def test_checkpoint_round_trip_gives_identical_embeddings(store, site):
    encoder = fresh_tiny()
    data = load_split(store, site, "val", encoder.preprocess_config, "prompts", config().prompts)
    params = [p for _, p in select_trainable(encoder, "all")]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    settings = StepSettings(loss="clip", device="cpu", precision="fp32")
    accumulate_gradients(encoder, data.pixels, data.texts, data.labels, settings)
    optimizer_step(optimizer, params, encoder, 0.0)
    encoder.modules["model"].eval()
    pixels = encoder.normalize(list(data.pixels))
    parent = load_encoder(TINY).fingerprint

    child = save_child(store, encoder, "roundtrip", config(), parent)

    np.testing.assert_array_equal(child.encode_images(pixels), encoder.encode_images(pixels))
    np.testing.assert_array_equal(child.encode_texts(["a b c"]), encoder.encode_texts(["a b c"]))
    assert child.logit_scale == encoder.logit_scale
    assert child.fingerprint != parent and child.parent_fingerprint == parent


def test_early_stopping_stops_after_patience_epochs_without_improvement(store, site):
    # an lr too small to move the val AUROC: epoch 1 stays best, and two more epochs end the run
    result = finetune(store, config(epochs=10, patience=2, lr=1e-12, embed=False))
    assert result.stopped == "patience"
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert result.best["epoch"] == 1


def test_same_seed_same_weights_and_an_interrupt_keeps_the_best_epoch(store, site):
    one = finetune(store, config(epochs=1, embed=False))
    again = finetune(store, config(epochs=1, embed=False))
    assert [r["train_loss"] for r in one.history] == [r["train_loss"] for r in again.history]
    assert one.fingerprint == again.fingerprint  # same safetensors bytes

    def interrupt_in_epoch_two(event: dict) -> None:
        if event["event"] == "step" and event["epoch"] == 2:
            raise KeyboardInterrupt

    stopped = finetune(store, config(epochs=5, embed=False), progress=interrupt_in_epoch_two)
    assert stopped.stopped == "interrupted" and stopped.best["epoch"] == 1
    assert stopped.fingerprint == one.fingerprint  # epoch 1's weights, not the step taken after it
    assert get_run(store, stopped.run_id)["status"] == "interrupted"


def test_semantic_loss_trains_on_reports(store, site):
    result = finetune(store, config(loss="semantic", text="reports", epochs=1, seed=1, embed=False))
    first = finetune(store, config(epochs=1, embed=False))
    assert result.fingerprint != first.fingerprint  # another loss, text and seed: other weights
    assert result.history[0]["train_loss"] >= 0.0 and np.isfinite(result.history[0]["val_loss"])


def test_paper_protocol_keeps_the_lowest_validation_loss_and_uses_covid_prompts(store, site):
    result = finetune(store, config(protocol="paper", epochs=3, patience=3))
    losses = [r["val_loss"] for r in result.history]
    assert result.best["epoch"] == 1 + losses.index(min(losses))
    run = get_run(store, result.run_id)
    assert run["protocol"] == "paper" and run["split"] == "test"  # Table 3: the test split only
    assert run["config"]["evaluation"]["prompts"]["classes"]["pneumonia"] == ["a photo of covid lungs."]


def test_paper_transfer_pools_every_split_of_the_target_as_the_study_did(store, site, tmp_path):
    from pedclip.train.transfer import transfer
    from tests.train.conftest import add_dataset

    add_dataset(store, tmp_path / "site-b", "site-b", seed=2)
    result = transfer(store, config(protocol="paper", epochs=1), "site-b")
    run = get_run(store, result.runs[0]["run_id"])
    assert (run["kind"], run["protocol"], run["split"]) == ("transfer", "paper", "all")
    assert run["config"]["score"] == "top1_probability"  # the study's CLIP AUC, reproduced in `paper` only
    assert len(predictions_frame(store, run["run_id"])) == 32


def test_sound_finetune_refuses_a_dataset_whose_splits_leak(store, tmp_path):
    from dataclasses import replace

    import pytest

    from pedclip.errors import PedclipError
    from pedclip.store.cases import replace_cases
    from tests.train.conftest import add_dataset

    rows = add_dataset(store, tmp_path / "leaky", "leaky", seed=2)
    test_row = next(i for i, r in enumerate(rows) if r.split == "test")
    rows[test_row] = replace(rows[test_row], image_sha256=rows[0].image_sha256)  # a training film in test
    replace_cases(store, "leaky", rows)
    with pytest.raises(
        PedclipError, match=r"'leaky' leaks across splits: 0 shared patient\(s\), 1 identical"
    ):
        finetune(store, config(dataset="leaky", epochs=1, embed=False))
    assert finetune(store, config(dataset="leaky", epochs=1, embed=False, protocol="paper")).history  # pooled


def test_a_cnn_tower_trains_channels_last_and_ends_in_the_standard_layout(tiny_medclip_resnet) -> None:
    from pedclip.train.finetune import channels_last_cnn

    encoder = load_encoder("medclip:resnet", weights=tiny_medclip_resnet.folder)
    spatial = [m.weight for m in encoder.image_tower.modules() if isinstance(m, torch.nn.Conv2d)]
    spatial = [w for w in spatial if w.shape[-1] > 1]  # a 1x1 kernel is in both layouts at once
    size = encoder.preprocess_config.size
    pixels = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 1, size, size)).astype(np.float32))
    before = encoder.encode_images(pixels)
    with channels_last_cnn(encoder, "cpu"):
        assert spatial and all(w.is_contiguous(memory_format=torch.channels_last) for w in spatial)
        assert not any(w.is_contiguous() for w in spatial)
        inside = encoder.encode_images(pixels)
    kept = [m.weight for m in encoder.image_tower.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(
        w is k for w, k in zip(spatial, [k for k in kept if k.shape[-1] > 1], strict=True)
    )  # optimizer's
    assert all(p.is_contiguous() for p in encoder.image_tower.parameters())  # safetensors needs this
    np.testing.assert_allclose(inside, before, atol=1e-5)
    np.testing.assert_array_equal(encoder.encode_images(pixels), before)


def test_a_vit_tower_keeps_its_layout(tiny) -> None:
    from pedclip.train.finetune import channels_last_cnn

    with channels_last_cnn(tiny, "cpu"):
        assert all(p.is_contiguous() for p in tiny.image_tower.parameters())
