"""What `sweep status` and `sweep ls` show, as models: `--json` dumps them, the CLI renders them."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel

from agent.controller import Controller
from agent.decisions import has_result
from agent.sweep_config import grid_size
from store.protocol import Store
from store.records import BROKEN_STATES, RUN_STATES, RunRecord, best_run, metric_of, run_score

STATE_ORDER = RUN_STATES


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
    points_without_result: int | None = None  # grid points whose run crashed or failed after every retry
    without_result: list[str] = []  # those runs' ids (any method)
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


def run_status(run: RunRecord, metric: str | None, goal: str) -> RunStatus:
    return RunStatus(id=run.id, state=run.state, config=run.config, epochs_done=run.epochs_done,
                     best_metric=run_score(run, metric, goal), attempts=run.attempts,
                     failure=run.failure, test_acc=run.summary.get("test_acc"))


def sweep_status(store: Store, sweep_id: str) -> SweepStatus:
    sweep = store.get_sweep(sweep_id)
    if sweep.backend == "local" and sweep.state == "running" and not getattr(store.dialect, "read_only", False):
        Controller(store).reap(sweep_id)
        sweep = store.get_sweep(sweep_id)
    name, goal = metric_of(sweep)
    records = store.list_runs(sweep_id) if sweep.backend == "local" else []
    runs = [run_status(r, name, goal) for r in records]
    counts = Counter(r.state for r in runs)
    best = best_run(records, name, goal)
    # Runs that broke without a result (crashed, or failed by the box), whether or not a retry is due.
    missing = [r.id for r in records if r.state in BROKEN_STATES and not has_result(r)]
    total = grid_size(sweep.config)
    return SweepStatus(id=sweep.id, name=sweep.config.get("name"), state=sweep.state,
                       state_reason=sweep.state_reason,
                       backend=sweep.backend, method=sweep.config.get("method", "?"), metric=sweep.config.get("metric"),
                       total_configs=total,
                       counts={s: counts[s] for s in STATE_ORDER if counts[s]},
                       searched=[k for k, spec in sweep.config.get("parameters", {}).items() if "value" not in spec],
                       best_run=best[0].id if best else None, best_metric=best[1] if best else None,
                       points_without_result=len(missing) if total is not None else None, without_result=missing,
                       runs=runs)


def list_sweeps(store: Store) -> list[SweepListing]:
    listings = []
    for sweep in store.list_sweeps():
        status = sweep_status(store, sweep.id)
        listings.append(SweepListing(id=sweep.id, name=sweep.config.get("name"), backend=sweep.backend,
                                     state=sweep.state, method=status.method, runs=len(status.runs),
                                     finished=status.counts.get("finished", 0), best_metric=status.best_metric,
                                     metric=(status.metric or {}).get("name"), created_at=sweep.created_at))
    return listings
