"""`train(config, callbacks) -> TrainResult`: the function every sweep run calls."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from data.cifar import Cifar10, load_cifar10, split_train_val
from data.augment import CIFAR10_MEAN, CIFAR10_STD, normalize
from data.loader import AugmentSpec, DeviceLoader
from model.layers import count_parameters
from model.registry import build_model
from train.config import TrainConfig
from train.evaluate import confusion_matrix, loss_and_accuracy, predict
from train.optim import build_optimizers, build_schedulers, clip_gradients
from train.result import EpochMetrics, TrainResult

CHECKPOINT_NAME = "checkpoint.pt"
SAMPLES_NAME = "augmented_samples.npz"  # what the network saw: the report's sample grid
PREDICTIONS_NAME = "predictions.npz"  # test-set predictions without TTA
WHITEN_IMAGES = 5000  # training images used to estimate the whitening transform


class CheckpointMismatch(ValueError):
    """A checkpoint was written by a run with another configuration."""


@dataclass
class EpochEnd:
    """Passed to each callback after every epoch; `stop()` ends the run after this epoch."""

    metrics: EpochMetrics
    epochs: int
    checkpoint: Path | None
    stop_reason: str | None = None

    def stop(self, reason: str = "stopped by callback") -> None:
        self.stop_reason = reason


Callback = Callable[[EpochEnd], None]


@dataclass
class _Progress:
    """Where the run stands; saved in checkpoints so a resumed run continues exactly."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    history: list[dict] = field(default_factory=list)
    # Running sums of the epoch in progress (for resuming mid-epoch).
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    epoch_seconds: float = 0.0


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    # bf16 autocast on a CPU without native bf16 instructions is slower than fp32.
    return "bf16" if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def autocast_factory(device: torch.device, precision: str) -> Callable[[], AbstractContextManager]:
    if precision == "bf16":
        return partial(torch.autocast, device_type=device.type, dtype=torch.bfloat16)
    return nullcontext


def _save_checkpoint(path: Path, config: TrainConfig, model: nn.Module, optimizers: Sequence[Optimizer],
                     schedulers: Sequence[LRScheduler], progress: _Progress) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
    state = {
        "config": config.model_dump(),
        "model": model.state_dict(),
        "optimizers": [o.state_dict() for o in optimizers],
        "schedulers": [s.state_dict() for s in schedulers],
        "progress": progress.__dict__,
    }
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, config: TrainConfig, model: nn.Module, optimizers: Sequence[Optimizer],
                     schedulers: Sequence[LRScheduler]) -> _Progress:
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state["config"] != config.model_dump():
        changed = sorted(k for k in state["config"] if state["config"][k] != config.model_dump().get(k))
        raise CheckpointMismatch(f"{path}: written by a run with other settings ({', '.join(changed)})")
    model.load_state_dict(state["model"])
    for optimizer, saved in zip(optimizers, state["optimizers"]):
        optimizer.load_state_dict(saved)
    for scheduler, saved in zip(schedulers, state["schedulers"]):
        scheduler.load_state_dict(saved)
    return _Progress(**state["progress"])


