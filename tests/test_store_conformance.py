"""The store conformance suite: every claim, lease, fencing, reaping and retry rule, run against a real
SQLite file and a real PostgreSQL server (the `store` fixture is parametrized over both)."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from agent.controller import Claim, Controller, Idle
from store.records import RunSource
from store.errors import LeaseLost, SweepNotFound
from store.open import open_store
from store.sqlite import SQLiteStore
from agent.sweep_config import load_sweep_file, validate_sweep

ROOT = Path(__file__).resolve().parents[1]


def grid(points: int = 4, **extra) -> dict:
    return validate_sweep({"method": "grid", "metric": {"name": "val_acc", "goal": "maximize"},
                           "parameters": {"seed": {"values": list(range(points))}}, **extra}).config


def epoch(n: int, val_acc: float) -> dict:
    return {"epoch": n, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": val_acc, "lr": 0.1,
            "epoch_seconds": 0.1, "images_per_second": 10.0}


def result(history: list[dict]) -> dict:
    return {"status": "finished", "history": history, "test_acc": history[-1]["val_acc"], "params": 1}


def drain(controller: Controller, sweep_id: str, owner: str = "a", lease_s: float = 30) -> list[Claim]:
    claims = []
    while isinstance(claim := controller.claim(sweep_id, owner, lease_s), Claim):
        claims.append(claim)
        controller.report_epoch(claim.lease, epoch(1, 0.5))
        controller.finish(claim.lease, result([epoch(1, 0.5)]))
    return claims


def test_store_lives_in_one_wal_file_under_sweep_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SWEEP_HOME", str(tmp_path / "home"))
    store = SQLiteStore()
    store.create_sweep(grid())
    assert store.db_path == tmp_path / "home" / "sweep.db"
    mode = sqlite3.connect(store.db_path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_reading_a_missing_store_creates_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "absent")
    assert store.list_sweeps() == []
    with pytest.raises(SweepNotFound, match="does not exist"):
        store.get_sweep("abc")
    assert not (tmp_path / "absent").exists()


def test_grid_yaml_is_claimed_config_by_config_each_exactly_once(store) -> None:
    sweep = store.create_sweep(load_sweep_file(ROOT / "sweeps" / "grid.yaml").config)
    controller = Controller(store)
    claims = drain(controller, sweep.id)
    configs = Counter(json.dumps(c.config, sort_keys=True) for c in claims)
    assert len(configs) == 108 and set(configs.values()) == {1}
    final = controller.claim(sweep.id, "a", 30)
    assert isinstance(final, Idle) and final.done and "grid exhausted" in final.reason
    assert store.get_sweep(sweep.id).state == "finished"


def test_local_store_is_a_run_source_with_history_summary_and_run_dir(store) -> None:
    sweep = store.create_sweep(grid(2))
    drain(Controller(store), sweep.id)
    source: RunSource = store
    runs = source.list_runs(sweep.id)
    assert [r.state for r in runs] == ["finished", "finished"]
    assert runs[0].history == [epoch(1, 0.5)]
    assert runs[0].summary == {"status": "finished", "test_acc": 0.5, "params": 1}
    assert store.run_path(runs[0]) == store.artifacts / sweep.id / runs[0].id
    assert source.get_sweep(sweep.id).config["method"] == "grid"


def test_expired_lease_marks_run_crashed_and_it_is_offered_again_with_its_history(store) -> None:
    sweep = store.create_sweep(grid(2))
    controller = Controller(store)
    first = controller.claim(sweep.id, "dead-agent", lease_seconds=0.2)
    controller.report_epoch(first.lease, epoch(1, 0.4))
    time.sleep(0.3)  # no heartbeat: the agent is gone

    again = controller.claim(sweep.id, "live-agent", lease_seconds=30)
    assert again.lease.run_id == first.lease.run_id and again.lease.attempt == 2
    assert again.resumed_from_epoch == 1 and again.config == first.config
    attempts = store.list_attempts(sweep.id)
    assert attempts[0].outcome == "crashed" and "lease expired: agent dead-agent" in attempts[0].detail
    assert attempts[1].agent == "live-agent"


def test_agent_that_lost_its_lease_cannot_write(store) -> None:
    sweep = store.create_sweep(grid(1))
    controller = Controller(store)
    zombie = controller.claim(sweep.id, "zombie", lease_seconds=0.1)
    time.sleep(0.2)
    fresh = controller.claim(sweep.id, "fresh", lease_seconds=30)
    with pytest.raises(LeaseLost):
        controller.report_epoch(zombie.lease, epoch(1, 0.9))
    with pytest.raises(LeaseLost):
        controller.finish(zombie.lease, result([epoch(1, 0.9)]))
    controller.finish(fresh.lease, result([epoch(1, 0.3)]))
    assert store.list_runs(sweep.id)[0].history == [epoch(1, 0.3)]


def test_failed_run_is_retried_after_new_configs_until_the_retry_limit(store) -> None:
    sweep = store.create_sweep(grid(2))
    controller = Controller(store, max_failures=2)
    bad = controller.claim(sweep.id, "a", 30)
    controller.fail(bad.lease, "RuntimeError: CUDA out of memory")
    other = controller.claim(sweep.id, "a", 30)
    assert other.lease.run_id != bad.lease.run_id  # new configurations go before retries
    controller.finish(other.lease, result([epoch(1, 0.5)]))
    retry = controller.claim(sweep.id, "b", 30)
    assert retry.lease.run_id == bad.lease.run_id and retry.lease.attempt == 2
    controller.fail(retry.lease, "RuntimeError: CUDA out of memory again")
    done = controller.claim(sweep.id, "b", 30)
    assert isinstance(done, Idle) and done.done
    run = store.get_run(bad.lease.run_id)
    assert run.state == "failed" and run.failure == "RuntimeError: CUDA out of memory again"
    assert [a.detail for a in store.list_attempts(sweep.id) if a.run_id == run.id] == [
        "RuntimeError: CUDA out of memory", "RuntimeError: CUDA out of memory again"]


def test_preempted_run_is_resumed_first_without_counting_as_a_failure(store) -> None:
    sweep = store.create_sweep(grid(3))
    controller = Controller(store, max_failures=1)
    claim = controller.claim(sweep.id, "a", 30)
    controller.preempt(claim.lease, "preempted: agent received SIGTERM")
    resumed = controller.claim(sweep.id, "b", 30)
    assert resumed.lease.run_id == claim.lease.run_id
    controller.preempt(resumed.lease, "preempted: agent received SIGTERM")
    assert controller.claim(sweep.id, "c", 30).lease.run_id == claim.lease.run_id


def test_run_cap_bounds_a_random_sweep(store) -> None:
    config = validate_sweep({"method": "random", "run_cap": 3, "metric": {"name": "val_acc"},
                             "parameters": {"lr": {"distribution": "log_uniform_values", "min": 0.01, "max": 1.0}}})
    sweep = store.create_sweep(config.config)
    claims = drain(Controller(store), sweep.id)
    assert len(claims) == 3 and len({c.config["lr"] for c in claims}) == 3
    assert "run_cap 3 reached" in (store.get_sweep(sweep.id).state_reason or "")


def test_bayes_sweep_proposes_configs_from_reported_metrics(store) -> None:
    config = validate_sweep({"method": "bayes", "run_cap": 4, "metric": {"name": "val_acc"},
                             "parameters": {"lr": {"min": 0.01, "max": 1.0}}})
    sweep = store.create_sweep(config.config)
    claims = drain(Controller(store), sweep.id)
    assert len(claims) == 4 and all(0.01 <= c.config["lr"] <= 1.0 for c in claims)


def test_metric_target_finishes_the_sweep_for_every_agent(store) -> None:
    sweep = store.create_sweep(grid(10, metric={"name": "val_acc", "goal": "maximize", "target": 0.9}))
    controller = Controller(store)
    first, second = controller.claim(sweep.id, "a", 30), controller.claim(sweep.id, "b", 30)
    controller.report_epoch(first.lease, epoch(1, 0.95))
    late = controller.claim(sweep.id, "c", 30)
    assert isinstance(late, Idle) and late.done and "metric.target" in late.reason
    controller.report_epoch(second.lease, epoch(1, 0.5))  # runs in flight still finish
    controller.finish(second.lease, result([epoch(1, 0.5)]))
    assert store.get_sweep(sweep.id).state == "finished"


def test_hyperband_asks_the_lagging_run_to_stop_as_epochs_are_reported(store) -> None:
    sweep = store.create_sweep(grid(4, early_terminate={"type": "hyperband", "min_iter": 1, "eta": 2}))
    controller = Controller(store)
    leader, second, laggard = (controller.claim(sweep.id, owner, 30) for owner in "abc")
    assert controller.report_epoch(leader.lease, epoch(1, 0.9)) is None
    assert controller.report_epoch(second.lease, epoch(1, 0.8)) is None
    reason = controller.report_epoch(laggard.lease, epoch(1, 0.2))
    assert reason is not None and reason.startswith("hyperband")
    assert controller.heartbeat(laggard.lease) == reason  # the agent also hears it between epochs


def test_stop_command_ends_claims_and_cancel_flags_running_runs(store) -> None:
    sweep = store.create_sweep(grid(4))
    controller = Controller(store)
    running = controller.claim(sweep.id, "a", 30)
    controller.stop_sweep(sweep.id, cancel=True)
    assert "cancelled" in controller.heartbeat(running.lease)
    idle = controller.claim(sweep.id, "b", 30)
    assert isinstance(idle, Idle) and idle.done and "stopped" in idle.reason


def _claim_loop(url: str, sweep_id: str, owner: str, out: str) -> None:
    store, seen = open_store(url), []
    controller = Controller(store)
    while True:
        claim = controller.claim(sweep_id, owner, 30)
        if isinstance(claim, Idle):
            if claim.done:
                break
            time.sleep(claim.retry_after)
            continue
        controller.report_epoch(claim.lease, epoch(1, 0.5))
        controller.finish(claim.lease, result([epoch(1, 0.5)]))
        seen.append(claim.lease.run_id)
    Path(out).write_text(json.dumps(seen))


def test_eight_processes_claiming_together_never_share_a_run(store, store_url: str, tmp_path: Path) -> None:
    sweep = store.create_sweep(grid(120))
    context = multiprocessing.get_context("fork")
    outs = [tmp_path / f"claims-{i}.json" for i in range(8)]
    workers = [context.Process(target=_claim_loop, args=(store_url, sweep.id, f"p{i}", str(outs[i])))
               for i in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * 8
    claimed = [run_id for out in outs for run_id in json.loads(out.read_text())]
    runs = store.list_runs(sweep.id)
    assert len(claimed) == len(set(claimed)) == len(runs) == 120
    assert Counter(r.state for r in runs) == {"finished": 120}
    assert sorted(r.config["seed"] for r in runs) == list(range(120))
