"""Host-to-device copies: untouched on the CPU (pinning needs CUDA and buys nothing there)."""

from __future__ import annotations

import torch

from pedclip.embed.device import host_to_device, is_cuda


def test_cpu_batches_are_neither_copied_nor_pinned():
    batch = torch.randn(2, 3, 8, 8)
    assert host_to_device(batch, "cpu") is batch and not batch.is_pinned()
    assert is_cuda("cuda") and is_cuda("cuda:1") and not is_cuda("cpu") and not is_cuda("mps")
