"""The contrastive losses against naive formulas, and what the two do with repeated labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pedclip.train.losses import clip_loss, contrastive_logits, label_similarity, semantic_loss


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


def test_semantic_loss_is_label_similarity_soft_cross_entropy_minus_entropy(batch):
    logits, labels = batch
    same = (labels[:, None] == labels[None, :]).astype(float)  # onehot @ onehot.T
    image_t = same / same.sum(1, keepdims=True)
    text_t = same.T / same.T.sum(1, keepdims=True)
    expected = 0.5 * (naive_ce(logits, image_t) - naive_entropy(image_t)
                      + naive_ce(logits.T, text_t) - naive_entropy(text_t))  # fmt: skip
    got = semantic_loss(torch.tensor(logits), torch.tensor(labels), torch.tensor(labels))
    assert float(got) == pytest.approx(expected, rel=1e-9)


def test_semantic_softmax_targets_are_medclips_literal_formula(batch):
    logits, labels = batch
    sim = (labels[:, None] == labels[None, :]).astype(float)
    image_t = np.exp(sim) / np.exp(sim).sum(1, keepdims=True)  # mc:losses.py softmax(label_sim, dim=1)
    text_t = np.exp(sim.T) / np.exp(sim.T).sum(1, keepdims=True)
    expected = 0.5 * (naive_ce(logits, image_t) - naive_entropy(image_t)
                      + naive_ce(logits.T, text_t) - naive_entropy(text_t))  # fmt: skip
    got = semantic_loss(torch.tensor(logits), torch.tensor(labels), torch.tensor(labels), targets="softmax")
    assert float(got) == pytest.approx(expected, rel=1e-9)


def test_label_similarity_is_onehot_product():
    sim = label_similarity(torch.tensor([0, 1, 1]), torch.tensor([1, 0]))
    assert sim.tolist() == [[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]


def perfect_class_features(labels: np.ndarray, dim: int = 4) -> torch.Tensor:
    """Every item's feature is its class's unit vector: same-class images and captions are identical."""
    return torch.eye(dim)[torch.tensor(labels)]


def test_repeated_labels_clip_loss_has_a_floor_semantic_reaches_zero():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])  # 4 items per class
    features = perfect_class_features(labels)
    logits = contrastive_logits(features, features, torch.tensor(math.log(100.0)))
    hard = float(clip_loss(logits))
    soft = float(semantic_loss(logits, torch.tensor(labels), torch.tensor(labels)))
    assert hard == pytest.approx(math.log(4), abs=1e-3)  # same-class captions count as negatives
    assert soft == pytest.approx(0.0, abs=1e-3)


def test_semantic_pulls_same_label_pairs_together_clip_pushes_them_apart():
    rng = np.random.default_rng(3)
    labels = torch.tensor([0, 0, 1, 1])
    logits = torch.tensor(rng.normal(size=(4, 4)), requires_grad=True)
    off_diagonal_same = (labels[:, None] == labels[None, :]) & ~torch.eye(4, dtype=torch.bool)
    clip_loss(logits).backward()
    clip_grad = logits.grad[off_diagonal_same].clone()
    logits.grad = None
    semantic_loss(logits, labels, labels).backward()
    semantic_grad = logits.grad[off_diagonal_same]
    assert (clip_grad > 0).all()  # descending the loss lowers these logits: a false negative
    assert (semantic_grad < 0).all()  # descending raises them: a positive
