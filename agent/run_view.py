"""What `sweep runs` and `sweep run` show, as models over the store's records: `--json` dumps them.

Read-only: nothing here writes to the store, so both commands work on a store an agent is using.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from store.protocol import Store
from store.records import RunRecord, metric_of, run_score

LOG_TAIL_LINES = 20
LOG_FILE, TRACEBACK_FILE = "log.txt", "traceback.txt"  # what the worker writes into each attempt's folder
SUMMARY_KEYS = ("test_acc", "test_acc_tta", "test_loss", "params", "device", "precision", "train_seconds",
                "total_seconds", "stop_reason")


class RunRow(BaseModel):
    """One line of `sweep runs`."""

    id: str
    seq: int
    state: str
    epochs_done: int
    best_metric: float | None  # the run's best value of the sweep's metric (the one best-run rule's score)
    test_acc: float | None
    attempts: int
    config: dict[str, Any]
    failure: str | None


class RunList(BaseModel):
    sweep_id: str
    metric: str | None
    searched: list[str]  # parameters the sweep varies (the table shows only these)
    runs: list[RunRow]


class AttemptView(BaseModel):
    attempt: int
    agent: str
    host: str
    started_at: float
    ended_at: float | None
    resumed_after_epoch: int  # 0: started from scratch
    outcome: str | None  # the state it left the run in; None while it runs
    detail: str | None  # why it ended
    epochs: list[int]  # epochs this attempt reported
    log_tail: list[str] | None  # last lines of attempt-<n>/log.txt, when the file exists
    traceback: list[str] | None  # last lines of attempt-<n>/traceback.txt (a failed attempt's)
    folder: str


class RunDetails(BaseModel):
    id: str
    sweep_id: str
    state: str
    metric: str | None
    best_metric: float | None
    failure: str | None
    stop_requested: str | None
    attempts_count: int
    failures: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    config: dict[str, Any]
    history: list[dict[str, Any]]
    summary: dict[str, Any]  # SUMMARY_KEYS only: the confusion matrix and friends stay in the store/report
    checkpoint: str | None
    folder: str
    attempts: list[AttemptView]


def list_runs(store: Store, sweep_id: str, state: str | None = None) -> RunList:
    """The sweep's runs in creation order, only those in `state` when given."""
    sweep = store.get_sweep(sweep_id)
    metric, goal = metric_of(sweep)
    runs = [run for run in store.list_runs(sweep_id) if state is None or run.state == state]
    rows = [RunRow(id=run.id, seq=run.seq, state=run.state, epochs_done=run.epochs_done or len(run.history),
                   best_metric=run_score(run, metric, goal), test_acc=run.summary.get("test_acc"),
                   attempts=run.attempts, config=run.config, failure=run.failure)
            for run in sorted(runs, key=lambda r: (r.seq, r.created_at))]
    searched = [name for name, spec in sweep.config.get("parameters", {}).items() if "value" not in spec]
    return RunList(sweep_id=sweep.id, metric=metric, searched=searched, runs=rows)


def run_details(store: Store, run_id: str) -> RunDetails:
    """One run: its config, history, attempts with their logs, and why it ended."""
    run = store.get_run(run_id)
    metric, goal = metric_of(store.get_sweep(run.sweep_id))
    folder = store.run_path(run)
    by_epoch = store.history_attempts(run_id)
    attempts = [AttemptView(attempt=a.attempt, agent=a.agent, host=a.host, started_at=a.started_at,
                            ended_at=a.ended_at, resumed_after_epoch=a.resumed_from_epoch, outcome=a.outcome,
                            detail=a.detail, epochs=sorted(e for e, n in by_epoch.items() if n == a.attempt),
                            log_tail=tail(attempt_folder(folder, a.attempt) / LOG_FILE),
                            traceback=tail(attempt_folder(folder, a.attempt) / TRACEBACK_FILE),
                            folder=str(attempt_folder(folder, a.attempt)))
                for a in sorted(store.list_attempts(run_id=run_id), key=lambda a: a.attempt)]
    return RunDetails(id=run.id, sweep_id=run.sweep_id, state=run.state, metric=metric,
                      best_metric=run_score(run, metric, goal), failure=run.failure,
                      stop_requested=run.stop_requested, attempts_count=run.attempts, failures=run.failures,
                      created_at=run.created_at, started_at=run.started_at, finished_at=run.finished_at,
                      config=run.config, history=run.history, summary=_summary(run), checkpoint=run.checkpoint,
                      folder=str(folder), attempts=attempts)


def attempt_folder(run_folder: Path, attempt: int) -> Path:
    return run_folder / f"attempt-{attempt}"


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str] | None:
    """The last `lines` lines of a text file, or None when there is no such file (or it cannot be read)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return [line.rstrip("\n") for line in deque(handle, maxlen=lines)]
    except OSError:
        return None


def _summary(run: RunRecord) -> dict[str, Any]:
    return {key: run.summary[key] for key in SUMMARY_KEYS if run.summary.get(key) is not None}
