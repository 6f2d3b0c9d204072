"""The controller's decisions as pure functions over records: no database."""

from __future__ import annotations

import json

from agent import decisions
from agent.sweep_config import validate_sweep
from store.records import RunRecord, SweepRecord


def sweep(points: int = 3, **extra) -> SweepRecord:
    config = validate_sweep({"method": "grid", "metric": {"name": "val_acc", "goal": "maximize"},
                             "parameters": {"seed": {"values": list(range(points))}}, **extra}).config
    return SweepRecord(id="s1", config=config, created_at=0.0)


def run(run_id: str, seed: int, state: str, **fields) -> RunRecord:
    return RunRecord(id=run_id, sweep_id="s1", state=state, config={"seed": seed}, created_at=float(seed), **fields)


def test_a_fresh_grid_proposes_its_first_point() -> None:
    decision = decisions.next_claim(sweep(), [], max_failures=3, now=100.0)
    assert isinstance(decision, decisions.New) and decision.config == {"seed": 0}


def test_preempted_runs_resume_before_crashed_ones_and_both_before_new_points() -> None:
    runs = [run("a", 0, "crashed", failures=1), run("b", 1, "preempted")]
    assert decisions.next_claim(sweep(), runs, 3, 100.0) == decisions.Resume(run_id="b")
    assert decisions.next_claim(sweep(), runs[:1], 3, 100.0) == decisions.Resume(run_id="a")


def test_failed_runs_retry_only_after_every_new_point() -> None:
    runs = [run("a", 0, "failed", failures=1)]
    assert isinstance(decisions.next_claim(sweep(2), runs, 3, 100.0), decisions.New)
    runs.append(run("b", 1, "finished"))
    assert decisions.next_claim(sweep(2), runs, 3, 100.0) == decisions.Resume(run_id="a")


def test_a_diverged_run_is_a_result_and_never_retried() -> None:
    runs = [run("a", 0, "failed", failures=1, retryable=False), run("b", 1, "finished")]
    decision = decisions.next_claim(sweep(2), runs, 3, 100.0)
    assert isinstance(decision, decisions.Done) and decision.complete


def test_runs_out_of_retries_leave_the_grid_incomplete_with_their_ids() -> None:
    runs = [run("a", 0, "crashed", failures=3), run("b", 1, "failed", failures=3), run("c", 2, "finished")]
    decision = decisions.next_claim(sweep(), runs, 3, 100.0)
    assert isinstance(decision, decisions.Done) and not decision.complete
    assert decision.without_result == ["a", "b"] and "sweep retry s1" in decision.reason


def test_an_exhausted_grid_with_a_live_run_waits_until_its_lease_could_expire() -> None:
    runs = [run("a", 0, "running", lease_expires_at=100.5), run("b", 1, "finished"), run("c", 2, "finished")]
    decision = decisions.next_claim(sweep(), runs, 3, now=100.0)
    assert isinstance(decision, decisions.Wait) and 0.2 <= decision.seconds <= 0.5


def test_run_cap_and_a_stopped_sweep_end_claims() -> None:
    assert "run_cap 1 reached" in decisions.next_claim(sweep(run_cap=1), [run("a", 0, "finished")], 3, 0.0).reason
    stopped = sweep().model_copy(update={"state": "stopped", "state_reason": "stopped by `sweep stop`"})
    decision = decisions.next_claim(stopped, [], 3, 0.0)
    assert isinstance(decision, decisions.Done) and "stopped" in decision.reason


def test_metric_target_is_reached_in_the_goal_direction() -> None:
    target = sweep(metric={"name": "val_loss", "goal": "minimize", "target": 0.5})
    assert decisions.target_reached(target, "r", {"val_loss": 0.4}) is not None
    assert decisions.target_reached(target, "r", {"val_loss": 0.6}) is None


def test_hyperband_names_the_lagging_run() -> None:
    bands = sweep(4, early_terminate={"type": "hyperband", "min_iter": 1, "eta": 2})
    history = lambda acc: [{"epoch": 1, "val_acc": acc}]  # noqa: E731
    runs = [run("a", 0, "running", history=history(0.9)), run("b", 1, "running", history=history(0.8)),
            run("c", 2, "running", history=history(0.2))]
    assert [run_id for run_id, _ in decisions.runs_to_stop(bands, runs, 3)] == ["c"]


def drain(config: dict) -> list[dict]:
    """Every configuration a grid hands out, one new run after another."""
    record = SweepRecord(id="s1", config=validate_sweep(config).config, created_at=0.0)
    runs: list[RunRecord] = []
    while isinstance(decision := decisions.next_claim(record, runs, max_failures=3, now=0.0), decisions.New):
        runs.append(RunRecord(id=f"r{len(runs)}", sweep_id="s1", state="running", config=decision.config,
                              created_at=0.0, lease_expires_at=1e12))
    return [r.config for r in runs]


def test_the_cached_grid_hands_out_what_wandbs_engine_would_in_its_order() -> None:
    from agent.engine import sweep_engine

    config = {"method": "grid", "metric": {"name": "val_acc", "goal": "maximize"},
              "parameters": {"lr": {"values": [0.01, 0.1, 1.0]}, "optimizer": {"values": ["sgd", "adam"]},
                             "channels_last": {"values": [True, False]}, "epochs": {"value": 2},
                             "batch_size": {"values": [64, 128]}}}
    handed = drain(config)
    engine, expected = sweep_engine(), []
    while (suggestion := engine.next_run(validate_sweep(config).config, [
            engine.SweepRun(name=str(i), state="running", config={k: {"value": v} for k, v in c.items()})
            for i, c in enumerate(expected)])) is not None:
        expected.append({k: spec["value"] for k, spec in suggestion.config.items()})
    assert len(handed) == 24 and handed == expected
    validated = validate_sweep(config).config  # and the fast path handed them out, not the engine:
    assert decisions.whole_grid(json.dumps(validated, sort_keys=True)) is not None


def test_an_integral_float_in_a_run_matches_its_int_grid_point() -> None:
    record = sweep(points=2)
    runs = [run("a", 0, "finished"), RunRecord(id="b", sweep_id="s1", state="finished", config={"seed": 1.0},
                                               created_at=1.0)]
    decision = decisions.next_claim(record, runs, max_failures=3, now=0.0)
    assert isinstance(decision, decisions.Done) and decision.complete


def test_a_grid_the_cache_cannot_key_still_goes_through_the_engine() -> None:
    config = {"method": "grid", "metric": {"name": "val_acc", "goal": "maximize"},
              "parameters": {"seed": {"distribution": "int_uniform", "min": 0, "max": 3}}}
    assert decisions.whole_grid(json.dumps(validate_sweep(config).config, sort_keys=True)) is None
    assert sorted(c["seed"] for c in drain(config)) == [0, 1, 2, 3]
