"""What the store keeps about sweeps and runs; the report reads these same records."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel

# W&B's run states.
RunState = Literal["pending", "running", "finished", "failed", "crashed", "preempted", "killed"]
SweepState = Literal["running", "finished", "stopped"]
# Runs that broke: the engine imputes a value for them, but neither status nor report calls them best.
BROKEN_STATES = frozenset({"failed", "crashed"})


class SweepRecord(BaseModel):
    id: str
    backend: Literal["local", "wandb"] = "local"
    state: SweepState = "running"
    config: dict[str, Any]  # the validated sweep YAML (method, metric, parameters, ...)
    created_at: float


class RunRecord(BaseModel):
    id: str
    sweep_id: str
    state: RunState
    config: dict[str, Any]  # plain parameter values chosen for this run
    history: list[dict[str, Any]] = []  # one dict per epoch, keys as train.EpochMetrics
    summary: dict[str, Any] = {}  # train.TrainResult fields other than history
    failure: str | None = None  # why the run failed or crashed
    attempts: int = 0
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    run_dir: str | None = None  # artifacts: checkpoint, predictions


class RunSource(Protocol):
    """Read access shared by the local store and the W&B API adapter."""

    def get_sweep(self, sweep_id: str) -> SweepRecord: ...

    def list_runs(self, sweep_id: str) -> list[RunRecord]: ...
