"""Contrastive losses over an image-text batch: pure functions of tensors.

`logits_per_image[i, j] = exp(logit_scale) * cos(image_i, text_j)`, shape (B_img, B_txt); text j is the
caption paired with image j. Three losses:
- `clip`: only the diagonal is positive (the study's loss: two identical class captions in one batch are
  pushed apart, so its floor is about log(#same-class items)).
- `semantic`: MedCLIP's loss (mc:losses.py `_soft_clip_loss`): soft targets `softmax(label_sim / tau)`
  (tau = 1 in MedCLIP), soft cross-entropy both ways, averaged. With one-hot labels a same-label pair
  scores 1 and another pair 0, so the targets keep mass on other-label pairs: in a balanced batch the
  same class holds e/(e+1) ~ 0.73 of each row, and the optimum is a logit gap of 1/tau, not separation.
  Its value is MedCLIP's (the soft cross-entropy), so its floor is the targets' entropy, not 0.
- `supcon`: uniform targets over the same-label pairs (a supervised-contrastive reading of MedCLIP's idea),
  reported as KL (soft cross-entropy minus the targets' entropy), so a perfect model reaches 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOSSES = ("clip", "semantic", "supcon")
MAX_LOGIT_SCALE = math.log(100.0)  # CLIP's and MedCLIP's ceiling on exp(logit_scale)
MEDCLIP_TAU = 1.0  # MedCLIP takes softmax(label_sim) with no temperature


def contrastive_logits(
    image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """(B_img, B_txt) scaled cosine similarities from unnormalised features; `logit_scale` is the log scale."""
    image = F.normalize(image_features.float(), dim=-1)
    text = F.normalize(text_features.float(), dim=-1)
    return logit_scale.float().exp() * image @ text.T


def clip_loss(logits_per_image: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy with `arange` targets: mean of the image->text and text->image losses."""
    targets = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)
    return 0.5 * (F.cross_entropy(logits_per_image, targets) + F.cross_entropy(logits_per_image.T, targets))


def label_similarity(
    image_labels: torch.Tensor, text_labels: torch.Tensor, n_classes: int = 2
) -> torch.Tensor:
    """(B_img, B_txt) = onehot(image labels) @ onehot(text labels).T: 1 where the labels agree, else 0."""
    image = F.one_hot(image_labels.long(), n_classes).float()
    text = F.one_hot(text_labels.long(), n_classes).float()
    return image @ text.T


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -sum_j targets_ij log softmax(logits)_ij."""
    return -(targets * logits.log_softmax(dim=1)).sum(dim=1).mean()


def _entropy(targets: torch.Tensor) -> torch.Tensor:
    return -(targets * targets.clamp_min(1e-30).log()).sum(dim=1).mean()


def semantic_loss(
    logits_per_image: torch.Tensor,
    image_labels: torch.Tensor,
    text_labels: torch.Tensor,
    tau: float = MEDCLIP_TAU,
    n_classes: int = 2,
) -> torch.Tensor:
    """MedCLIP's loss: 0.5 * (softCE(logits, softmax(sim / tau)) + softCE(logits.T, softmax(sim.T / tau)))."""
    similarity = label_similarity(image_labels, text_labels, n_classes).to(logits_per_image) / tau
    image_side = soft_cross_entropy(logits_per_image, similarity.softmax(dim=1))
    text_side = soft_cross_entropy(logits_per_image.T, similarity.T.softmax(dim=1))
    return 0.5 * (image_side + text_side)


def same_label_targets(similarity: torch.Tensor) -> torch.Tensor:
    """Rows of a 0/1 `similarity` as uniform distributions over the same-label pairs."""
    return similarity / similarity.sum(dim=1, keepdim=True).clamp_min(1e-12)


def supcon_loss(
    logits_per_image: torch.Tensor, image_labels: torch.Tensor, text_labels: torch.Tensor, n_classes: int = 2
) -> torch.Tensor:
    """Uniform same-label targets, both directions averaged, reported as KL (soft CE minus the targets'
    entropy): a model whose rows match the targets scores 0."""
    similarity = label_similarity(image_labels, text_labels, n_classes).to(logits_per_image)
    per_image, per_text = same_label_targets(similarity), same_label_targets(similarity.T)
    image_side = soft_cross_entropy(logits_per_image, per_image) - _entropy(per_image)
    text_side = soft_cross_entropy(logits_per_image.T, per_text) - _entropy(per_text)
    return 0.5 * (image_side + text_side)


def contrastive_loss(
    name: str, logits_per_image: torch.Tensor, image_labels: torch.Tensor, text_labels: torch.Tensor
) -> torch.Tensor:
    """The loss `name` (one of LOSSES) of one batch."""
    if name == "clip":
        return clip_loss(logits_per_image)
    if name == "semantic":
        return semantic_loss(logits_per_image, image_labels, text_labels)
    if name == "supcon":
        return supcon_loss(logits_per_image, image_labels, text_labels)
    raise ValueError(f"unknown loss {name!r}; expected one of {LOSSES}")
