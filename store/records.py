"""What the store keeps about sweeps and runs, the run states, and the one rule for "the best run".

Every part reads these same records: the controller, the agent, `sweep status/ls`, the report and
the dashboard. Nothing here touches a database.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Protocol

from pydantic import BaseModel

# W&B's run states, defined once.
RunState = Literal["pending", "running", "finished", "failed", "crashed", "preempted", "killed"]
RUN_STATES: tuple[str, ...] = ("running", "pending", "preempted", "crashed", "failed", "killed", "finished")
SweepState = Literal["running", "finished", "stopped"]
# Runs that broke: the engine imputes a value for them, but neither status nor report calls them best.
BROKEN_STATES = frozenset({"failed", "crashed"})
# Runs that may still train: a sweep holding one is not done.
UNFINISHED_STATES = frozenset({"pending", "running", "preempted"})
Goal = Literal["maximize", "minimize"]


class SweepRecord(BaseModel):
    id: str
    backend: Literal["local", "wandb"] = "local"
    state: SweepState = "running"
    state_reason: str | None = None  # why it is finished or stopped (grid exhausted, run_cap, `sweep stop`)
    config: dict[str, Any]  # the validated sweep YAML (method, metric, parameters, ...)
    created_at: float
    finished_at: float | None = None


class RunRecord(BaseModel):
    id: str
    sweep_id: str
    seq: int = 0  # creation order within the sweep
    state: RunState
    config: dict[str, Any]  # plain parameter values chosen for this run
    history: list[dict[str, Any]] = []  # one dict per epoch, keys as train.EpochMetrics
    summary: dict[str, Any] = {}  # train.TrainResult fields other than history
    failure: str | None = None  # why the run failed or crashed
    attempts: int = 0
    failures: int = 0  # attempts that count towards the retry limit
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    run_dir: str | None = None  # the run's artifact folder on this machine (attempt-<n>/ folders inside)
    owner: str | None = None  # the agent holding the lease, while running
    lease_expires_at: float | None = None  # by the database's clock
    stop_requested: str | None = None
    checkpoint: str | None = None  # the checkpoint a resuming attempt starts from (relative to the artifact root)
    previous_checkpoint: str | None = None  # the one before it: the fallback when `checkpoint` is damaged
    retryable: bool = True  # False once a run failed in a way a retry repeats (its loss diverged)
    notes: list[str] = []  # what happened to it besides its attempts (a damaged checkpoint skipped, ...)
    epochs_done: int = 0  # epochs in history, also when history was not loaded
    changed: int = 0  # the sweep's change counter when this row last changed (see Store.changes)


class Attempt(BaseModel):
    """One agent's go at a run: who, where, from which epoch, and how it ended."""

    run_id: str
    attempt: int
    agent: str  # host:pid, or label@host:pid
    started_at: float
    resumed_from_epoch: int  # epochs already done when it started
    ended_at: float | None
    outcome: str | None  # the state it left the run in
    detail: str | None  # why

    @property
    def host(self) -> str:
        return self.agent.rpartition("@")[2].rpartition(":")[0] or self.agent


class EpochRow(BaseModel):
    run_id: str
    epoch: int
    attempt: int
    metrics: dict[str, Any]


class SweepChanges(BaseModel):
    """What changed in a sweep after change counter `since`: ask again with `cursor`."""

    cursor: int
    sweep: SweepRecord
    runs: list[RunRecord]  # rows that changed, without history
    epochs: list[EpochRow]  # epochs recorded since, in order


class RunSource(Protocol):
    """Read access shared by the stores and the W&B API adapter (what the report needs)."""

    def get_sweep(self, sweep_id: str) -> SweepRecord: ...

    def list_runs(self, sweep_id: str) -> list[RunRecord]: ...


# -- the one rule for "the best run" --------------------------------------------------------------------


def metric_of(sweep: SweepRecord) -> tuple[str | None, Goal]:
    """The sweep's metric name and goal (maximize unless it says minimize)."""
    spec = sweep.config.get("metric") or {}
    return spec.get("name"), "minimize" if spec.get("goal") == "minimize" else "maximize"


def run_score(run: RunRecord, metric: str | None, goal: Goal) -> float | None:
    """A run's best finite value of `metric` over its history and summary, as W&B's engine scores runs."""
    if not metric:
        return None
    candidates = [h.get(metric) for h in run.history] + [run.summary.get(metric)]
    values = [float(v) for v in candidates
              if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    if not values:
        return None
    return max(values) if goal == "maximize" else min(values)


def rank_runs(runs: list[RunRecord], metric: str | None, goal: Goal) -> list[tuple[RunRecord, float]]:
    """Runs with a score, failed and crashed ones excluded, best first; ties keep creation order."""
    scored = [(run, score) for run in sorted(runs, key=lambda r: (r.created_at, r.seq))
              if run.state not in BROKEN_STATES and (score := run_score(run, metric, goal)) is not None]
    sign = -1.0 if goal == "maximize" else 1.0
    return sorted(scored, key=lambda pair: sign * pair[1])


def best_run(runs: list[RunRecord], metric: str | None, goal: Goal) -> tuple[RunRecord, float] | None:
    ranked = rank_runs(runs, metric, goal)
    return ranked[0] if ranked else None
