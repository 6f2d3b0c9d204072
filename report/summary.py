"""From stored sweep and runs to a SweepReport (tables and importance; figures are added by build)."""

from __future__ import annotations

import math
from typing import Any

from store.records import RunRecord, SweepRecord
from report import panels
from report.model import RunRow, SweepReport
from report.parameters import parameter_value, swept_parameters
from report.seeds import pool_seeds
from report.select import UNFINISHED_STATES, best_finished_run, rank_runs, run_score, sweep_metric

TOP_RUNS = 10
STATE_ORDER = ("finished", "running", "pending", "preempted", "killed", "failed", "crashed")


def summarize(sweep: SweepRecord, runs: list[RunRecord]) -> SweepReport:
    """Raises ReportError when no run has finished with a metric value."""
    metric = sweep_metric(sweep)
    ranked = rank_runs(runs, metric)
    best = best_finished_run(ranked, sweep.id)
    parameters = swept_parameters(sweep.config)
    names = [p.name for p in parameters]
    leader = ranked[0] if ranked[0].run.id != best.run.id else None
    unfinished = sorted((r for r in runs if r.state in UNFINISHED_STATES), key=lambda r: r.created_at)
    states = {state: sum(r.state == state for r in runs) for state in STATE_ORDER}
    return SweepReport(
        sweep_id=sweep.id, backend=sweep.backend, sweep_state=sweep.state,
        method=str(sweep.config.get("method", "?")), metric=metric, run_count=len(runs),
        states={state: count for state, count in states.items() if count},
        best=run_row(best.run, best.score, names),
        best_model=best.run.summary.get("model") or best.run.config.get("model"),
        best_full_config=best.run.summary.get("config") or best.run.config,
        leader_unfinished=run_row(leader.run, leader.score, names) if leader else None,
        unfinished=[run_row(r, run_score(r, metric), names) for r in unfinished],
        top_runs=[run_row(r.run, r.score, names) for r in ranked[:TOP_RUNS]],
        parameters=names,
        influence=panels.importance(ranked, parameters),
        over_seeds=pool_seeds(ranked, names, metric),
    )


def run_row(run: RunRecord, score: float | None, parameter_names: list[str]) -> RunRow:
    last = run.history[-1] if run.history else {}
    chosen = {name: parameter_value(run.config, name) for name in parameter_names} or dict(run.config)
    return RunRow(
        id=run.id, state=run.state, score=score, epochs=len(run.history),
        val_acc=_number(last.get("val_acc")), test_acc=_number(run.summary.get("test_acc")),
        test_acc_tta=_number(run.summary.get("test_acc_tta")), params=_integer(run.summary.get("params")),
        wall_seconds=_wall_seconds(run), config=chosen,
    )


def _wall_seconds(run: RunRecord) -> float | None:
    if (seconds := _number(run.summary.get("total_seconds"))) is not None:
        return seconds
    if run.started_at is not None and run.finished_at is not None:
        return run.finished_at - run.started_at
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _integer(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None
