"""What a training run reports: per-epoch history and the final evaluation."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel


class EpochMetrics(BaseModel):
    """One epoch. Accuracies are fractions in [0, 1]; val_* are None when val_size is 0."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    lr: float
    epoch_seconds: float
    images_per_second: float

    def check_finite(self) -> None:
        """Raise when training diverged: every later step would be NaN too, so the run should fail now."""
        if not math.isfinite(self.train_loss):
            raise FloatingPointError(f"train_loss is {self.train_loss} at epoch {self.epoch}")


class TrainResult(BaseModel):
    status: Literal["finished", "stopped"]
    stop_reason: str | None = None
    config: dict[str, Any]
    model: str
    params: int
    device: str
    precision: str
    history: list[EpochMetrics]
    train_seconds: float  # training steps with their data augmentation, plus data-dependent initialisation
    total_seconds: float  # wall time of the whole call, loading and evaluation included
    checkpoint: str | None = None  # the newest checkpoint written (or resumed from) by this call
    resumed_from: str | None = None  # the checkpoint this call resumed from; None: it started fresh
    resume_notes: list[str] = []  # checkpoints skipped (damaged, refused) and other remarks on resuming
    # Final evaluation on the test set (absent when the run was stopped early).
    test_loss: float | None = None
    test_acc: float | None = None
    test_acc_tta: float | None = None
    test_eval_seconds: float | None = None  # the evaluation giving the headline accuracy (TTA when tta > 0)
    classes: list[str] = []
    confusion_matrix: list[list[int]] | None = None  # counts[true][predicted], without TTA
    per_class_acc: list[float] | None = None
    predicted_counts: list[int] | None = None
    true_counts: list[int] | None = None

    @property
    def final(self) -> EpochMetrics | None:
        return self.history[-1] if self.history else None
