"""What the controller decides, as pure functions over records, in the shape of `sweeps.next_run`.

No database here: the controller reads the sweep's records inside its transaction, asks these
functions, and writes what they return. Retry rules (docs/orchestration.md):
- preempted (the agent was asked to stop): resumed first, from its checkpoint;
- crashed (the agent vanished; its lease expired): resumed next, while the run has failed fewer
  than `max_failures` times. A crash counts as a failure only when its attempt reported no epoch;
- failed (training raised): offered again after the new configurations, so a box that breaks every
  run does not stall the queue (W&B #5088), unless the failure repeats by nature (a diverging loss).
One row per configuration, retried in place: a grid point never gets a second row.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import warnings
from typing import Any, Literal

from pydantic import BaseModel

from agent.engine import sweep_engine
from agent.sweep_config import grid_size, run_values
from store.records import RunRecord, SweepRecord

MAX_WAIT_S = 2.0  # an idle agent asks again at least this often


class Resume(BaseModel):
    kind: Literal["resume"] = "resume"
    run_id: str


class New(BaseModel):
    kind: Literal["new"] = "new"
    config: dict[str, Any]


class Wait(BaseModel):
    kind: Literal["wait"] = "wait"
    seconds: float
    reason: str


class Done(BaseModel):
    kind: Literal["done"] = "done"
    reason: str
    complete: bool  # False: some runs have no result (crashed, or failed for the box's reasons) after every retry
    without_result: list[str] = []


Decision = Resume | New | Wait | Done


def retries_left(run: RunRecord, max_failures: int) -> bool:
    return run.retryable and run.failures < max_failures


def has_result(run: RunRecord) -> bool:
    """Finished, cancelled by the user, or failed in a way that is the configuration's own result."""
    return run.state in ("finished", "killed") or (run.state == "failed" and not run.retryable)


def next_claim(sweep: SweepRecord, runs: list[RunRecord], max_failures: int, now: float) -> Decision:
    """The next thing an agent should do for this sweep."""
    if sweep.state != "running":
        return Done(reason=f"sweep {sweep.state}" + (f": {sweep.state_reason}" if sweep.state_reason else ""),
                    complete=True)
    resumable = ([r for r in runs if r.state == "preempted"] +
                 [r for r in runs if r.state == "crashed" and retries_left(r, max_failures)])
    if resumable:
        return Resume(run_id=resumable[0].id)
    config, exhausted = next_config(sweep, runs, max_failures)
    if config is not None:
        return New(config=config)
    retries = [r for r in runs if r.state == "failed" and retries_left(r, max_failures)]
    if retries:
        return Resume(run_id=retries[0].id)
    running = [r for r in runs if r.state in ("running", "pending")]
    if running:
        expiries = [r.lease_expires_at for r in running if r.lease_expires_at is not None] or [now + MAX_WAIT_S]
        return Wait(seconds=min(max(min(expiries) - now, 0.2), MAX_WAIT_S),
                    reason=f"{exhausted}; waiting for {plural(len(running), 'running run')} that may need a retry")
    missing = [r for r in runs if not has_result(r)]
    if missing:
        return Done(reason=f"{exhausted}, but {plural(len(missing), 'run')} ended without a result after "
                           f"every retry ({describe_states(missing)}); `sweep retry {sweep.id}` offers them again",
                    complete=False, without_result=[r.id for r in missing])
    return Done(reason=exhausted, complete=True)


def next_config(sweep: SweepRecord, runs: list[RunRecord], max_failures: int) -> tuple[dict[str, Any] | None, str]:
    """A new configuration from W&B's engine, or None and why there is none."""
    run_cap = sweep.config.get("run_cap")
    if run_cap is not None and len(runs) >= run_cap:
        return None, f"run_cap {run_cap} reached"
    exhausted = f"grid exhausted: all {plural(len(runs), 'configuration')} have a run"
    grid = sweep_grid(sweep)
    if grid is not None:
        taken = {grid_key(run.config, grid.names) for run in runs}
        return next((dict(point) for point, key in zip(grid.points, grid.keys) if key not in taken), None), exhausted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        suggestion = sweep_engine().next_run(sweep.config, engine_runs(runs, max_failures), validate=False)
    if suggestion is None:
        return None, exhausted
    return run_values(suggestion.config), ""


