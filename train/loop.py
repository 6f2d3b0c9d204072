"""`train(config, hooks) -> TrainResult`: the function every sweep run calls."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from data.cifar import Cifar10, load_cifar10, split_train_val
from data.loader import AugmentSpec, DeviceLoader
from data.normalization import denormalize, normalize
from model.layers import count_parameters
from model.registry import build_model
from train.calibrate import recalibrate_batchnorm
from train.checkpoint import (CheckpointMismatch, CheckpointUnusable, checkpoint_path, list_checkpoints,
                              read_checkpoint, write_checkpoint)
from train.config import TrainConfig
from train.evaluate import confusion_matrix, loss_and_accuracy, predict
from train.hooks import EpochEnd, TrainHooks
from train.optim import Lookahead, build_optimizers, build_schedulers, clip_gradients, native_bf16
from train.result import EpochMetrics, TrainResult

SAMPLES_NAME = "augmented_samples.npz"  # what the network saw: the report's sample grid
PREDICTIONS_NAME = "predictions.npz"  # test-set predictions without TTA
WHITEN_IMAGES = 5000  # training images used to estimate the whitening transform
CHECKPOINT_FORMAT = 1

__all__ = ["CheckpointMismatch", "EpochEnd", "TrainHooks", "train"]


@dataclass
class _Progress:
    """Where the run stands; saved in checkpoints so a resumed run continues exactly."""

    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0
    global_step: int = 0
    history: list[dict] = field(default_factory=list)
    # Running sums of the epoch in progress (for resuming mid-epoch).
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    epoch_seconds: float = 0.0


@dataclass
class _State:
    """Everything a checkpoint holds: the weights, the optimisers' and schedules' state, the progress."""

    model: nn.Module
    optimizers: list[Optimizer]
    schedulers: list[LRScheduler]
    lookahead: Lookahead | None
    progress: _Progress

    def payload(self, config: TrainConfig, precision: str) -> dict[str, Any]:
        """Tensors and plain values only, so the file loads with weights_only=True."""
        return {
            "format": CHECKPOINT_FORMAT, "config": config.model_dump(), "precision": precision,
            "model": self.model.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "lookahead": self.lookahead.state_dict() if self.lookahead else None,
            "progress": dataclasses.asdict(self.progress),
        }

    def check(self, payload: dict[str, Any], path: Path) -> None:
        """Everything `restore` needs is there and fits this network: nothing is half-restored."""
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointUnusable(f"{path}: format {payload.get('format')!r}, expected {CHECKPOINT_FORMAT}")
        saved, ours = payload.get("model"), self.model.state_dict()
        if not isinstance(saved, dict) or saved.keys() != ours.keys() or any(
                not isinstance(saved[k], torch.Tensor) or saved[k].shape != v.shape for k, v in ours.items()):
            raise CheckpointUnusable(f"{path}: its weights do not fit this network")
        for key, expected in (("optimizers", len(self.optimizers)), ("schedulers", len(self.schedulers))):
            if not isinstance(payload.get(key), list) or len(payload[key]) != expected:
                raise CheckpointUnusable(f"{path}: expected {expected} {key}")
        if (payload.get("lookahead") is None) != (self.lookahead is None):
            raise CheckpointUnusable(f"{path}: lookahead state does not match the configuration")
        progress = payload.get("progress")
        if not isinstance(progress, dict) or progress.keys() != {f.name for f in dataclasses.fields(_Progress)}:
            raise CheckpointUnusable(f"{path}: its progress record is incomplete")

    def restore(self, payload: dict[str, Any]) -> None:
        self.model.load_state_dict(payload["model"])
        for optimizer, saved in zip(self.optimizers, payload["optimizers"]):
            optimizer.load_state_dict(saved)
        for scheduler, saved in zip(self.schedulers, payload["schedulers"]):
            scheduler.load_state_dict(saved)
        if self.lookahead is not None:
            self.lookahead.load_state_dict(payload["lookahead"])
        self.progress = _Progress(**payload["progress"])


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision != "auto":
        return precision
    # bf16 autocast where bf16 is emulated (a CPU without its instructions) is slower than fp32.
    return "bf16" if native_bf16(device) else "fp32"


def autocast_factory(device: torch.device, precision: str) -> Callable[[], AbstractContextManager]:
    if precision == "bf16":
        return partial(torch.autocast, device_type=device.type, dtype=torch.bfloat16)
    return nullcontext


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


def train(config: TrainConfig, hooks: TrainHooks | None = None, *, data: Cifar10 | None = None,
          run_dir: str | Path | None = None, resume_from: Sequence[str | Path] | None = None,
          device: str | torch.device | None = None) -> TrainResult:
    """Train `config.model` on CIFAR-10 and evaluate it.

    hooks: `on_step`, `on_epoch` and `should_stop` (see TrainHooks); None for none.
    data: the dataset (default: load it from $SWEEP_DATA_DIR or the default folder).
    run_dir: where checkpoints (`checkpoint-0001.pt`, ... one per epoch, and one when a stop
      interrupts an epoch), the augmented samples and the test predictions go. Nothing is deleted
      here: call `prune_checkpoints` to drop the old ones.
    resume_from: candidate checkpoints, newest first; the first usable one is resumed, damaged or
      refused ones are skipped with a note in `resume_notes`, and with none usable the run starts
      over. None: the newest usable checkpoint in `run_dir`, if any.
    A checkpoint written with other trajectory settings (train.config.RESUME_FREE_KEYS lists the
    keys that may differ) raises CheckpointMismatch naming the keys.
    Validation (held out from the training images) is measured every epoch; the test set only
    once, at the end.
    """
    started = time.perf_counter()
    hooks = hooks or TrainHooks()
    device = resolve_device(device)
    precision = resolve_precision(config.precision, device)
    autocast = autocast_factory(device, precision)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    run_dir = Path(run_dir) if run_dir is not None else None

    data = data or load_cifar10()
    train_idx, val_idx = split_train_val(data.train_labels, config.val_size, config.train_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config.model, config.max_params, **config.network_options())
    params = count_parameters(model)  # before any layer is frozen during training
    model = model.to(device=device, memory_format=memory_format)
    step_model = torch.compile(model) if config.compile else model
    loader = DeviceLoader(data.train_images[train_idx], data.train_labels[train_idx], config.batch_size,
                          AugmentSpec.from_settings(config), config.seed, device, dtype=dtype,
                          channels_last=config.channels_last)

    # Data-dependent initialisation (whitening) runs on the device and counts as training time,
    # as the public records count it.
    prepare_start = time.perf_counter()
    model.prepare(normalize(loader.images[:WHITEN_IMAGES]))
    _synchronize(device)
    prepare_seconds = time.perf_counter() - prepare_start

    steps_per_epoch = loader.steps_per_epoch
    total_steps = max(1, round(config.epochs * steps_per_epoch))
    num_epochs = math.ceil(total_steps / steps_per_epoch)
    whiten_steps = round(config.whiten_bias_epochs * steps_per_epoch)
    whiten_params = model.parameter_roles().get("whiten", [])
    optimizers = build_optimizers(model, config)
    lookahead = (Lookahead(model, config.lookahead_every, config.lookahead_decay, total_steps)
                 if config.lookahead_every else None)
    state = _State(model, optimizers, build_schedulers(optimizers, config, total_steps, whiten_steps), lookahead,
                   _Progress())

    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    candidates = list(resume_from) if resume_from is not None else list_checkpoints(run_dir) if run_dir else []
    resumed_from, resume_notes = _resume(state, [Path(p) for p in candidates], config, precision)
    if run_dir is not None and not (run_dir / SAMPLES_NAME).exists():  # resumed into a new folder too
        save_augmented_samples(run_dir / SAMPLES_NAME, loader, data.classes)
    last_checkpoint = resumed_from

    def save(path: Path) -> Path:
        write_checkpoint(path, state.payload(config, precision))
        return path

    val_images, val_labels = data.train_images[val_idx].to(device), data.train_labels[val_idx].to(device)
    infer = partial(predict, batch_size=config.eval_batch_size, dtype=dtype, channels_last=config.channels_last,
                    autocast=autocast)
    progress = state.progress
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
            loss, logits = training_step(step_model, images, labels, state.optimizers, state.schedulers, config,
                                         autocast)
            loss_sum += loss.detach() * len(labels)
            correct += (logits.argmax(1) == labels).sum()
            progress.seen += len(labels)
            progress.step_in_epoch += 1
            progress.global_step += 1
            if lookahead is not None:
                lookahead.after_step(progress.global_step)
            hooks.on_step(progress.global_step, total_steps)
            if hooks.should_stop():
                stop_reason = "preempted"
                break
        if stop_reason is None and progress.global_step >= total_steps:
            if lookahead is not None:
                lookahead.finish()  # the run ends on the average
            if config.bn_calibration_images:  # on the final weights, so after the lookahead's average
                recalibrate_batchnorm(model, loader.images[:config.bn_calibration_images],
                                      batch_size=config.batch_size, dtype=dtype,
                                      channels_last=config.channels_last, autocast=autocast)
        progress.loss_sum += loss_sum.item()
        progress.correct += int(correct.item())
        progress.epoch_seconds += time.perf_counter() - epoch_start
        if stop_reason is not None:
            if run_dir is not None:
                last_checkpoint = save(checkpoint_path(run_dir, progress.epoch, progress.step_in_epoch))
            break

        if val_size := len(val_idx):
            val_loss, val_acc = loss_and_accuracy(infer(model, val_images), val_labels)
        metrics = EpochMetrics(
            epoch=progress.epoch + 1,
            train_loss=progress.loss_sum / max(1, progress.seen),
            train_acc=progress.correct / max(1, progress.seen),
            val_loss=val_loss if val_size else None,
            val_acc=val_acc if val_size else None,
            lr=state.optimizers[0].param_groups[0]["lr"],
            epoch_seconds=progress.epoch_seconds,
            images_per_second=progress.seen / max(progress.epoch_seconds, 1e-9),
        )
        metrics.check_finite()  # a diverged run raises before it writes a checkpoint
        progress.history.append(metrics.model_dump())
        progress.epoch += 1
        progress.step_in_epoch = progress.seen = progress.correct = 0
        progress.loss_sum = progress.epoch_seconds = 0.0
        epoch_checkpoint = save(checkpoint_path(run_dir, progress.epoch)) if run_dir is not None else None
        last_checkpoint = epoch_checkpoint or last_checkpoint
        event = EpochEnd(metrics, num_epochs, epoch_checkpoint)
        hooks.on_epoch(event)
        stop_reason = event.stop_reason

    history = [EpochMetrics(**h) for h in progress.history]
    result = TrainResult(
        status="stopped" if stop_reason else "finished", stop_reason=stop_reason, config=config.model_dump(),
        model=config.model, params=params, device=_device_name(device), precision=precision,
        history=history, train_seconds=prepare_seconds + sum(h.epoch_seconds for h in history),
        total_seconds=time.perf_counter() - started, checkpoint=str(last_checkpoint) if last_checkpoint else None,
        resumed_from=str(resumed_from) if resumed_from else None, resume_notes=resume_notes,
        classes=list(data.classes),
    )
    if stop_reason is not None:
        return result
    predicted = _evaluate_test(result, model, data, device, config, infer)
    if run_dir is not None:
        np.savez_compressed(run_dir / PREDICTIONS_NAME, predicted=predicted.cpu().numpy(),
                            true=data.test_labels.numpy(), classes=np.array(data.classes))
    result.total_seconds = time.perf_counter() - started
    return result


def _resume(state: _State, candidates: list[Path], config: TrainConfig,
            precision: str) -> tuple[Path | None, list[str]]:
    """Restore the first usable candidate; returns it (or None) and a note for each one skipped."""
    notes: list[str] = []
    for path in candidates:
        try:
            payload = read_checkpoint(path)
            if not isinstance(payload.get("config"), dict):
                raise CheckpointUnusable(f"{path}: it records no configuration")
            differences = config.trajectory_differences(payload["config"])
            if differences:
                listed = "; ".join(f"{key} (checkpoint {old!r}, this run {new!r})"
                                   for key, (old, new) in differences.items())
                raise CheckpointMismatch(f"{path}: written with other training settings: {listed}. Resuming "
                                         f"needs the same settings; start in another run folder instead")
            state.check(payload, path)
        except CheckpointUnusable as error:
            notes.append(f"skipped {error}")
            continue
        state.restore(payload)
        if payload.get("precision") != precision:
            notes.append(f"{path}: written under {payload.get('precision')} precision, resumed under {precision}")
        return path, notes
    if candidates:
        notes.append(f"no usable checkpoint among {len(candidates)}; started from the beginning")
    return None, notes


def _evaluate_test(result: TrainResult, model: nn.Module, data: Cifar10, device: torch.device,
                   config: TrainConfig, infer: Callable[..., torch.Tensor]) -> torch.Tensor:
    """Fill in the test-set numbers of `result`; returns the predicted classes (without TTA).
    `test_eval_seconds` times the evaluation behind the headline
    accuracy (the TTA one when tta > 0), as the public records time it."""
    test_images, test_labels = data.test_images.to(device), data.test_labels.to(device)
    timed = time.perf_counter()
    logits = infer(model, test_images)
    result.test_loss, result.test_acc = loss_and_accuracy(logits, test_labels)  # .item() waits for the device
    result.test_eval_seconds = time.perf_counter() - timed
    if config.tta:
        timed = time.perf_counter()
        tta = infer(model, test_images, tta_level=config.tta, tta_confidence=config.tta_confidence)
        result.test_acc_tta = loss_and_accuracy(tta, test_labels)[1]
        result.test_eval_seconds = time.perf_counter() - timed
    num_classes = len(data.classes)
    predicted = logits.argmax(1)
    counts = confusion_matrix(predicted, test_labels, num_classes)
    result.confusion_matrix = counts.tolist()
    result.true_counts = counts.sum(1).tolist()
    result.predicted_counts = counts.sum(0).tolist()
    result.per_class_acc = (counts.diag() / counts.sum(1).clamp(min=1)).tolist()
    return predicted


def save_augmented_samples(path: Path, loader: DeviceLoader, classes: Sequence[str], count: int = 32) -> None:
    """The first training batch's first images after augmentation, as uint8 HWC for display."""
    idx = torch.arange(min(count, len(loader.images)), device=loader.device)
    images, labels = loader.augment_batch(idx, epoch=0, step=0)
    pixels = denormalize(images)
    np.savez_compressed(path, images=pixels.permute(0, 2, 3, 1).cpu().numpy(), labels=labels.cpu().numpy(),
                        classes=np.array(classes))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"