def training_step(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  optimizers: Sequence[torch.optim.Optimizer], schedulers: Sequence, config: TrainConfig,
                  autocast: Callable[[], AbstractContextManager]) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step; returns the loss and the logits."""
    with autocast():
        logits = model(images)
    loss = F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
    loss.backward()
    clip_gradients(model, config.grad_clip)
    for optimizer in optimizers:
        optimizer.step()
    for scheduler in schedulers:
        scheduler.step()
    model.zero_grad(set_to_none=True)
    return loss, logits


def train(config: TrainConfig, callbacks: Sequence[Callback] = (), *, data: Cifar10 | None = None,
          data_dir: str | os.PathLike | None = None, run_dir: str | os.PathLike | None = None,
          device: str | torch.device | None = None, should_stop: Callable[[], bool] | None = None,
          on_step: Callable[[int, int], None] | None = None) -> TrainResult:
    """Train `config.model` on CIFAR-10 and evaluate it.

    With `run_dir`, a checkpoint is written there after every epoch (and when
    `should_stop` turns true mid-epoch), and an existing checkpoint is resumed.
    `on_step(step, total_steps)` is called after every optimisation step (for progress bars).
    Validation (held out from the training images) is measured every epoch;
    the test set only once, at the end.
    """
    started = time.perf_counter()
    device = resolve_device(device)
    precision = resolve_precision(config.precision, device)
    autocast = autocast_factory(device, precision)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    channels_last = config.channels_last
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    data = data or load_cifar10(data_dir)
    train_idx, val_idx = split_train_val(data.train_labels, config.val_size, config.train_size)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config.model, config.max_params)
    params = count_parameters(model)  # before any layer is frozen during training
    prepare_start = time.perf_counter()
    model.prepare(normalize(data.train_images[train_idx[:WHITEN_IMAGES]]))
    prepare_seconds = time.perf_counter() - prepare_start
    model = model.to(device=device, memory_format=memory_format)
    step_model = torch.compile(model) if config.compile else model

    loader = DeviceLoader(data.train_images[train_idx], data.train_labels[train_idx], config.batch_size,
                          AugmentSpec(config.translate, config.flip, config.cutout, config.low_res_size,
                                      config.low_res_epochs, config.low_res_mode), config.seed, device,
                          dtype=dtype, channels_last=channels_last)
    steps_per_epoch = loader.steps_per_epoch
    total_steps = max(1, round(config.epochs * steps_per_epoch))
    num_epochs = math.ceil(total_steps / steps_per_epoch)
    whiten_steps = round(config.whiten_bias_epochs * steps_per_epoch)
    whiten_params = model.parameter_roles().get("whiten", [])

    optimizers = build_optimizers(model, config)
    schedulers = build_schedulers(optimizers, config, total_steps, whiten_steps)

    checkpoint = Path(run_dir) / CHECKPOINT_NAME if run_dir is not None else None
    progress = _Progress()
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        if checkpoint.exists():
            progress = _load_checkpoint(checkpoint, config, model, optimizers, schedulers)
        else:
            save_augmented_samples(checkpoint.parent / SAMPLES_NAME, loader, data.classes)

    def save() -> None:
        if checkpoint is not None:
            _save_checkpoint(checkpoint, config, model, optimizers, schedulers, progress)

    val_images, val_labels = data.train_images[val_idx].to(device), data.train_labels[val_idx].to(device)
    infer = partial(predict, batch_size=config.eval_batch_size, dtype=dtype, channels_last=channels_last,
                    autocast=autocast)
    stop_reason: str | None = None
    model.train()

    while progress.epoch < num_epochs and stop_reason is None:
        epoch_start = time.perf_counter()
        # Summed on the device: reading a scalar every step would stall a GPU.
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for images, labels in loader.epoch(progress.epoch, progress.step_in_epoch):
            if progress.global_step >= total_steps:
                break
            for p in whiten_params:
                p.requires_grad_(progress.global_step < whiten_steps)
            loss, logits = training_step(step_model, images, labels, optimizers, schedulers, config, autocast)

            loss_sum += loss.detach() * len(labels)
            correct += (logits.argmax(1) == labels).sum()
            progress.seen += len(labels)
            progress.step_in_epoch += 1
            progress.global_step += 1
            if on_step is not None:
                on_step(progress.global_step, total_steps)
            if should_stop is not None and should_stop():
                stop_reason = "preempted"
                break
        progress.loss_sum += loss_sum.item()
        progress.correct += int(correct.item())
        progress.epoch_seconds += time.perf_counter() - epoch_start
        if stop_reason is not None:
            save()
            break

        if val_size := len(val_idx):
            val_loss, val_acc = loss_and_accuracy(infer(model, val_images), val_labels)
        metrics = EpochMetrics(
            epoch=progress.epoch + 1,
            train_loss=progress.loss_sum / max(1, progress.seen),
            train_acc=progress.correct / max(1, progress.seen),
            val_loss=val_loss if val_size else None,
            val_acc=val_acc if val_size else None,
            lr=optimizers[0].param_groups[0]["lr"],
            epoch_seconds=progress.epoch_seconds,
            images_per_second=progress.seen / max(progress.epoch_seconds, 1e-9),
        )
        metrics.check_finite()
        progress.history.append(metrics.model_dump())
        progress.epoch += 1
        progress.step_in_epoch = progress.seen = progress.correct = 0
        progress.loss_sum = progress.epoch_seconds = 0.0
        save()
        event = EpochEnd(metrics, num_epochs, checkpoint)
        for callback in callbacks:
            callback(event)
        stop_reason = event.stop_reason

    history = [EpochMetrics(**h) for h in progress.history]
    result = TrainResult(
        status="stopped" if stop_reason else "finished", stop_reason=stop_reason, config=config.model_dump(),
        model=config.model, params=params, device=_device_name(device), precision=precision,
        # Data-dependent initialisation (whitening) counts as training, as the public records count it.
        history=history, train_seconds=prepare_seconds + sum(h.epoch_seconds for h in history),
        total_seconds=time.perf_counter() - started, checkpoint=str(checkpoint) if checkpoint else None,
        classes=list(data.classes),
    )
    if stop_reason is not None:
        return result

    test_images, test_labels = data.test_images.to(device), data.test_labels.to(device)
    logits = infer(model, test_images)
    result.test_loss, result.test_acc = loss_and_accuracy(logits, test_labels)
    if config.tta:
        result.test_acc_tta = loss_and_accuracy(infer(model, test_images, tta_level=config.tta), test_labels)[1]
    num_classes = len(data.classes)
    counts = confusion_matrix(logits.argmax(1), test_labels, num_classes)
    result.confusion_matrix = counts.tolist()
    result.true_counts = counts.sum(1).tolist()
    result.predicted_counts = counts.sum(0).tolist()
    result.per_class_acc = (counts.diag() / counts.sum(1).clamp(min=1)).tolist()
    if run_dir is not None:
        np.savez_compressed(Path(run_dir) / PREDICTIONS_NAME, predicted=logits.argmax(1).cpu().numpy(),
                            true=test_labels.cpu().numpy(), classes=np.array(data.classes))
    result.total_seconds = time.perf_counter() - started
    return result


def save_augmented_samples(path: Path, loader: DeviceLoader, classes: Sequence[str], count: int = 32) -> None:
    """The first training batch's first images after augmentation, as uint8 HWC for display."""
    idx = torch.arange(min(count, len(loader.images)), device=loader.device)
    images, labels = loader.augment_batch(idx, epoch=0, step=0)
    mean = torch.tensor(CIFAR10_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, device=images.device).view(1, 3, 1, 1)
    pixels = ((images.float() * std + mean) * 255).round().clamp(0, 255).to(torch.uint8)
    np.savez_compressed(path, images=pixels.permute(0, 2, 3, 1).cpu().numpy(), labels=labels.cpu().numpy(),
                        classes=np.array(classes))


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"
