"""How a W&B trial follows its training run: epochs to W&B and the display, the stop flag, checkpoints kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from train import EpochEnd, TrainHooks, list_checkpoints, prune_checkpoints

KEEP_CHECKPOINTS = 2  # the newest, and one to fall back on if it is damaged


class TrialHooks(TrainHooks):
    def __init__(self, logger: Any, events: Any, run_id: str, run_dir: Path, stop: Any) -> None:
        self.logger, self.events, self.run_id, self.run_dir, self.stop = logger, events, run_id, run_dir, stop

    def on_epoch(self, event: EpochEnd) -> None:
        event.metrics.check_finite()  # also for a custom --train-fn that does not check itself
        metrics = event.metrics.model_dump()
        self.logger.log_epoch(metrics)
        self.events.epoch(self.run_id, metrics, event.epochs)
        if event.checkpoint is not None:
            # W&B records no checkpoint of ours: the run folder's own newest two are the ones to keep.
            prune_checkpoints(self.run_dir, keep=list_checkpoints(self.run_dir)[:KEEP_CHECKPOINTS])

    def should_stop(self) -> bool:
        return self.stop.is_set()
