"""Which run is best: the store's one rule (store.records), which scores a run as the sweep engine does.

The engine (`sweeps.SweepRun.metric_extremum`) scores a run by the best finite value of the metric
over its history plus its summary, in the direction of the goal; store.records.run_score computes
the same without building the engine's run object, so status, report and dashboard never disagree.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from store import records
from store.records import RunRecord, SweepRecord
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
    return records.run_score(run, metric.name, metric.goal)


def rank_runs(runs: list[RunRecord], metric: Metric) -> list[RankedRun]:
    """Runs with a metric value, failed and crashed ones excluded, best first; ties keep creation order."""
    return [RankedRun(run=run, score=score) for run, score in records.rank_runs(runs, metric.name, metric.goal)]


def best_finished_run(ranked: list[RankedRun], sweep_id: str) -> RankedRun:
    """The top-ranked run that finished: only a finished run has test results and predictions."""
    for candidate in ranked:
        if candidate.run.state == "finished":
            return candidate
    raise ReportError(f"sweep {sweep_id} has no finished run with a metric value yet; "
                      "run `sweep agent` or wait for a run to finish")
