"""The training function the sweep agent runs."""

from train.checkpoint import (CheckpointError, CheckpointMismatch, CheckpointUnusable, CheckpointWriteError,
                              list_checkpoints, prune_checkpoints)
from train.config import EPOCH_METRICS, ConfigError, TrainConfig
from train.hooks import EpochEnd, TrainHooks
from train.loop import train
from train.result import EpochMetrics, TrainResult

__all__ = ["EPOCH_METRICS", "CheckpointError", "CheckpointMismatch", "CheckpointUnusable", "CheckpointWriteError",
           "ConfigError", "EpochEnd", "EpochMetrics", "TrainConfig", "TrainHooks", "TrainResult", "list_checkpoints",
           "prune_checkpoints", "train"]
