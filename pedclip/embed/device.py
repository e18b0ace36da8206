"""Host-to-device copies for model input: pinned memory and a non-blocking copy on CUDA, nothing on CPU.

On CUDA a pageable tensor is first staged by the driver into pinned memory anyway; pinning it ourselves lets
the copy run asynchronously while the next batch is normalised. On CPU pinning would need CUDA and buys
nothing, so the tensor is returned as it is (same object).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def is_cuda(device: str) -> bool:
    return str(device).startswith("cuda")


def host_to_device(tensor: torch.Tensor, device: str) -> torch.Tensor:
    """`tensor` on `device`: pinned + non_blocking on CUDA; unchanged (not pinned) on CPU."""
    if not is_cuda(device):
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)
