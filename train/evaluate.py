"""Inference with optional test-time augmentation, and the metrics built from it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import nn

from data.loader import eval_batches


def _mirror_average(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return 0.5 * (model(images).float() + model(images.flip(-1)).float())


def tta_logits(model: nn.Module, images: torch.Tensor, level: int) -> torch.Tensor:
    """Logits averaged over views: 0 plain, 1 + mirror, 2 + mirror of 1-pixel translations.

    Level 2 weighs the untranslated view 1/2 and the up-left and down-right
    one-pixel shifts 1/4 each, every view also mirrored.
    """
    if level == 0:
        return model(images).float()
    logits = _mirror_average(model, images)
    if level == 1:
        return logits
    padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
    height, width = images.shape[-2:]
    up_left = padded[..., :height, :width]
    down_right = padded[..., 2:, 2:]
    shifted = 0.5 * (_mirror_average(model, up_left) + _mirror_average(model, down_right))
    return 0.5 * logits + 0.5 * shifted


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int, dtype: torch.dtype, channels_last: bool,
            autocast: Callable[[], AbstractContextManager], tta_level: int = 0) -> torch.Tensor:
    """Float32 logits for uint8 images, in eval mode; the model's mode is restored."""
    was_training = model.training
    model.eval()
    outputs = []
    with autocast():
        for batch in eval_batches(images, batch_size, dtype, channels_last):
            outputs.append(tta_logits(model, batch, tta_level))
    model.train(was_training)
    return torch.cat(outputs) if outputs else torch.empty(0, 0)


def loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    loss = F.cross_entropy(logits, labels).item()
    return loss, (logits.argmax(1) == labels).float().mean().item()


def confusion_matrix(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """counts[true, predicted]."""
    flat = labels.long() * num_classes + predicted.long()
    return torch.bincount(flat.cpu(), minlength=num_classes**2).view(num_classes, num_classes)
