"""PostgreSQL stopped for 30 s under a real (tiny) training run: the run finishes, nothing counts as a failure.

Also the many-hosts benchmark at the test suite's size: three simulated hosts sharing only the
store URL and the artifact root, agents SIGKILLed at random, the server restarted once.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from agent_helpers import start_agent, tiny_sweep

from bench import hosts
from store.open import open_store

OUTAGE_S = 30


@pytest.fixture
def own_postgres():
    """A server of this test's own: it is stopped and started again."""
    from bench.postgres_server import PostgresServer

    try:
        server = PostgresServer()
    except (RuntimeError, OSError) as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the PostgreSQL tests must run under CI, but the server did not start: {error}")
        pytest.skip(f"no PostgreSQL server: {error}")
    yield server
    server.close()


def test_a_30_second_store_outage_mid_epoch_fails_nothing_and_the_agent_goes_on(own_postgres, tmp_path: Path,
                                                                               tiny_data_dir: Path) -> None:
    url = own_postgres.new_database()
    artifacts = tmp_path / "artifacts"
    store = open_store(url, home=tmp_path / "login", create=True)
    from agent.sweep_config import load_sweep_file

    sweep = store.create_sweep(load_sweep_file(tiny_sweep(tmp_path, {"lr": [0.1, 0.2]}, epochs=4)).config)
    agent = start_agent(sweep.id, tmp_path / "node", "--data-dir", str(tiny_data_dir), SWEEP_STORE=url,
                        SWEEP_ARTIFACTS=str(artifacts))
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            runs = store.list_runs(sweep.id, with_history=False)
            if runs and runs[0].epochs_done >= 1:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"no epoch recorded: {agent.stderr()}")
        store.close()
        own_postgres.stop()  # the first run is in its second epoch
        stopped = time.monotonic()
        time.sleep(OUTAGE_S)
        assert agent.process.poll() is None, agent.stderr()  # the agent waits the outage out
        own_postgres.start()
        assert agent.wait(timeout=900) == 0, agent.stderr()
        assert time.monotonic() - stopped >= OUTAGE_S
    finally:
        agent.kill()
    runs = store.list_runs(sweep.id)
    assert [r.state for r in runs] == ["finished", "finished"]  # the agent went on to the second run
    assert [r.attempts for r in runs] == [1, 1] and [r.failures for r in runs] == [0, 0]
    assert [[h["epoch"] for h in r.history] for r in runs] == [list(range(1, 5))] * 2
    assert all(a.outcome == "finished" for a in store.list_attempts(sweep.id))


def test_three_hosts_one_sweep_with_kills_and_a_server_restart_lose_and_double_nothing(tmp_path: Path,
                                                                                        own_postgres) -> None:
    result = hosts.run(hosts=3, agents=4, points=24, epochs=3, work_ms=300, kill_every=(6.0, 12.0),
                       restart_at=0.2, lease_s=20.0, seed=1, root=tmp_path, server=own_postgres, max_kills=3)
    assert result["postgres_restarted"] and result["kills"] >= 1, json.dumps(result)
    assert result["finished_exactly_once"] == result["grid_points"] == result["runs"] == 25, json.dumps(result)
    assert result["lost"] == result["duplicated"] == result["failed"] == result["runs_with_a_failed_attempt"] == 0, \
        json.dumps(result)


def test_a_server_restart_gives_every_lease_a_full_term_before_it_can_be_reaped(own_postgres, tmp_path: Path) -> None:
    from agent.controller import Controller, Idle

    url = own_postgres.new_database()
    store = open_store(url, home=tmp_path, create=True)
    sweep = store.create_sweep({"method": "grid", "metric": {"name": "val_acc", "goal": "maximize"},
                                "parameters": {"seed": {"values": [0, 1]}}})
    controller = Controller(store)
    held = controller.claim(sweep.id, "a@host:1", 4.0)  # its agent can renew nothing while the server is down
    assert not isinstance(held, Idle)
    own_postgres.stop("fast")
    time.sleep(5)  # past the lease's expiry
    own_postgres.start()
    other = controller.claim(sweep.id, "b@host:2", 4.0)
    assert not isinstance(other, Idle) and other.lease.run_id != held.lease.run_id
    assert store.get_run(held.lease.run_id).state == "running"  # not reaped: the restart gives it a term
    assert store.heartbeat(held.lease) is None  # and its agent, back, renews it
    time.sleep(4.5)
    controller.claim(sweep.id, "c@host:3", 4.0)  # a term after its last beat: now it is reaped (and resumed by c)
    first = [a for a in store.list_attempts(sweep.id) if a.run_id == held.lease.run_id and a.attempt == 1]
    assert [a.outcome for a in first] == ["crashed"]