def prepare(sweep: SweepRecord) -> None:
    """Do once, before an agent's first claim and outside the sweep's lock, what every claim would
    otherwise pay for first: importing W&B's engine and, for a grid, enumerating it."""
    sweep_engine()
    sweep_grid(sweep)


def sweep_grid(sweep: SweepRecord) -> Grid | None:
    """A grid sweep's points as `whole_grid` enumerates them (cached); None for other methods."""
    return whole_grid(json.dumps(sweep.config, sort_keys=True)) if sweep.config.get("method") == "grid" else None


@dataclasses.dataclass(frozen=True)
class Grid:
    names: tuple[str, ...]  # the parameters that take several values
    points: list[dict[str, Any]]  # every configuration, in the order W&B's engine proposes them
    keys: list[tuple[Any, ...]]  # each point's values of `names`, normalised as grid_key does


def grid_key(config: dict[str, Any], names: tuple[str, ...]) -> tuple[Any, ...]:
    """A point's identity as W&B's grid sees it: the values of the varying parameters, an integral
    float equal to its int (the engine's yaml_hash treats 3e6 and 3000000 alike), a bool not 1."""
    def normal(value: Any) -> Any:
        if isinstance(value, bool):
            return ("bool", value)
        return int(value) if isinstance(value, float) and value.is_integer() else value

    return tuple(normal(config.get(name)) for name in names)


@functools.lru_cache(maxsize=16)
def whole_grid(config_json: str) -> Grid | None:
    """The grid that W&B's engine walks, enumerated by the engine once per sweep and process, so a
    claim costs one pass over the runs instead of the engine's hashing of every run's values.
    None unless every parameter is a `value` or a list of `values` of plain scalars: those grids
    (int_uniform, q_uniform, lists or dicts as values) go to the engine on every claim."""
    config = json.loads(config_json)
    scalar = (str, int, float, bool, type(None))
    for spec in config.get("parameters", {}).values():
        kind = spec.get("distribution", "categorical" if "values" in spec else "constant")
        values = spec.get("values") if kind == "categorical" else [spec.get("value")] if kind == "constant" else None
        if values is None or (set(spec) - {"values", "value", "distribution"}) or \
                not all(isinstance(v, scalar) for v in values):
            return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        suggestions = sweep_engine().next_runs(config, [], validate=False, n=(grid_size(config) or 0) + 1)
    points = [run_values(s.config) for s in suggestions if s is not None]
    names = tuple(name for name in config["parameters"] if len({repr(p.get(name)) for p in points}) > 1)
    return Grid(names=names, points=points, keys=[grid_key(point, names) for point in points])


def runs_to_stop(sweep: SweepRecord, runs: list[RunRecord], max_failures: int) -> list[tuple[str, str]]:
    """Hyperband's verdicts: (run id, reason) for running runs that fell below their band."""
    if "early_terminate" not in sweep.config:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        to_stop = sweep_engine().stop_runs(sweep.config, engine_runs(runs, max_failures), validate=False)
    metric = sweep.config["metric"]["name"]
    return [(run.name, f"hyperband: {metric} below the band threshold after {len(run.history)} epoch(s)")
            for run in to_stop]


def target_reached(sweep: SweepRecord, run_id: str, metrics: dict[str, Any]) -> str | None:
    """W&B's metric.target: once a run reaches it, no new runs start; those in flight finish."""
    metric = sweep.config.get("metric") or {}
    target, value = metric.get("target"), metrics.get(metric.get("name", ""))
    if target is None or value is None or sweep.state != "running":
        return None
    reached = value >= target if metric.get("goal") != "minimize" else value <= target
    return f"metric.target {metric['name']}={target} reached by run {run_id}" if reached else None


def needs_history(sweep: SweepRecord) -> bool:
    return sweep.config.get("method") == "bayes" or "early_terminate" in sweep.config


def engine_runs(runs: list[RunRecord], max_failures: int) -> list[Any]:
    """Store runs as W&B's engine sees them. Runs awaiting a retry look pending, not failed,
    so bayes neither imputes a bad score for them nor proposes them again."""
    engine = sweep_engine()
    return [engine.SweepRun(name=run.id, history=run.history,
                            state="pending" if run.state in ("failed", "crashed") and retries_left(run, max_failures)
                            else run.state,
                            config={k: {"value": v} for k, v in run.config.items()}) for run in runs]


def describe_states(runs: list[RunRecord]) -> str:
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.state] = counts.get(run.state, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in counts.items())


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
