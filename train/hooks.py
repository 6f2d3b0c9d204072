"""The one way a caller follows and steers `train()`: a hooks object."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from train.result import EpochMetrics


@dataclass
class EpochEnd:
    """What `on_epoch` receives after every epoch; `stop()` ends the run after this epoch."""

    metrics: EpochMetrics
    epochs: int  # the run's total
    checkpoint: Path | None  # the file saved for this epoch (None without a run folder)
    stop_reason: str | None = None

    def stop(self, reason: str = "stopped by a hook") -> None:
        self.stop_reason = reason


class TrainHooks:
    """Subclass and override what you need; each method here does nothing.

    Every method is called on the training thread, between steps: a slow hook slows training,
    and an exception raised by a hook ends the run with that exception.
    """

    def on_step(self, step: int, total: int) -> None:
        """After every optimisation step: `step` of `total` steps in the whole run (1-based)."""

    def on_epoch(self, event: EpochEnd) -> None:
        """After every epoch, once its checkpoint is on disk."""

    def should_stop(self) -> bool:
        """Asked after every step; True stops the run there (checkpointed when it has a run folder)
        with stop_reason "preempted"."""
        return False
