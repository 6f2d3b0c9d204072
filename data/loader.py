"""Epochs of augmented batches drawn from a dataset that lives on the device."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any, Literal

import torch
import torch.nn.functional as F

from data.augment import FlipMode, apply_flip, color_jitter, cutout, flip_mask, random_crop
from data.normalization import normalize


@dataclass(frozen=True)
class AugmentSpec:
    """What the loader does to each training batch. No defaults here: the training configuration's
    fields of the same names are the one place they are set (`from_settings`)."""

    translate: int
    flip: FlipMode
    cutout: int
    # Progressive resizing: the first `low_res_epochs` epochs train on `low_res_size` images,
    # cut from the image ("crop") or scaled down from it ("resize"); fewer pixels, cheaper steps.
    low_res_size: int
    low_res_epochs: int
    low_res_mode: Literal["crop", "resize"]
    brightness: float
    contrast: float

    @classmethod
    def from_settings(cls, settings: Any, **changes: Any) -> AugmentSpec:
        """The spec named by an object with attributes of the same names (a TrainConfig)."""
        values = {f.name: getattr(settings, f.name) for f in fields(cls)}
        return cls(**{**values, **changes})


def seeded_generator(device: torch.device, *keys: int) -> torch.Generator:
    """A generator determined by (seed, epoch, step, ...), so any step can be replayed."""
    seed = 0
    for key in keys:
        seed = (seed * 1_000_003 + int(key)) % (2**63 - 1)
    return torch.Generator(device=device).manual_seed(seed)


class DeviceLoader:
    """Shuffled, augmented training batches from uint8 images resident on `device`.

    The randomness of epoch e and step s depends only on (seed, e, s): a run
    resumed at any step sees exactly the batches it would have seen.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 augment: AugmentSpec, seed: int, device: torch.device,
                 dtype: torch.dtype = torch.float32, channels_last: bool = False):
        self.images = images.to(device)
        self.labels = labels.to(device)
        self.batch_size = min(batch_size, len(images))
        self.augment = augment
        self.seed = seed
        self.device = device
        self.dtype = dtype
        self.channels_last = channels_last
        base = seeded_generator(device, seed, -1)
        self.base_flips = torch.rand(len(images), device=device, generator=base) < 0.5

    @property
    def steps_per_epoch(self) -> int:
        # The last partial batch is dropped: tiny batches make BatchNorm statistics noisy.
        return len(self.images) // self.batch_size

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.images), device=self.device,
                               generator=seeded_generator(self.device, self.seed, epoch))
        for step in range(start_step, self.steps_per_epoch):
            idx = order[step * self.batch_size:(step + 1) * self.batch_size]
            yield self.augment_batch(idx, epoch, step)

    def augment_batch(self, idx: torch.Tensor, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = seeded_generator(self.device, self.seed, epoch, step)
        spec = self.augment
        images = normalize(self.images[idx], self.dtype)
        low_res = epoch < spec.low_res_epochs and spec.low_res_size < images.size(-1)
        crop_size = spec.low_res_size if low_res and spec.low_res_mode == "crop" else None
        images = random_crop(images, spec.translate, generator, crop_size)
        if low_res and spec.low_res_mode == "resize":
            images = F.interpolate(images, size=spec.low_res_size, mode="area")
        mask = flip_mask(spec.flip, len(idx), epoch, self.base_flips[idx], generator, self.device)
        images = color_jitter(apply_flip(images, mask), spec.brightness, spec.contrast, generator)
        images = cutout(images, spec.cutout, generator)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, self.labels[idx]


def eval_batches(images: torch.Tensor, batch_size: int, dtype: torch.dtype,
                 channels_last: bool) -> Iterator[torch.Tensor]:
    """Normalised, un-augmented batches for evaluation."""
    for start in range(0, len(images), batch_size):
        batch = normalize(images[start:start + batch_size], dtype)
        yield batch.contiguous(memory_format=torch.channels_last) if channels_last else batch
