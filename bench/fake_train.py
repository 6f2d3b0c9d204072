"""A stand-in for `train.train` that sleeps instead of training: the orchestration benchmarks and tests use it.

It keeps `train()`'s contract where the agent relies on it: one checkpoint file per epoch in
`run_dir` (written atomically), resuming from the first readable file in `resume_from`, the hooks
called at every step and epoch, and a TrainResult at the end. Its metrics are made up.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORK_MS_ENV = "BENCH_WORK_MS"
PAD_ENV = "BENCH_CHECKPOINT_PAD"  # bytes added to each checkpoint, to fill a small disk in tests


@dataclass
class FakeEpochEnd:
    metrics: Any
    epochs: int
    checkpoint: Path | None
    stop_reason: str | None = None

    def stop(self, reason: str = "stopped") -> None:
        self.stop_reason = reason


def _resume(resume_from: Any) -> dict[str, Any]:
    for path in resume_from or []:
        try:
            return json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue  # damaged or gone: try the previous one
    return {"epoch": 0, "history": []}


def _save(run_dir: Path, epoch: int, history: list[dict[str, Any]]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / f"checkpoint-{epoch:04d}.json"
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps({"epoch": epoch, "history": history}) + " " * int(os.environ.get(PAD_ENV, "0")))
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)  # a full disk must not keep a half-written file
        raise
    return path


def instant_train(config: Any, hooks: Any = None, *, data: Any = None, run_dir: Any = None, resume_from: Any = None,
                  device: Any = None) -> Any:
    from train.result import EpochMetrics, TrainResult

    work_s = float(os.environ.get(WORK_MS_ENV, "20")) / 1000
    epochs = math.ceil(config.epochs)
    state = _resume(resume_from)
    history = [EpochMetrics(**h) for h in state["history"]]
    stop_reason, checkpoint = None, None
    for epoch in range(state["epoch"] + 1, epochs + 1):
        time.sleep(work_s)
        if hooks is not None and hooks.should_stop():
            stop_reason = "preempted"
            break
        score = 0.5 + 0.1 * math.sin(config.lr * 100 + config.seed) + 0.01 * epoch
        metrics = EpochMetrics(epoch=epoch, train_loss=1 / epoch, train_acc=score, val_loss=1 - score,
                               val_acc=score, lr=config.lr, epoch_seconds=work_s, images_per_second=1.0)
        history.append(metrics)
        if run_dir is not None:
            checkpoint = _save(Path(run_dir), epoch, [h.model_dump() for h in history])
        event = FakeEpochEnd(metrics, epochs, checkpoint)
        if hooks is not None:
            hooks.on_epoch(event)
        if event.stop_reason:
            stop_reason = event.stop_reason
            break
    return TrainResult(status="stopped" if stop_reason else "finished", stop_reason=stop_reason,
                       config=config.model_dump(), model=config.model, params=0, device="none", precision="none",
                       history=history, train_seconds=work_s * len(history), total_seconds=work_s * len(history),
                       checkpoint=str(checkpoint) if checkpoint else None,
                       test_acc=history[-1].val_acc if history and not stop_reason else None)


instant_train.needs_data = False  # the agent skips loading CIFAR-10 for it
