"""Batched augmentation on the training device: no per-image Python in the hot path.

Images stay uint8 on the device; each batch is gathered, normalised and
augmented with a handful of tensor ops. Randomness comes from an explicit
generator so a run (and a resumed run) is reproducible.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

FlipMode = Literal["none", "random", "alternating"]


def random_crop(images: torch.Tensor, pad: int, generator: torch.Generator,
                size: int | None = None) -> torch.Tensor:
    """Random `size` x `size` crop of the reflect-padded batch of square images.

    At the images' own size (the default) each image is shifted by up to `pad`
    pixels; a smaller `size` also cuts it down, which makes a training step cheaper.
    """
    n, _, side, _ = images.shape
    size = side if size is None else size
    if pad <= 0 and size == side:
        return images
    padded = F.pad(images, (pad,) * 4, mode="reflect") if pad > 0 else images
    shifts = torch.randint(0, side + 2 * pad - size + 1, (2, n), device=images.device, generator=generator)
    window = torch.arange(size, device=images.device)
    rows = (shifts[0].view(n, 1) + window).view(n, 1, size, 1)
    cols = (shifts[1].view(n, 1) + window).view(n, 1, 1, size)
    batch = torch.arange(n, device=images.device).view(n, 1, 1, 1)
    channels = torch.arange(images.size(1), device=images.device).view(1, -1, 1, 1)
    return padded[batch, channels, rows, cols]


def flip_mask(mode: FlipMode, n: int, epoch: int, base_flips: torch.Tensor | None,
              generator: torch.Generator, device: torch.device) -> torch.Tensor | None:
    """Which images of the batch to mirror.

    `alternating` mirrors each image on every other epoch, starting from a
    random per-image choice (`base_flips`), so across two epochs the network
    sees both orientations of every image rather than a random half twice.
    """
    if mode == "none":
        return None
    if mode == "random":
        return torch.rand(n, device=device, generator=generator) < 0.5
    assert base_flips is not None, "alternating flips need the per-image base choice"
    return base_flips ^ bool(epoch % 2)


def apply_flip(images: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return images
    return torch.where(mask.view(-1, 1, 1, 1), images.flip(-1), images)


def color_jitter(images: torch.Tensor, brightness: float, contrast: float,
                 generator: torch.Generator) -> torch.Tensor:
    """Per-image contrast scale in [1-contrast, 1+contrast] about the image's mean, then a brightness
    shift of up to `brightness` (standardised units, the same for every channel). Zero disables each."""
    n = images.size(0)
    if contrast > 0:
        scale = 1 + contrast * (2 * torch.rand(n, device=images.device, generator=generator) - 1)
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        images = mean + (images - mean) * scale.view(n, 1, 1, 1).to(images.dtype)
    if brightness > 0:
        shift = brightness * (2 * torch.rand(n, device=images.device, generator=generator) - 1)
        images = images + shift.view(n, 1, 1, 1).to(images.dtype)
    return images


def cutout(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one size x size square per image, centred anywhere (it may overlap the border)."""
    if size <= 0:
        return images
    n, _, height, width = images.shape
    centres = torch.randint(0, max(height, width), (2, n), device=images.device, generator=generator)
    ys = torch.arange(height, device=images.device).view(1, height, 1)
    xs = torch.arange(width, device=images.device).view(1, 1, width)
    top = (centres[0] - size // 2).view(n, 1, 1)
    left = (centres[1] - size // 2).view(n, 1, 1)
    inside = (ys >= top) & (ys < top + size) & (xs >= left) & (xs < left + size)
    return images.masked_fill(inside.unsqueeze(1), 0)
