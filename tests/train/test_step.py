"""Training steps on the tiny model: losses go down, exact gradient accumulation, trainable subsets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pedclip.train.data import batch_indices, load_split
from pedclip.train.step import StepSettings, accumulate_gradients, optimizer_step, set_mode
from pedclip.train.trainable import select_trainable
from tests.train.conftest import fresh_tiny

PROMPTS = ("a photo of normal lungs.", "a photo of pneumonia lungs.")


@pytest.fixture
def train_split(store, site, tiny):
    return load_split(store, site, "train", tiny.preprocess_config, "prompts", PROMPTS)


@pytest.fixture(scope="module")
def loss_curves(tmp_path_factory):
    """Ten full-batch Adam steps of each loss on 16 images (8 per class, one caption per class)."""
    from pedclip.store import Store
    from tests.train.conftest import add_dataset

    root = tmp_path_factory.mktemp("curves")
    store = Store.open(root / "home")
    add_dataset(store, root / "site", "site", seed=1)
    curves = {}
    for loss in ("clip", "semantic", "supcon"):
        encoder = fresh_tiny()
        data = load_split(store, "site", "train", encoder.preprocess_config, "prompts", PROMPTS)
        settings = StepSettings(loss=loss, device="cpu", precision="fp32")
        params = [p for _, p in select_trainable(encoder, "all")]
        optimizer = torch.optim.Adam(params, lr=3e-4)
        set_mode(encoder, True)
        curve = []
        for _ in range(10):
            curve.append(accumulate_gradients(encoder, data.pixels, data.texts, data.labels, settings))
            optimizer_step(optimizer, params, encoder, 0.0)
        curves[loss] = curve
    return curves


# MedCLIP's semantic loss is a soft cross-entropy whose floor is its targets' entropy: with 8 images per
# class, targets e/(8e+8) on same-label pairs and 1/(8e+8) elsewhere give log(8e+8) - e/(e+1) ~ 2.66
SEMANTIC_FLOOR = math.log(8 * math.e + 8) - math.e / (math.e + 1)


@pytest.mark.parametrize("loss", ["clip", "semantic", "supcon"])
def test_a_few_steps_lower_the_loss(loss_curves, loss):
    curve = loss_curves[loss]
    if loss == "semantic":  # a shallow landscape near its floor: lower, not monotone
        assert SEMANTIC_FLOOR < curve[-1] < curve[0] - 0.15 * (curve[0] - SEMANTIC_FLOOR)
        return
    assert curve[-1] < curve[0] - 0.2
    assert all(b < a for a, b in zip(curve[3:], curve[4:], strict=False))  # steadily, once under way


def test_clip_loss_stalls_at_log_same_class_while_supcon_goes_to_zero(loss_curves):
    # 8 images per class share one caption: the hard loss cannot go below log(8) (false negatives)
    assert loss_curves["clip"][-1] > math.log(8) - 1e-3
    assert loss_curves["supcon"][-1] < 0.1


def gradients(encoder, data, micro_batch):
    settings = StepSettings(loss="clip", device="cpu", precision="fp32", micro_batch=micro_batch)
    for p in encoder.modules["model"].parameters():
        p.grad = None
    loss = accumulate_gradients(encoder, data.pixels, data.texts, data.labels, settings)
    return loss, {
        n: p.grad.clone() for n, p in encoder.modules["model"].named_parameters() if p.grad is not None
    }


def test_micro_batches_give_the_whole_batch_gradient(train_split):
    encoder = fresh_tiny()
    set_mode(encoder, True)
    full_loss, full = gradients(encoder, train_split, None)
    micro_loss, micro = gradients(encoder, train_split, 5)  # uneven chunks: 5 + 5 + 5 + 1
    assert micro_loss == pytest.approx(full_loss, rel=1e-6)
    assert full.keys() == micro.keys() and len(full) > 10
    for name in full:
        torch.testing.assert_close(micro[name], full[name], rtol=1e-4, atol=1e-6, msg=name)


def changed_parameters(mode: str, data) -> set[str]:
    encoder = fresh_tiny()
    before = {n: p.detach().clone() for n, p in encoder.modules["model"].named_parameters()}
    params = [p for _, p in select_trainable(encoder, mode, 1 if mode.startswith("last") else None)]
    optimizer = torch.optim.Adam(params, lr=1e-2)
    settings = StepSettings(loss="clip", device="cpu", precision="fp32")
    accumulate_gradients(encoder, data.pixels, data.texts, data.labels, settings)
    optimizer_step(optimizer, params, encoder, 0.0)
    return {n for n, p in encoder.modules["model"].named_parameters() if not torch.equal(p, before[n])}


def test_trainable_projection_updates_only_projections(train_split):
    assert changed_parameters("projection", train_split) == {"visual.proj", "text_projection", "logit_scale"}


def test_trainable_last_block_leaves_earlier_blocks_and_stems_alone(train_split):
    changed = changed_parameters("last-1", train_split)
    assert any(n.startswith("visual.transformer.resblocks.1.") for n in changed)
    assert any(n.startswith("transformer.resblocks.1.") for n in changed)
    assert {"visual.proj", "text_projection", "visual.ln_post.weight", "ln_final.weight"} <= changed
    frozen = ("visual.transformer.resblocks.0.", "transformer.resblocks.0.", "visual.conv1", "token_embedding",
              "positional_embedding", "visual.class_embedding", "visual.ln_pre")  # fmt: skip
    assert not [n for n in changed if n.startswith(frozen)]


def test_batches_cover_every_item_once_and_never_leave_a_single_item():
    batches = batch_indices(17, 8, seed=0, epoch=3)
    assert sorted(np.concatenate(batches).tolist()) == list(range(17))
    assert [len(b) for b in batches] == [8, 9]
    assert [b.tolist() for b in batch_indices(17, 8, 0, 3)] == [b.tolist() for b in batches]
    assert [b.tolist() for b in batch_indices(17, 8, 0, 4)] != [b.tolist() for b in batches]


def tiny_medclip():
    """A MedCLIP-architecture encoder (Swin + BERT, the released module tree) small enough for a test."""
    from transformers import BertConfig, SwinConfig

    from pedclip.models.base import Encoder, PreprocessConfig
    from pedclip.models.medclip_arch import MedCLIP, Text, VisionViT

    swin = SwinConfig(
        image_size=32, patch_size=4, embed_dim=8, depths=[1, 2], num_heads=[1, 2], window_size=4
    )
    bert = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=16)  # fmt: skip
    model = MedCLIP(VisionViT(swin, 8), Text(bert, 8))
    return Encoder(spec="test:medclip", family="medclip", image_tower=model.vision_model,
                   text_tower=model.text_model, tokenize=lambda texts: {}, logit_scale_param=model.logit_scale,
                   preprocess_config=PreprocessConfig(size=32), weights_id="test", modules={"model": model})  # fmt: skip


def test_trainable_last_block_on_the_medclip_architecture():
    names = {n for n, _ in select_trainable(tiny_medclip(), "last-1", 1)}
    swin, bert = "model.vision_model.model.", "model.text_model.model."
    assert any(n.startswith(swin + "encoder.layers.1.blocks.1.") for n in names)  # Swin's last block
    assert not any(n.startswith(swin + "encoder.layers.1.blocks.0.") for n in names)
    assert not any(n.startswith((swin + "encoder.layers.0.", swin + "embeddings.")) for n in names)
    assert any(n.startswith(bert + "encoder.layer.2.") for n in names)  # BERT's last layer
    assert not any(n.startswith((bert + "encoder.layer.1.", bert + "embeddings.")) for n in names)
    assert {"model.vision_model.projection_head.weight", "model.text_model.projection_head.weight",
            swin + "layernorm.weight", "model.logit_scale"} <= names  # fmt: skip
    projection = {n for n, _ in select_trainable(tiny_medclip(), "projection")}
    assert projection == {"model.vision_model.projection_head.weight", "model.text_model.projection_head.weight",
                          "model.logit_scale"}  # fmt: skip


@pytest.mark.parametrize("precision", ["fp32", "fp16-master"])
def test_fp16_master_weights_round_away_tiny_updates(train_split, precision):
    """One Adam step moves every weight by ~lr = 1e-5 (its first step is lr * sign(grad)); with the study's
    fp16 masters that is below half an fp16 ulp for |w| >= 2^-4 (ulp 2^-14), so those weights stay put."""
    from pedclip.train.config import FinetuneConfig
    from pedclip.train.finetune import make_optimizer
    from pedclip.train.trainable import round_to_fp16, study_fp16_parameters

    encoder = fresh_tiny()
    params = [p for _, p in select_trainable(encoder, "all")]
    half = study_fp16_parameters(encoder)
    masters = half if precision == "fp16-master" else []
    round_to_fp16(masters)
    round_to_fp16(half)  # same starting point for both precisions
    before = [p.detach().clone() for p in half]
    config = FinetuneConfig(model="m", dataset="d", lr=1e-5, weight_decay=0.0)
    optimizer = make_optimizer(config, params, masters)
    settings = StepSettings(loss="clip", device="cpu", precision=precision)
    set_mode(encoder, True)
    accumulate_gradients(encoder, train_split.pixels, train_split.texts, train_split.labels, settings)
    optimizer_step(optimizer, params, encoder, 0.0)
    large = torch.cat([(b.abs() >= 2**-4).flatten() for b in before])
    moved = torch.cat([(p.detach() != b).flatten() for p, b in zip(half, before, strict=True)])
    layer_norms = [m.weight for m in encoder.modules["model"].modules() if isinstance(m, torch.nn.LayerNorm)]
    assert large.sum() > 100 and not {id(w) for w in layer_norms} & {id(p) for p in half}
    if precision == "fp16-master":
        assert not moved[large].any()  # every large weight's update rounded away
        assert all(torch.equal(p, p.half().float()) for p in half)  # fp16 values throughout
    else:
        assert moved[large].float().mean() > 0.9  # fp32 masters keep them


@pytest.mark.parametrize("kind", ["adam", "adamw"])
def test_the_optimizer_is_fused_and_steps_as_torchs_per_tensor_reference(kind: str) -> None:
    from pedclip.train.config import FinetuneConfig
    from pedclip.train.finetune import make_optimizer

    generator = torch.Generator().manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in [(64, 32), (32,)]]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    start = [p.detach().clone() for p in ours]
    config = FinetuneConfig(model="m", dataset="d", lr=1e-3, weight_decay=0.1, optimizer=kind)
    optimizer = make_optimizer(config, ours)
    reference = (torch.optim.Adam if kind == "adam" else torch.optim.AdamW)(
        theirs, lr=1e-3, weight_decay=0.1, foreach=False
    )
    assert optimizer.defaults["fused"] and type(optimizer) is type(reference)
    for _ in range(20):
        for a, b in zip(ours, theirs, strict=True):
            a.grad = torch.randn(a.shape, generator=generator)
            b.grad = a.grad.clone()
        optimizer.step()
        reference.step()
    for a, b, before in zip(ours, theirs, start, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
        assert (a - before).abs().mean() > 1e-3  # 20 steps of ~lr each: the weights moved
