"""`normalize`: 8-bit films go through a lookup table; the values are the direct float32 arithmetic's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pedclip.models.base import PreprocessConfig, normalize

RGB = PreprocessConfig(size=16)  # CLIP's mean and std, three channels
ONE_CHANNEL = PreprocessConfig(size=16, channels=1, mean=(0.5862785803043838,), std=(0.27950088968644304,))


def direct(arrays: list[np.ndarray], config: PreprocessConfig) -> torch.Tensor:
    """The arithmetic written out: luma or channel repeat, /255, minus mean, over std, channels first."""
    out = []
    for a in arrays:
        if config.channels == 1:
            if a.ndim == 3:
                a = np.round(a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114).astype(np.uint8)
            channels = a[None]
        else:
            channels = np.stack([a] * 3) if a.ndim == 2 else np.moveaxis(a, -1, 0)
        unit = torch.from_numpy(channels.astype(np.float32)) / 255.0
        mean = torch.tensor(config.mean, dtype=torch.float32).view(-1, 1, 1)
        std = torch.tensor(config.std, dtype=torch.float32).view(-1, 1, 1)
        out.append((unit - mean) / std)
    return torch.stack(out)


@pytest.mark.parametrize("config", [RGB, ONE_CHANNEL], ids=["three-channel", "one-channel"])
@pytest.mark.parametrize("kinds", ["gray", "rgb", "mixed"])
def test_8bit_batches_equal_the_direct_arithmetic_bit_for_bit(config, kinds) -> None:
    rng = np.random.default_rng(0)
    gray = [rng.integers(0, 256, (16, 16), dtype=np.uint8) for _ in range(3)]
    gray[0][0, :] = [0, 255] * 8  # both ends of the table
    rgb = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    batch = {"gray": gray, "rgb": rgb, "mixed": [gray[0], rgb[0], gray[1]]}[kinds]
    got = normalize(batch, config)
    assert got.dtype == torch.float32 and got.is_contiguous()
    assert torch.equal(got, direct(batch, config))


def test_deeper_films_keep_their_fractional_levels() -> None:
    rng = np.random.default_rng(1)
    batch = [rng.uniform(0, 255, (16, 16)).astype(np.float32) for _ in range(2)]  # 16-bit films, rescaled
    torch.testing.assert_close(normalize(batch, RGB), direct(batch, RGB), rtol=0, atol=1e-6)
