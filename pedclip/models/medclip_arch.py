"""MedCLIP's modules rebuilt on transformers and torchvision, with the released module tree and names.

Tree (audit section 3): vision_model.{model, projection_head} | text_model.{model, projection_head} |
logit_scale. Forward passes follow mc:modeling_medclip.py exactly, without `.cuda()` or downloads.
"""

from __future__ import annotations

import math

import torch
from torch import nn

LOGIT_SCALE_MAX = 4.6052  # MedCLIP clamps log(scale) to [0, ln 100] on every call
PROJECTION_DIM = 512
RESNET50_LAYERS = (3, 4, 6, 3)
RESNET_WIDTH = 64  # stem channels of torchvision's ResNet-50


class VisionViT(nn.Module):
    """MedCLIPVisionModelViT: Swin pooler output (mean of tokens after the last LayerNorm) -> projection."""

    def __init__(self, swin_config, projection_dim: int = PROJECTION_DIM):
        super().__init__()
        from transformers import SwinModel

        self.model = SwinModel(swin_config)
        self.projection_head = nn.Linear(swin_config.hidden_size, projection_dim, bias=False)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if pixel_values.shape[1] == 1:  # MedCLIP feeds 1-channel images and repeats them here
            pixel_values = pixel_values.repeat((1, 3, 1, 1))
        return self.projection_head(self.model(pixel_values=pixel_values).pooler_output)


class VisionResNet(nn.Module):
    """MedCLIPVisionModel: torchvision ResNet-50 whose fc is the projection (2048 -> 512, no bias).

    `width` is the stem's channel count (64 in every released model); a smaller one narrows every stage in
    proportion (compute falls with its square), for demo models trained from scratch on a CPU.
    """

    def __init__(
        self,
        layers: tuple[int, ...] = RESNET50_LAYERS,
        projection_dim: int = PROJECTION_DIM,
        width: int = RESNET_WIDTH,
    ):
        super().__init__()
        from torchvision.models.resnet import Bottleneck, ResNet

        self.model = ResNet(Bottleneck, list(layers))
        if width != RESNET_WIDTH:
            _narrow(self.model, Bottleneck, layers, width)
        self.model.fc = nn.Linear(width * 8 * Bottleneck.expansion, projection_dim, bias=False)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if pixel_values.shape[1] == 1:
            pixel_values = pixel_values.repeat((1, 3, 1, 1))
        return self.model(pixel_values)


def _narrow(model: nn.Module, block, layers: tuple[int, ...], width: int) -> None:
    """Rebuild torchvision's ResNet stem and stages with `width` instead of 64 (same module names and keys)."""
    model.inplanes = width
    model.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(width)
    for i, blocks in enumerate(layers):
        stage = model._make_layer(block, width * 2**i, blocks, stride=1 if i == 0 else 2)
        setattr(model, f"layer{i + 1}", stage)


class Text(nn.Module):
    """MedCLIPTextModel: mean over ALL positions (padding included) of BERT layers 1, 2 and last, averaged,
    then projected. The padded length therefore changes the embedding (tokenize with padding=True)."""

    def __init__(self, bert_config, projection_dim: int = PROJECTION_DIM):
        super().__init__()
        from transformers import BertModel

        self.model = BertModel(bert_config)  # with pooler, as AutoModel built it
        self.projection_head = nn.Linear(bert_config.hidden_size, projection_dim, bias=False)

    def forward(self, tokens: dict) -> torch.Tensor:
        output = self.model(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"], output_hidden_states=True
        )
        hidden = output.hidden_states
        stacked = torch.stack([hidden[1], hidden[2], hidden[-1]])  # (3, B, L, H)
        return self.projection_head(stacked.permute(1, 0, 2, 3).mean(2).mean(1))


class MedCLIP(nn.Module):
    """MedCLIPModel's state-dict root: vision_model, text_model, logit_scale."""

    def __init__(self, vision_model: nn.Module, text_model: nn.Module):
        super().__init__()
        self.vision_model = vision_model
        self.text_model = text_model
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def clamp_logit_scale(self) -> None:
        """MedCLIP clamps in place before every logit computation; training should call this each step."""
        with torch.no_grad():
            self.logit_scale.clamp_(0, LOGIT_SCALE_MAX)
