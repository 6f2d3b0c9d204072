"""Inference with optional test-time augmentation, and the metrics built from it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import nn

from data.loader import eval_batches


def _mirror_average(model: nn.Module, images: torch.Tensor, plain: torch.Tensor | None = None) -> torch.Tensor:
    plain = model(images).float() if plain is None else plain
    return 0.5 * (plain + model(images.flip(-1)).float())


# Where each one-pixel shift's window starts (row, column) in the image padded by one pixel:
# (0, 0) views it moved down-right by a pixel, (2, 2) up-left, (0, 2) down-left, (2, 0) up-right.
SHIFT_WINDOWS: dict[int, tuple[tuple[int, int], ...]] = {2: ((0, 0), (2, 2)), 3: ((0, 0), (2, 2), (0, 2), (2, 0))}
TTA_LEVELS = (0, 1, *SHIFT_WINDOWS)  # plain, mirrored, then the levels that add shifts


def forward_passes(level: int) -> int:
    """Views per image at a TTA level, each one forward pass."""
    return 1 if level == 0 else 2 * (1 + len(SHIFT_WINDOWS.get(level, ())))


def tta_logits(model: nn.Module, images: torch.Tensor, level: int, plain: torch.Tensor | None = None) -> torch.Tensor:
    """Logits averaged over views: 0 plain, 1 + mirror, 2 + mirror of two diagonal 1-pixel shifts,
    3 + mirror of all four diagonal 1-pixel shifts.

    From level 2 on, the unshifted pair weighs 1/2 and the shifted pairs share the other half
    (1/4 each at level 2, 1/8 at level 3). `plain`: the plain view's logits when already computed.
    """
    if level == 0:
        return model(images).float() if plain is None else plain
    logits = _mirror_average(model, images, plain)
    if level == 1:
        return logits
    padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
    height, width = images.shape[-2:]
    windows = SHIFT_WINDOWS[level]
    shifted = sum(_mirror_average(model, padded[..., row:row + height, col:col + width]) for row, col in windows)
    return 0.5 * logits + 0.5 * (shifted / len(windows))


def confident_tta_logits(model: nn.Module, images: torch.Tensor, level: int, below: float) -> torch.Tensor:
    """TTA only where the plain view is unsure (top probability under `below`); the rest keep
    their plain logits. The extra views cost work only for the images that need them."""
    if level == 0 or below >= 1:
        return tta_logits(model, images, level)
    logits = model(images).float()
    unsure = logits.softmax(1).amax(1) < below
    if unsure.any():
        logits[unsure] = tta_logits(model, images[unsure], level, plain=logits[unsure])
    return logits


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int, dtype: torch.dtype, channels_last: bool,
            autocast: Callable[[], AbstractContextManager], tta_level: int = 0,
            tta_confidence: float = 1.0) -> torch.Tensor:
    """Float32 logits for uint8 images, in eval mode; the model's mode is restored."""
    was_training = model.training
    model.eval()
    outputs = []
    with autocast():
        for batch in eval_batches(images, batch_size, dtype, channels_last):
            outputs.append(confident_tta_logits(model, batch, tta_level, tta_confidence))
    model.train(was_training)
    return torch.cat(outputs) if outputs else torch.empty(0, 0)


def loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    loss = F.cross_entropy(logits, labels).item()
    return loss, (logits.argmax(1) == labels).float().mean().item()


def confusion_matrix(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """counts[true, predicted]."""
    flat = labels.long() * num_classes + predicted.long()
    return torch.bincount(flat.cpu(), minlength=num_classes**2).view(num_classes, num_classes)
