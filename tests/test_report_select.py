"""Best-run selection: the engine's ranking (best value over history, goal-aware), broken runs excluded."""

from __future__ import annotations

import pytest

from store.records import RunRecord, SweepRecord
from report.errors import ReportError
from report.select import Metric, best_finished_run, rank_runs, run_score, sweep_metric


def run(run_id: str, state: str, values: list[float], metric: str = "val_acc", created: float = 0.0,
        summary: dict | None = None) -> RunRecord:
    history = [{"epoch": i + 1, metric: v} for i, v in enumerate(values)]
    return RunRecord(id=run_id, sweep_id="s", state=state, config={}, history=history, summary=summary or {},
                     created_at=created)


def sweep(metric: dict | None) -> SweepRecord:
    config = {"method": "random", "parameters": {}} | ({"metric": metric} if metric is not None else {})
    return SweepRecord(id="s", config=config, created_at=0.0)


def test_score_is_the_best_value_over_history_in_the_goal_direction():
    record = run("a", "finished", [0.5, 0.9, 0.7], metric="val_loss")
    assert run_score(record, Metric(name="val_loss", goal="maximize")) == pytest.approx(0.9)
    assert run_score(record, Metric(name="val_loss", goal="minimize")) == pytest.approx(0.5)


def test_a_numeric_summary_value_counts_as_the_engine_counts_it():
    record = run("a", "finished", [0.5], summary={"val_acc": 0.8, "confusion_matrix": [[1]], "config": {}})
    assert run_score(record, Metric(name="val_acc", goal="maximize")) == pytest.approx(0.8)


def test_a_run_that_never_reported_the_metric_has_no_score():
    record = run("a", "finished", [0.5], metric="train_acc")
    assert run_score(record, Metric(name="val_acc", goal="maximize")) is None


def test_failed_and_crashed_runs_are_never_ranked_even_with_the_best_value():
    runs = [run("ok", "finished", [0.6]), run("f", "failed", [0.99]), run("c", "crashed", [0.98]),
            run("k", "killed", [0.7])]
    ranked = rank_runs(runs, Metric(name="val_acc", goal="maximize"))
    assert [r.run.id for r in ranked] == ["k", "ok"]


def test_minimize_ranks_the_lowest_loss_first():
    runs = [run("high", "finished", [2.0, 1.5], "val_loss"), run("low", "finished", [1.9, 0.4, 0.8], "val_loss")]
    ranked = rank_runs(runs, Metric(name="val_loss", goal="minimize"))
    assert [r.run.id for r in ranked] == ["low", "high"]
    assert ranked[0].score == pytest.approx(0.4)


def test_ties_keep_creation_order():
    runs = [run("second", "finished", [0.5], created=2.0), run("first", "finished", [0.5], created=1.0)]
    assert [r.run.id for r in rank_runs(runs, Metric(name="val_acc", goal="maximize"))] == ["first", "second"]


def test_best_is_the_top_finished_run_even_when_a_running_run_leads():
    runs = [run("lead", "running", [0.95]), run("done", "finished", [0.7]), run("worse", "finished", [0.6])]
    ranked = rank_runs(runs, Metric(name="val_acc", goal="maximize"))
    assert ranked[0].run.id == "lead"
    assert best_finished_run(ranked, "s").run.id == "done"


def test_no_finished_run_is_a_clear_error():
    ranked = rank_runs([run("r", "running", [0.5]), run("f", "failed", [0.9])],
                       Metric(name="val_acc", goal="maximize"))
    with pytest.raises(ReportError, match="sweep s has no finished run"):
        best_finished_run(ranked, "s")


def test_goal_comes_from_the_sweep_or_the_metric_natural_direction():
    assert sweep_metric(sweep({"name": "val_loss", "goal": "maximize"})).goal == "maximize"
    assert sweep_metric(sweep({"name": "val_loss"})).goal == "minimize"
    assert sweep_metric(sweep({"name": "val_acc"})).goal == "maximize"


def test_a_sweep_without_a_metric_cannot_be_ranked():
    with pytest.raises(ReportError, match="no metric"):
        sweep_metric(sweep(None))
