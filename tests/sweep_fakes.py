"""Training functions for agent tests, importable by agent subprocesses (`--train-fn sweep_fakes:...`)."""

from __future__ import annotations

from typing import Any


def always_raises(config: Any, hooks: Any = None, **_: Any) -> Any:
    """A broken box: every run dies the same way before its first epoch."""
    raise RuntimeError(f"CUDA out of memory (simulated) at batch_size={config.batch_size}")


always_raises.needs_data = False


def nan_loss(config: Any, hooks: Any = None, **_: Any) -> Any:
    """Training that diverges: the first epoch reports a NaN loss."""
    from train import EpochEnd
    from train.result import EpochMetrics

    metrics = EpochMetrics(epoch=1, train_loss=float("nan"), train_acc=0.1, val_loss=float("nan"), val_acc=0.1,
                           lr=config.lr, epoch_seconds=0.0, images_per_second=0.0)
    hooks.on_epoch(EpochEnd(metrics, 3, None))
    raise AssertionError("the agent should have failed the run at the NaN epoch")


nan_loss.needs_data = False


def reports_gpu(config: Any, hooks: Any = None, **_: Any) -> Any:
    """One quick epoch; the result's `device` says which GPU the worker was pinned to."""
    import os

    from bench.claims import instant_train

    result = instant_train(config, hooks)
    result.device = f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}"
    return result


reports_gpu.needs_data = False
