"""Which run is best, ranked exactly as the sweep engine ranks runs.

The engine (`sweeps.SweepRun.metric_extremum`) scores a run by the best value
of the metric over its history plus its summary, in the direction of the goal.
We call that same function so the report and the search never disagree.
"""

from __future__ import annotations

import warnings
from typing import Literal

from pydantic import BaseModel

with warnings.catch_warnings():
    # sweeps declares a pydantic-v1 style Config; its warnings say nothing about the report.
    warnings.simplefilter("ignore")
    from sweeps import SweepRun

from store.records import BROKEN_STATES, RunRecord, SweepRecord
from report.errors import ReportError
from train.config import METRIC_GOALS

Goal = Literal["maximize", "minimize"]
UNFINISHED_STATES = frozenset({"pending", "running", "preempted"})


class Metric(BaseModel):
    name: str
    goal: Goal

    def better(self, a: float, b: float) -> bool:
        return a > b if self.goal == "maximize" else a < b


class RankedRun(BaseModel):
    run: RunRecord
    score: float  # the run's best metric value, as the engine computes it


def sweep_metric(sweep: SweepRecord) -> Metric:
    """The sweep's `metric: {name, goal}`; the goal defaults to the metric's natural direction."""
    spec = sweep.config.get("metric")
    if not isinstance(spec, dict) or not spec.get("name"):
        raise ReportError(f"sweep {sweep.id} has no metric to rank runs by (metric.name is missing)")
    goal = spec.get("goal") or METRIC_GOALS.get(spec["name"]) or "minimize"
    if goal not in ("maximize", "minimize"):
        raise ReportError(f"sweep {sweep.id}: metric.goal must be maximize or minimize, not {goal!r}")
    return Metric(name=spec["name"], goal=goal)


def run_score(run: RunRecord, metric: Metric) -> float | None:
    """The run's best metric value over history and summary, or None when it never reported one."""
    engine_run = SweepRun(name=run.id, state=run.state, history=run.history,
                          summary_metrics=_numeric_summary(run.summary))
    try:
        return float(engine_run.metric_extremum(metric.name, kind=metric.goal))
    except ValueError:
        return None


def rank_runs(runs: list[RunRecord], metric: Metric) -> list[RankedRun]:
    """Runs with a metric value, failed and crashed ones excluded, best first; ties keep creation order."""
    scored = [RankedRun(run=run, score=score) for run in sorted(runs, key=lambda r: r.created_at)
              if run.state not in BROKEN_STATES and (score := run_score(run, metric)) is not None]
    sign = -1.0 if metric.goal == "maximize" else 1.0
    return sorted(scored, key=lambda ranked: sign * ranked.score)


def best_finished_run(ranked: list[RankedRun], sweep_id: str) -> RankedRun:
    """The top-ranked run that finished: only a finished run has test results and predictions."""
    for candidate in ranked:
        if candidate.run.state == "finished":
            return candidate
    raise ReportError(f"sweep {sweep_id} has no finished run with a metric value yet; "
                      "run `sweep agent` or wait for a run to finish")


def _numeric_summary(summary: dict) -> dict:
    # The engine only reads scalar summary values; lists and dicts (confusion matrix, config) are noise to it.
    return {key: value for key, value in summary.items() if isinstance(value, (int, float))}
