"""CIFAR-10's per-channel statistics and the two directions of the standardisation built from them.

Training, evaluation, the report's sample grid and an exported model's preprocessing all use
these, so a network sees the same inputs wherever it runs.
"""

from __future__ import annotations

import torch

# Per-channel mean and standard deviation of the 50,000 training images, pixel values in [0, 1].
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def _channel_stats(like: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std in uint8 units, shaped to broadcast over an NCHW batch."""
    mean = torch.tensor(CIFAR10_MEAN, device=like.device, dtype=dtype).view(1, 3, 1, 1) * 255
    std = torch.tensor(CIFAR10_STD, device=like.device, dtype=dtype).view(1, 3, 1, 1) * 255
    return mean, std


def normalize(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 NCHW -> standardised float NCHW (channels_last when the input is)."""
    mean, std = _channel_stats(images, dtype)
    return (images.to(dtype) - mean) / std


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Standardised float NCHW -> uint8 NCHW pixels, rounded and clipped to 0..255 (for display)."""
    mean, std = _channel_stats(images, torch.float32)
    return (images.float() * std + mean).round().clamp(0, 255).to(torch.uint8)
