"""Training functions for agent tests, importable by agent subprocesses (`--train-fn sweep_fakes:...`)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from bench.fake_train import FakeEpochEnd, instant_train


def always_raises(config: Any, hooks: Any = None, **_: Any) -> Any:
    """A broken box: every run dies the same way before its first epoch."""
    raise RuntimeError(f"CUDA out of memory (simulated) at batch_size={config.batch_size}")


always_raises.needs_data = False


def nan_loss(config: Any, hooks: Any = None, **_: Any) -> Any:
    """Training that diverges: the first epoch reports a NaN loss."""
    from train.result import EpochMetrics

    metrics = EpochMetrics(epoch=1, train_loss=float("nan"), train_acc=0.1, val_loss=float("nan"), val_acc=0.1,
                           lr=config.lr, epoch_seconds=0.0, images_per_second=0.0)
    hooks.on_epoch(FakeEpochEnd(metrics, 3, None))
    raise AssertionError("the agent should have failed the run at the NaN epoch")


nan_loss.needs_data = False


def reports_gpu(config: Any, hooks: Any = None, **kwargs: Any) -> Any:
    """One quick epoch; the result's `device` says which GPU the worker was pinned to."""
    result = instant_train(config, hooks, **kwargs)
    result.device = f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}"
    return result


reports_gpu.needs_data = False


class _PausingHooks:
    """Passes everything on, but stops this process (SIGSTOP) just before the epoch-end write of `epoch`."""

    def __init__(self, hooks: Any, epoch: int, marker: Path) -> None:
        self.hooks, self.epoch, self.marker = hooks, epoch, marker

    def on_step(self, step: int, total: int) -> None:
        self.hooks.on_step(step, total)

    def should_stop(self) -> bool:
        return self.hooks.should_stop()

    def on_epoch(self, event: Any) -> None:
        if event.metrics.epoch == self.epoch and attempt_of(event.checkpoint) == 1:
            self.marker.write_text(str(event.checkpoint))  # the test waits for this, then for the stop
            os.kill(os.getpid(), signal.SIGSTOP)
        self.hooks.on_epoch(event)


def attempt_of(checkpoint: Path | None) -> int | None:
    if checkpoint is None:
        return None
    return int(Path(checkpoint).parent.name.removeprefix("attempt-"))


def pauses_in_epoch_end_write(config: Any, hooks: Any = None, **kwargs: Any) -> Any:
    """instant_train, whose first attempt freezes itself between writing epoch 2's checkpoint and
    recording it in the store: the zombie window. $PAUSE_MARKER names the file that says it froze."""
    return instant_train(config, _PausingHooks(hooks, 2, Path(os.environ["PAUSE_MARKER"])), **kwargs)


pauses_in_epoch_end_write.needs_data = False
