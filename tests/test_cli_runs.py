"""`sweep runs ID` and `sweep run RUN_ID` on a real store, with real tiny runs trained by real agents."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import pytest
from agent_helpers import cli, created_id, start_agent, tiny_sweep
from conftest import write_tiny_cifar


SWEEP_ENV = ("SWEEP_HOME", "SWEEP_STORE", "SWEEP_TRAIN_FN", "WANDB_DIR", "WANDB_API_KEY")  # settings a test must not inherit


@pytest.fixture(autouse=True)
def clean_env(monkeypatch) -> None:
    for name in SWEEP_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "disabled")


def as_json(*args: str) -> object:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def wait_for(predicate, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def mixed_sweep(tmp_path_factory) -> tuple[str, Path]:
    """Three tiny real runs, two finished and one failed (its train function raised), by one agent process.
    Trained once for the module: the tests that use it only read."""
    root = tmp_path_factory.mktemp("mixed")
    home = root / "home"
    with pytest.MonkeyPatch.context() as env:
        for name in SWEEP_ENV:
            env.delenv(name, raising=False)
        sweep_id = created_id(tiny_sweep(root, {"lr": [0.1, 1.0, 0.2]}), home)
    agent = start_agent(sweep_id, home, "--data-dir", str(write_tiny_cifar(root / "data")), "--max-failures", "5",
                        SWEEP_TRAIN_FN="cli_fakes:fails_at_lr_1")
    # A grid point without a result: the agent says so and exits 3 (`sweep retry` would offer it again).
    assert agent.wait() == 3 and "incomplete" in agent.stderr(), agent.stderr()
    return sweep_id, home


def test_runs_lists_every_run_and_filters_by_state(mixed_sweep: tuple[str, Path]) -> None:
    sweep_id, home = mixed_sweep
    listing = as_json("runs", sweep_id, "--home", str(home))
    assert listing["sweep_id"] == sweep_id and listing["metric"] == "val_acc" and listing["searched"] == ["lr"]
    by_lr = {run["config"]["lr"]: run for run in listing["runs"]}
    assert sorted(by_lr) == [0.1, 0.2, 1.0]
    assert [by_lr[lr]["state"] for lr in (0.1, 0.2, 1.0)] == ["finished", "finished", "failed"]
    for lr in (0.1, 0.2):
        run = by_lr[lr]
        assert run["epochs_done"] == 2 and 0 <= run["best_metric"] <= 1 and run["test_acc"] is not None
    assert "simulated failure" in by_lr[1.0]["failure"] and by_lr[1.0]["best_metric"] is None

    failed = as_json("runs", sweep_id, "--state", "failed", "--home", str(home))
    assert [run["id"] for run in failed["runs"]] == [by_lr[1.0]["id"]]
    finished = as_json("runs", sweep_id, "--state", "finished", "--home", str(home))
    assert {run["id"] for run in finished["runs"]} == {by_lr[0.1]["id"], by_lr[0.2]["id"]}

    table = cli("runs", sweep_id, "--state", "failed", "--home", str(home))
    assert table.exit_code == 0 and "1 run (failed runs)" in table.stdout and "simulated failure" in table.stdout
    assert "3 runs" in cli("runs", sweep_id, "--home", str(home)).stdout


def test_runs_refuses_an_unknown_state_and_an_unknown_sweep(mixed_sweep: tuple[str, Path]) -> None:
    sweep_id, home = mixed_sweep
    bad_state = cli("runs", sweep_id, "--state", "done", "--home", str(home))
    assert bad_state.exit_code == 2 and "done" in bad_state.stderr
    unknown = cli("runs", "nosuchid", "--home", str(home))
    assert unknown.exit_code == 2 and "nosuchid" in unknown.stderr and "Traceback" not in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1


def test_a_failed_runs_traceback_and_reason_are_readable_through_sweep_run(mixed_sweep: tuple[str, Path]) -> None:
    sweep_id, home = mixed_sweep
    [failed] = as_json("runs", sweep_id, "--state", "failed", "--home", str(home))["runs"]
    details = as_json("run", failed["id"], "--home", str(home))
    assert details["state"] == "failed" and "simulated failure" in details["failure"]
    assert details["attempts"], "a failed run has at least one attempt"
    last = details["attempts"][-1]
    assert last["outcome"] == "failed" and "simulated failure" in last["detail"]
    traceback = "\n".join(last["traceback"] or [])
    assert "in fails_at_lr_1" in traceback, last  # the frame that raised, near the end of the traceback
    assert "RuntimeError: simulated failure: the box rejects lr=1.0" in traceback
    assert Path(last["folder"], "traceback.txt").is_file()

    shown = cli("run", failed["id"], "--home", str(home))
    assert shown.exit_code == 0, shown.stderr
    assert "traceback" in shown.stdout and "RuntimeError: simulated failure" in shown.stdout
    assert "why it stopped" in shown.stdout


def test_run_shows_config_history_attempts_and_log_of_a_resumed_run(tmp_path: Path, tiny_data_dir: Path) -> None:
    """The first agent gets SIGTERM during the run; a second resumes it. `sweep run` tells both attempts apart."""
    home = tmp_path / "home"
    sweep_id = created_id(tiny_sweep(tmp_path, {"lr": [0.1]}, epochs=6), home)
    first = start_agent(sweep_id, home, "--data-dir", str(tiny_data_dir))
    wait_for(lambda: "epoch 1/6" in first.stdout())
    first.process.send_signal(signal.SIGTERM)
    assert first.wait() == 0, first.stderr()
    second = start_agent(sweep_id, home, "--data-dir", str(tiny_data_dir))
    assert second.wait() == 0, second.stderr()

    [run] = as_json("runs", sweep_id, "--home", str(home))["runs"]
    details = as_json("run", run["id"], "--home", str(home))
    assert details["state"] == "finished" and details["config"]["lr"] == 0.1 and details["config"]["epochs"] == 6
    assert [row["epoch"] for row in details["history"]] == [1, 2, 3, 4, 5, 6]
    one, two = details["attempts"]
    assert (one["attempt"], one["outcome"], one["resumed_after_epoch"]) == (1, "preempted", 0)
    assert "SIGTERM" in one["detail"]
    done_first = len(one["epochs"])
    assert 1 <= done_first < 6 and one["epochs"] == list(range(1, done_first + 1))
    assert (two["attempt"], two["outcome"], two["resumed_after_epoch"]) == (2, "finished", done_first)
    assert two["epochs"] == list(range(done_first + 1, 7))
    assert one["host"] == two["host"] == socket.gethostname() and one["agent"] != two["agent"]
    for attempt in (one, two):
        assert attempt["log_tail"] is not None and len(attempt["log_tail"]) <= 20  # each attempt kept its log
        assert attempt["traceback"] is None  # neither attempt failed

    shown = cli("run", run["id"], "--home", str(home))
    assert shown.exit_code == 0, shown.stderr
    text = shown.stdout
    assert f"run {run['id']}" in text and "2 attempts, 6 epochs" in text
    assert "history" in text and "attempts" in text and "resumed" in text and "preempted" in text
    assert "attempt 1 log" in text and "attempt 2 log" in text


def test_run_refuses_an_unknown_run_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    created_id(tiny_sweep(tmp_path, {"lr": [0.1]}), home)
    result = cli("run", "nosuchrun", "--home", str(home))
    assert result.exit_code == 2 and "nosuchrun" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
