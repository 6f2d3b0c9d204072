"""Faults with real processes and signals: SIGKILL, SIGTERM, a box where every run fails, bad input."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest
from agent_helpers import ROOT, AgentProcess, cli, created_id, start_agent, tiny_sweep

from store.sqlite import SQLiteStore

EPOCHS = 4  # long enough to stop a run in the middle, short enough for a fast suite


@pytest.fixture(autouse=True)
def quiet_wandb(monkeypatch) -> None:
    for name in ("SWEEP_HOME", "SWEEP_TRAIN_FN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "disabled")


def wait_for(condition, timeout: float = 180, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def holder(store: SQLiteStore, sweep_id: str, agents: list[AgentProcess]) -> tuple[AgentProcess, AgentProcess]:
    """(the agent training the sweep's only run, the other one), once the run has reported an epoch."""
    def started() -> bool:
        attempts = store.list_attempts(sweep_id)
        return bool(attempts) and bool(store.history_attempts(attempts[0].run_id))

    wait_for(started, what="the first epoch")
    owner_pid = int(store.list_attempts(sweep_id)[0].agent.rsplit(":", 1)[1])
    [busy] = [a for a in agents if a.pid == owner_pid]
    [other] = [a for a in agents if a is not busy]
    return busy, other


def assert_resumed_from_checkpoint(store: SQLiteStore, sweep_id: str, first_outcome: str) -> None:
    """One run, two attempts: the second started after the epochs the first finished and did not redo them."""
    [run] = store.list_runs(sweep_id)
    assert run.state == "finished" and [h["epoch"] for h in run.history] == list(range(1, EPOCHS + 1))
    first, second = store.list_attempts(sweep_id)
    assert first.outcome == first_outcome and second.outcome == "finished" and first.agent != second.agent
    reported_by = store.history_attempts(run.id)
    done_before = [e for e, attempt in reported_by.items() if attempt == 1]
    assert done_before == list(range(1, len(done_before) + 1)) and done_before, reported_by
    assert second.resumed_from_epoch >= len(done_before)
    assert all(attempt == 2 for e, attempt in reported_by.items() if e > second.resumed_from_epoch)
    assert store.get_sweep(sweep_id).state == "finished"


def test_sigkilled_agents_run_is_offered_again_after_lease_expiry_and_resumes(tmp_path: Path,
                                                                              tiny_data_dir: Path) -> None:
    home = tmp_path / "home"
    sweep_id = created_id(tiny_sweep(tmp_path, {"lr": [0.1]}, epochs=EPOCHS), home)
    store = SQLiteStore(home)
    agents = [start_agent(sweep_id, home, "--data-dir", str(tiny_data_dir), "--lease-seconds", "3")
              for _ in range(2)]
    try:
        victim, survivor = holder(store, sweep_id, agents)
        victim.process.send_signal(signal.SIGKILL)
        assert victim.wait() == -signal.SIGKILL
        assert survivor.wait() == 0, survivor.stderr()
    finally:
        for agent in agents:
            agent.kill()
    first = store.list_attempts(sweep_id)[0]
    assert "lease expired" in first.detail
    assert_resumed_from_checkpoint(store, sweep_id, "crashed")
    assert "resuming after epoch" in survivor.stdout()


def test_sigterm_checkpoints_marks_preempted_exits_zero_and_another_agent_resumes(tmp_path: Path,
                                                                                  tiny_data_dir: Path) -> None:
    home = tmp_path / "home"
    sweep_id = created_id(tiny_sweep(tmp_path, {"lr": [0.1]}, epochs=EPOCHS), home)
    store = SQLiteStore(home)
    agents = [start_agent(sweep_id, home, "--data-dir", str(tiny_data_dir)) for _ in range(2)]
    try:
        stopped, resumer = holder(store, sweep_id, agents)
        stopped.process.send_signal(signal.SIGTERM)
        assert stopped.wait(timeout=60) == 0, stopped.stderr()
        assert resumer.wait() == 0, resumer.stderr()
    finally:
        for agent in agents:
            agent.kill()
    first = store.list_attempts(sweep_id)[0]
    assert first.detail == "preempted: agent received SIGTERM"
    assert "preempted" in stopped.stdout()
    assert_resumed_from_checkpoint(store, sweep_id, "preempted")


def test_agent_on_a_broken_box_stops_after_the_failure_limit_with_reasons_stored(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sweep_id = created_id(tiny_sweep(tmp_path, {"batch_size": [16, 32, 64, 128, 256]}), home)
    broken = cli("agent", sweep_id, "--home", str(home), "--train-fn", "sweep_fakes:always_raises")
    assert broken.exit_code == 1
    assert broken.stderr.count("\n") == 1 and "stopped itself: 3 consecutive runs failed" in broken.stderr
    runs = SQLiteStore(home).list_runs(sweep_id)
    assert [r.state for r in runs] == ["failed"] * 3  # the other two configs were left for healthy boxes
    assert [r.failure for r in runs] == [f"RuntimeError: CUDA out of memory (simulated) at batch_size={b}"
                                         for b in (16, 32, 64)]

    healthy = cli("agent", sweep_id, "--home", str(home), "--train-fn", "bench.fake_train:instant_train")
    assert healthy.exit_code == 0, healthy.stderr
    runs = SQLiteStore(home).list_runs(sweep_id)
    assert [r.state for r in runs] == ["finished"] * 5
    assert [r.attempts for r in runs] == [2, 2, 2, 1, 1]  # the failed ones were retried, once each
    assert all(r.failure is None for r in runs)


def dump(home: Path) -> list[str]:
    connection = sqlite3.connect(home / "sweep.db")
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


BAD_FILES = {
    "malformed yaml": ("method: grid\nparameters:\n  lr: {values: [0.1, 0.2]\n", "invalid YAML at line"),
    "unknown method": ("method: annealing\nparameters:\n  lr: {value: 0.1}\n", "'annealing' is not one of"),
    "unknown parameter": ("method: grid\nparameters:\n  learning_rate: {value: 0.1}\n",
                          "unknown parameter 'learning_rate'; did you mean 'lr'?"),
    "model over budget": ("method: grid\nparameters:\n  model: {value: resnet9}\n  max_params: {value: 3000000}\n",
                          "'resnet9' has 4,958,958 trainable parameters, over max_params=3,000,000"),
}


@pytest.mark.parametrize("text, message", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_sweep_file_is_one_line_exit_2_and_store_untouched(tmp_path: Path, text: str, message: str) -> None:
    home = tmp_path / "home"
    created_id(ROOT / "sweeps" / "smoke.yaml", home)
    before = dump(home)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)

    result = cli("create", str(bad), "--home", str(home))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {bad}: ") and result.stderr.count("\n") == 1
    assert message in result.stderr
    assert dump(home) == before

    fresh = tmp_path / "fresh-home"
    assert cli("create", str(bad), "--home", str(fresh)).exit_code == 2
    assert not fresh.exists()  # not even an empty store


def test_missing_data_fails_the_agent_before_it_claims_a_run(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sweep_id = created_id(tiny_sweep(tmp_path, {"lr": [0.1]}), home)
    data = tmp_path / "data" / "cifar-10-batches-py"
    data.mkdir(parents=True)
    (data / "test_batch").write_bytes(b"")  # a folder someone started to copy
    before = dump(home)

    result = cli("agent", sweep_id, "--home", str(home), "--data-dir", str(tmp_path / "data"))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "cifar-10-batches-py" in result.stderr
    assert dump(home) == before


def test_unknown_sweep_id_is_one_line(tmp_path: Path) -> None:
    created_id(ROOT / "sweeps" / "smoke.yaml", tmp_path / "home")
    for command in (["agent", "nope1234"], ["status", "nope1234"], ["stop", "nope1234"]):
        result = cli(*command, "--home", str(tmp_path / "home"))
        assert result.exit_code == 2 and result.stderr.count("\n") == 1
        assert "no sweep 'nope1234'" in result.stderr
