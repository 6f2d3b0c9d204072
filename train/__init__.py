"""The training function the sweep agent runs."""

from train.config import EPOCH_METRICS, ConfigError, TrainConfig
from train.loop import EpochEnd, train
from train.result import EpochMetrics, TrainResult

__all__ = ["EPOCH_METRICS", "ConfigError", "EpochEnd", "EpochMetrics", "TrainConfig", "TrainResult", "train"]
