"""Hooks for `sweep train`: a progress bar, and only the newest two checkpoints kept in the run folder."""

from __future__ import annotations

from pathlib import Path

from rich.progress import Progress, TaskID

from train.checkpoint import list_checkpoints, prune_checkpoints
from train.hooks import EpochEnd, TrainHooks

KEEP_CHECKPOINTS = 2  # the newest, and one to fall back on if it is damaged


class ProgressHooks(TrainHooks):
    def __init__(self, progress: Progress, task: TaskID, run_dir: Path | None) -> None:
        self.progress, self.task, self.run_dir = progress, task, run_dir

    def on_step(self, step: int, total: int) -> None:
        self.progress.update(self.task, total=total, completed=step)

    def on_epoch(self, event: EpochEnd) -> None:
        m = event.metrics
        val = f"val {m.val_acc:.2%}" if m.val_acc is not None else "no validation"
        self.progress.update(self.task, status=f"epoch {m.epoch}/{event.epochs}  loss {m.train_loss:.3f}  {val}  "
                                               f"{m.images_per_second:,.0f} img/s")
        if self.run_dir is not None:
            keep_newest(self.run_dir)


def keep_newest(run_dir: Path) -> None:
    """No store decides here which checkpoints are needed: the run folder's newest two are."""
    prune_checkpoints(run_dir, keep=list_checkpoints(run_dir)[:KEEP_CHECKPOINTS])
