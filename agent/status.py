"""What `sweep status` and `sweep ls` show, as models: `--json` dumps them, the CLI renders them."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel

from agent.controller import best_value
from store.records import BROKEN_STATES, RunRecord
from store.sqlite import LocalStore
from agent.sweep_config import grid_size

STATE_ORDER = ("running", "pending", "preempted", "crashed", "failed", "killed", "finished")


class RunStatus(BaseModel):
    id: str
    state: str
    config: dict[str, Any]
    epochs_done: int
    best_metric: float | None  # the run's best value of the sweep's metric so far
    attempts: int
    failure: str | None = None
    test_acc: float | None = None


class SweepStatus(BaseModel):
    id: str
    name: str | None = None  # the sweep file's `name`, shown literally
    state: str
    state_reason: str | None
    backend: str
    method: str
    metric: dict[str, Any] | None
    total_configs: int | None  # grid size; None for random and bayes (run_cap bounds them, if set)
    counts: dict[str, int]
    searched: list[str]  # parameters the sweep varies; the others have one value for every run
    best_run: str | None
    best_metric: float | None
    runs: list[RunStatus]


class SweepListing(BaseModel):
    id: str
    name: str | None
    backend: str
    state: str
    method: str
    runs: int
    finished: int
    best_metric: float | None
    metric: str | None
    created_at: float


def run_status(run: RunRecord, metric: str | None, goal: str | None) -> RunStatus:
    return RunStatus(id=run.id, state=run.state, config=run.config, epochs_done=len(run.history),
                     best_metric=best_value(run.history, metric, goal), attempts=run.attempts,
                     failure=run.failure, test_acc=run.summary.get("test_acc"))


def sweep_status(store: LocalStore, sweep_id: str) -> SweepStatus:
    sweep = store.get_sweep(sweep_id)
    if sweep.backend == "local" and sweep.state == "running":
        store.reap(sweep_id)
    metric = sweep.config.get("metric")
    name, goal = (metric or {}).get("name"), (metric or {}).get("goal")
    runs = [run_status(r, name, goal) for r in store.list_runs(sweep_id)] if sweep.backend == "local" else []
    counts = Counter(r.state for r in runs)
    scored = [r for r in runs if r.best_metric is not None and r.state not in BROKEN_STATES]
    best = (max if goal != "minimize" else min)(scored, key=lambda r: r.best_metric) if scored else None
    return SweepStatus(id=sweep.id, name=sweep.config.get("name"), state=sweep.state,
                       state_reason=store.sweep_state_reason(sweep_id),
                       backend=sweep.backend, method=sweep.config.get("method", "?"), metric=metric,
                       total_configs=grid_size(sweep.config),
                       counts={s: counts[s] for s in STATE_ORDER if counts[s]},
                       searched=[k for k, spec in sweep.config.get("parameters", {}).items() if "value" not in spec],
                       best_run=best.id if best else None, best_metric=best.best_metric if best else None,
                       runs=runs)


def list_sweeps(store: LocalStore) -> list[SweepListing]:
    listings = []
    for sweep in store.list_sweeps():
        status = sweep_status(store, sweep.id)
        listings.append(SweepListing(id=sweep.id, name=sweep.config.get("name"), backend=sweep.backend,
                                     state=sweep.state, method=status.method, runs=len(status.runs),
                                     finished=status.counts.get("finished", 0), best_metric=status.best_metric,
                                     metric=(status.metric or {}).get("name"), created_at=sweep.created_at))
    return listings
