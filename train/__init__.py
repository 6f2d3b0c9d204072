"""The training function the sweep agent runs.

The names below load on first use (PEP 562), so that `from train.config import TrainConfig`,
which `sweep create` needs to check a sweep file, does not import torch through the loop."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOMES = {
    "train.checkpoint": ("CheckpointError", "CheckpointMismatch", "CheckpointUnusable", "CheckpointWriteError",
                         "list_checkpoints", "prune_checkpoints"),
    "train.config": ("EPOCH_METRICS", "ConfigError", "TrainConfig"),
    "train.hooks": ("EpochEnd", "TrainHooks"),
    "train.loop": ("train",),
    "train.result": ("EpochMetrics", "TrainResult"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_HOME_OF)


def __getattr__(name: str) -> Any:
    if name not in _HOME_OF:
        raise AttributeError(f"module 'train' has no attribute '{name}'")
    value = getattr(importlib.import_module(_HOME_OF[name]), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME_OF})


if TYPE_CHECKING:
    from train.checkpoint import (CheckpointError, CheckpointMismatch, CheckpointUnusable, CheckpointWriteError,
                                  list_checkpoints, prune_checkpoints)
    from train.config import EPOCH_METRICS, ConfigError, TrainConfig
    from train.hooks import EpochEnd, TrainHooks
    from train.loop import train
    from train.result import EpochMetrics, TrainResult
