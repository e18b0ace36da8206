"""The contrastive losses against naive formulas, and what the two do with repeated labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pedclip.train.losses import clip_loss, contrastive_logits, label_similarity, semantic_loss, supcon_loss


def naive_ce(logits: np.ndarray, target: np.ndarray) -> float:
    """Mean over rows of -sum_j target_ij * log softmax(logits_i)_j, one row at a time."""
    total = 0.0
    for row, t in zip(logits, target, strict=True):
        log_p = row - row.max() - math.log(np.exp(row - row.max()).sum())
        total += -(t * log_p).sum()
    return total / len(logits)


def naive_entropy(target: np.ndarray) -> float:
    return float(np.mean([-sum(p * math.log(p) for p in row if p > 0) for row in target]))


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(6, 6))
    labels = np.array([0, 1, 1, 0, 1, 1])
    return logits, labels


def test_clip_loss_is_symmetric_cross_entropy_with_the_diagonal_as_target(batch):
    logits, _ = batch
    eye = np.eye(len(logits))
    expected = 0.5 * (naive_ce(logits, eye) + naive_ce(logits.T, eye))
    assert float(clip_loss(torch.tensor(logits))) == pytest.approx(expected, rel=1e-9)


def test_clip_loss_matches_open_clip(batch):
    from open_clip.loss import ClipLoss

    rng = np.random.default_rng(1)
    img = torch.tensor(rng.normal(size=(6, 8)), dtype=torch.float32)
    txt = torch.tensor(rng.normal(size=(6, 8)), dtype=torch.float32)
    scale = torch.tensor(math.log(20.0))
    ours = clip_loss(contrastive_logits(img, txt, scale))
    theirs = ClipLoss()(
        torch.nn.functional.normalize(img, dim=-1), torch.nn.functional.normalize(txt, dim=-1), 20.0
    )
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5)


def medclip_soft_clip_loss(
    logits_per_img: np.ndarray, img_labels: np.ndarray, text_labels: np.ndarray
) -> float:
    """A hand-written copy of MedCLIP's `ImageTextContrastiveLoss` with labels (mc:losses.py):
    label_sim = img_labels @ text_labels.T; _soft_clip_loss = mean of _soft_xent_loss both ways, where
    _soft_xent_loss(input, target) = -(target * log_softmax(input, 1)).sum() / input.shape[0]."""

    def softmax(x):
        e = np.exp(x - x.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def soft_xent(inp, target):
        logprobs = np.log(softmax(inp))
        return -(target * logprobs).sum() / inp.shape[0]

    label_sim = img_labels @ text_labels.T
    image_loss = soft_xent(logits_per_img, softmax(label_sim))
    caption_loss = soft_xent(logits_per_img.T, softmax(label_sim.T))
    return (image_loss + caption_loss) / 2


def test_semantic_loss_is_medclips_formula(batch):
    logits, labels = batch
    onehot = np.eye(2)[labels]  # MedCLIP's label vectors, here the two classes one-hot
    expected = medclip_soft_clip_loss(logits, onehot, onehot)
    got = semantic_loss(torch.tensor(logits), torch.tensor(labels), torch.tensor(labels))
    assert float(got) == pytest.approx(expected, rel=1e-9)


def test_semantic_targets_put_e_over_e_plus_1_on_the_same_class():
    """Read the targets back from the gradient at zero logits, (softmax - targets) / B: in a balanced
    batch each row keeps e/(e+1) of its mass on the same class, and logits = label similarity (a gap of
    1/tau) is the loss's optimum."""
    labels = torch.tensor([0, 1] * 4)
    same = labels[:, None] == labels[None, :]
    logits = torch.zeros(8, 8, dtype=torch.float64, requires_grad=True)
    semantic_loss(logits, labels, labels).backward()
    targets = 1.0 / 8 - 8 * logits.grad
    assert float(targets[same].reshape(8, 4).sum(1).min()) == pytest.approx(math.e / (math.e + 1), rel=1e-9)
    optimum = same.to(torch.float64).requires_grad_(True)
    semantic_loss(optimum, labels, labels).backward()
    assert float(optimum.grad.abs().max()) < 1e-12


def test_supcon_loss_is_uniform_same_label_soft_cross_entropy_minus_entropy(batch):
    logits, labels = batch
    same = (labels[:, None] == labels[None, :]).astype(float)  # onehot @ onehot.T
    image_t = same / same.sum(1, keepdims=True)
    text_t = same.T / same.T.sum(1, keepdims=True)
    expected = 0.5 * (
        naive_ce(logits, image_t)
        - naive_entropy(image_t)
        + naive_ce(logits.T, text_t)
        - naive_entropy(text_t)
    )
    got = supcon_loss(torch.tensor(logits), torch.tensor(labels), torch.tensor(labels))
    assert float(got) == pytest.approx(expected, rel=1e-9)


def test_label_similarity_is_onehot_product():
    sim = label_similarity(torch.tensor([0, 1, 1]), torch.tensor([1, 0]))
    assert sim.tolist() == [[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]


def perfect_class_features(labels: np.ndarray, dim: int = 4) -> torch.Tensor:
    """Every item's feature is its class's unit vector: same-class images and captions are identical."""
    return torch.eye(dim)[torch.tensor(labels)]


def test_repeated_labels_clip_loss_has_a_floor_supcon_reaches_zero():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])  # 4 items per class
    features = perfect_class_features(labels)
    logits = contrastive_logits(features, features, torch.tensor(math.log(100.0)))
    hard = float(clip_loss(logits))
    soft = float(supcon_loss(logits, torch.tensor(labels), torch.tensor(labels)))
    assert hard == pytest.approx(math.log(4), abs=1e-3)  # same-class captions count as negatives
    assert soft == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("soft_loss", [semantic_loss, supcon_loss])
def test_soft_losses_pull_same_label_pairs_together_clip_pushes_them_apart(soft_loss):
    rng = np.random.default_rng(3)
    labels = torch.tensor([0, 0, 1, 1])
    logits = torch.tensor(rng.normal(size=(4, 4)), requires_grad=True)
    off_diagonal_same = (labels[:, None] == labels[None, :]) & ~torch.eye(4, dtype=torch.bool)
    clip_loss(logits).backward()
    clip_grad = logits.grad[off_diagonal_same].clone()
    logits.grad = None
    soft_loss(logits, labels, labels).backward()
    semantic_grad = logits.grad[off_diagonal_same]
    assert (clip_grad > 0).all()  # descending the loss lowers these logits: a false negative
    assert (semantic_grad < 0).all()  # descending raises them: a positive
