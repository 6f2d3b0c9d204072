"""Every sweep run is also a W&B run: per-epoch metrics, a summary and the confusion matrix.

Mode: WANDB_MODE when set (`disabled` turns W&B off); otherwise online when an
API key is configured (WANDB_API_KEY or a `wandb login` netrc entry), else
offline, so `wandb sync <run_dir>/wandb/offline-run-*` can upload later. Offline
run folders go to the run's own folder unless WANDB_DIR says otherwise.
"""

from __future__ import annotations

import math
import netrc
import os
from typing import Any
from urllib.parse import urlparse

DEFAULT_PROJECT = "cifar-sweep"
# Summary keys copied from TrainResult: scalars a W&B run table can sort by.
SUMMARY_KEYS = ("status", "stop_reason", "model", "params", "device", "precision", "train_seconds", "total_seconds",
                "test_loss", "test_acc", "test_acc_tta")


def has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode() -> str:
    return os.environ.get("WANDB_MODE") or ("online" if has_api_key() else "offline")


def summary_of(result: dict[str, Any]) -> dict[str, Any]:
    summary = {key: result.get(key) for key in SUMMARY_KEYS if result.get(key) is not None}
    if result.get("classes") and result.get("per_class_acc"):
        summary.update({f"test_acc/{name}": acc for name, acc in zip(result["classes"], result["per_class_acc"])})
    return summary


def confusion_chart(counts: list[list[int]], classes: list[str]) -> Any:
    """W&B's confusion-matrix chart from a counts[true][predicted] matrix."""
    import wandb

    y_true = [t for t, row in enumerate(counts) for p, n in enumerate(row) for _ in range(n)]
    preds = [p for t, row in enumerate(counts) for p, n in enumerate(row) for _ in range(n)]
    return wandb.plot.confusion_matrix(y_true=y_true, preds=preds, class_names=list(classes),
                                       title="Test confusion matrix (no TTA)")


def quiet_settings() -> Any:
    """No console capture (the agent draws its own progress); git info from the working folder, if it is a repo.

    Without `git_root`, W&B looks for git in the run folder and warns that it has none.
    """
    import wandb

    git = {"git_root": os.getcwd()} if os.path.isdir(".git") else {"disable_git": True}
    return wandb.Settings(silent=True, console="off", **git)


class WandbRun:
    """One W&B run for one attempt of a sweep run; resumed attempts reuse the run id."""

    def __init__(self, run: Any) -> None:
        self.run = run

    @classmethod
    def start(cls, *, run_id: str, sweep_id: str, config: dict[str, Any], run_dir: str,
              project: str | None = None, entity: str | None = None) -> WandbRun:
        import wandb

        mode = wandb_mode()
        run = wandb.init(
            project=project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT, entity=entity,
            group=sweep_id, job_type="sweep-run", name=run_id, id=run_id, resume="allow", config=config,
            dir=None if os.environ.get("WANDB_DIR") else run_dir, mode=mode,
            reinit="finish_previous", settings=quiet_settings(),
        )
        run.define_metric("epoch")
        run.define_metric("*", step_metric="epoch")
        return cls(run)

    def log_epoch(self, metrics: dict[str, Any]) -> None:
        self.run.log({k: v for k, v in metrics.items() if v is not None and not _is_nan(v)})

    def write_summary(self, state: str, result: dict[str, Any] | None = None, reason: str | None = None) -> None:
        """Final numbers and the confusion matrix; `sweep_state` mirrors the store's run state."""
        if result is not None:
            self.run.summary.update(summary_of(result))
            if result.get("confusion_matrix"):
                self.run.log({"test/confusion_matrix": confusion_chart(result["confusion_matrix"],
                                                                       result["classes"])})
        self.run.summary["sweep_state"] = state
        if reason:
            self.run.summary["sweep_reason"] = reason
        if state == "preempted":
            self.run.mark_preempting()  # W&B's controller requeues preempting runs

    def finish(self, state: str, result: dict[str, Any] | None = None, reason: str | None = None) -> None:
        """Write the summary and close the run; the exit code tells W&B whether it failed."""
        self.write_summary(state, result, reason)
        self.run.finish(exit_code=1 if state in ("failed", "crashed") else 0)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
