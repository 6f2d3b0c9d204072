"""Fencing and clocks, on both stores with real agent processes and signals.

A zombie (an agent frozen past its lease while another attempt takes its run) writes nothing the
store or the resuming attempt accepts; an agent whose clock is ten minutes off neither reaps a live
run nor loses its own lease.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from agent_helpers import TESTS, start_agent

from agent.controller import Claim, Controller
from agent.sweep_config import validate_sweep


def sweep_of(store, points: int, epochs: int):
    spec = validate_sweep({"method": "grid", "metric": {"name": "val_acc", "goal": "maximize"},
                           "parameters": {"seed": {"values": list(range(points))}, "epochs": {"value": epochs},
                                          "model": {"value": "fast"}}})
    return store.create_sweep(spec.config)


def store_env(store_url: str) -> dict[str, str]:
    return {"SWEEP_STORE": store_url, "SWEEP_ARTIFACTS": os.environ["SWEEP_ARTIFACTS"]}


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_zombie_resumed_inside_its_epoch_end_write_writes_nothing(store, store_url: str, tmp_path: Path) -> None:
    sweep = sweep_of(store, points=1, epochs=3)
    marker = tmp_path / "frozen"
    zombie = start_agent(sweep.id, tmp_path / "zombie-home", "--lease-seconds", "2",
                         "--train-fn", "sweep_fakes:pauses_in_epoch_end_write", PAUSE_MARKER=str(marker),
                         BENCH_WORK_MS="50", **store_env(store_url))
    try:
        # The zombie has written epoch 2's checkpoint and stopped itself before telling the store.
        wait_for(marker.exists, 120, "the agent to reach its epoch-end write")
        wait_for(lambda: process_state(zombie.pid) == "T", 10, "the agent to be stopped")
        frozen_checkpoint = Path(marker.read_text())
        assert frozen_checkpoint.is_file() and frozen_checkpoint.parent.name == "attempt-1"
        time.sleep(2.5)  # past its lease by the database's clock

        controller = Controller(store)
        fresh = controller.claim(sweep.id, "fresh-agent", 30)
        assert isinstance(fresh, Claim) and fresh.lease.attempt == 2
        assert fresh.resumed_from_epoch == 1  # epoch 2 was never recorded
        assert Path(fresh.resume_from[0]).name == "checkpoint-0001.json"  # the store's checkpoint, not the newer file

        zombie.process.send_signal(signal.SIGCONT)  # it wakes up exactly inside its epoch-end write
        wait_for(lambda: "lease expired" in zombie.stdout() or "lost" in zombie.stdout(), 30,
                 "the zombie to notice it lost the run")
        run = store.get_run(fresh.lease.run_id)
        assert [h["epoch"] for h in run.history] == [1]
        assert store.history_attempts(run.id) == {1: 1}
        assert run.state == "running" and run.owner == "fresh-agent"
        assert run.checkpoint.endswith("attempt-1/checkpoint-0001.json")

        # The resuming attempt's own writes are accepted.
        controller.report_epoch(fresh.lease, {"epoch": 2, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0,
                                              "val_acc": 0.5, "lr": 0.1, "epoch_seconds": 0.1,
                                              "images_per_second": 1.0})
        assert store.history_attempts(run.id) == {1: 1, 2: 2}
    finally:
        zombie.process.send_signal(signal.SIGCONT)
        zombie.kill()


@pytest.mark.parametrize("skews", [(600, -600), (-600, 600)], ids=["ahead-and-behind", "behind-and-ahead"])
def test_agents_with_clocks_ten_minutes_off_neither_reap_live_runs_nor_lose_leases(store, store_url: str,
                                                                                    tmp_path: Path, skews) -> None:
    sweep = sweep_of(store, points=2, epochs=8)
    env = dict(store_env(store_url), BENCH_WORK_MS="400",
               PYTHONPATH=os.pathsep.join([str(TESTS / "skewed_clock"), str(TESTS.parent), str(TESTS)]))
    # Each run takes 3.2 s, longer than its 2-second lease: only heartbeats keep it.
    agents = [start_agent(sweep.id, tmp_path / f"home-{i}", "--lease-seconds", "2", "--train-fn",
                          "bench.fake_train:instant_train", CLOCK_SKEW_S=str(skew), **env)
              for i, skew in enumerate(skews)]
    for agent in agents:
        assert agent.wait(timeout=180) == 0, agent.stderr()
    runs = store.list_runs(sweep.id)
    assert [r.state for r in runs] == ["finished", "finished"]
    assert [r.attempts for r in runs] == [1, 1]  # nobody reaped a live run; nobody lost a lease
    assert all(a.outcome == "finished" for a in store.list_attempts(sweep.id))
