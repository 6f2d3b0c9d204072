"""`sweep create / agent / status / ls / stop` end to end, on the real training function and tiny CIFAR-10."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from agent_helpers import ROOT, cli, created_id, start_agent, status, tiny_sweep
from wandb_offline import offline_runs, read_run

from agent.launch import GpuListError, parse_gpus
from store.sqlite import SQLiteStore


@pytest.fixture(autouse=True)
def wandb_offline(tmp_path: Path, monkeypatch) -> None:
    for name in ("SWEEP_HOME", "SWEEP_TRAIN_FN", "WANDB_DIR", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_agent_trains_each_config_into_store_status_and_wandb_offline_runs(tmp_path: Path,
                                                                          tiny_data_dir: Path) -> None:
    home = tmp_path / "home"
    sweep_id = created_id(tiny_sweep(tmp_path, {"lr": [0.1, 0.2]}), home)

    result = cli("agent", sweep_id, "--data-dir", str(tiny_data_dir), "--home", str(home))
    assert result.exit_code == 0, result.stderr
    assert "no more runs: sweep finished: grid exhausted" in result.stdout

    report = status(sweep_id, home)
    assert report["id"] == sweep_id and report["state"] == "finished"
    assert sorted(r["config"]["lr"] for r in report["runs"]) == [0.1, 0.2]
    for run in report["runs"]:
        assert run["state"] == "finished" and run["epochs_done"] == 2
        assert 0.0 <= run["best_metric"] <= 1.0
        assert run["config"]["model"] == "fast-small" and isinstance(run["config"]["batch_size"], int)

    for run in SQLiteStore(home).list_runs(sweep_id):
        folder = Path(run.run_dir)
        attempt = folder / "attempt-1"  # each attempt writes its own folder; the store names the current checkpoint
        assert {"checkpoint-0001.pt", "checkpoint-0002.pt", "predictions.npz", "log.txt"} <= {
            p.name for p in attempt.iterdir()}
        assert run.checkpoint == f"{sweep_id}/{run.id}/attempt-1/checkpoint-0002.pt"
        assert run.summary["checkpoint"] == run.checkpoint  # no path of the training machine in the summary
        assert run.summary["test_acc"] is not None and len(run.summary["confusion_matrix"]) == 10
        assert [h["epoch"] for h in run.history] == [1, 2]
        # The same run as a W&B offline run, next to its checkpoint, ready for `wandb sync`.
        [path] = offline_runs(folder)
        logged = read_run(path)
        epochs = [row for row in logged["history"] if "val_acc" in row]
        assert [row["epoch"] for row in epochs] == [1, 2]
        assert [row["val_acc"] for row in epochs] == pytest.approx([h["val_acc"] for h in run.history])
        assert logged["summary"]["test_acc"] == pytest.approx(run.summary["test_acc"])
        assert logged["summary"]["sweep_state"] == "finished"
        assert any(key.startswith("test/confusion_matrix") for key in logged["summary"])
        assert logged["config"]["lr"] == run.config["lr"] and logged["exit_code"] == 0
        assert (logged["run_id"], logged["group"]) == (run.id, sweep_id)


def test_grid_yaml_drained_by_two_agent_processes_runs_each_config_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sweep_id = created_id(ROOT / "sweeps" / "grid.yaml", home)
    agents = [start_agent(sweep_id, home, "--train-fn", "bench.fake_train:instant_train", BENCH_WORK_MS="0")
              for _ in range(2)]
    assert [agent.wait() for agent in agents] == [0, 0], [agent.stderr() for agent in agents]

    runs = SQLiteStore(home).list_runs(sweep_id)
    configs = Counter(json.dumps(r.config, sort_keys=True) for r in runs)
    assert len(configs) == 108 and set(configs.values()) == {1}
    assert Counter(r.state for r in runs) == {"finished": 108}
    assert all(r.attempts == 1 for r in runs)


def test_gpus_option_starts_one_pinned_worker_per_gpu_claiming_distinct_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sweep_id = created_id(tiny_sweep(tmp_path, {"seed": list(range(6))}, epochs=1), home)
    agent = start_agent(sweep_id, home, "--gpus", "0,1", "--train-fn", "sweep_fakes:reports_gpu",
                        BENCH_WORK_MS="200")
    assert agent.wait() == 0, agent.stderr()
    assert "[gpu0] run" in agent.stdout() and "[gpu1] run" in agent.stdout()

    store = SQLiteStore(home)
    runs = store.list_runs(sweep_id)
    assert len(runs) == 6 and {r.state for r in runs} == {"finished"}
    owners = {a.run_id: a.agent.split("@")[0] for a in store.list_attempts(sweep_id)}
    for run in runs:  # each run was trained by the worker pinned to the GPU it reports
        assert run.summary["device"] == f"CUDA_VISIBLE_DEVICES={owners[run.id].removeprefix('gpu')}"
    assert set(owners.values()) == {"gpu0", "gpu1"}


@pytest.mark.parametrize("text", ["a,b", "0,0", ","])
def test_bad_gpu_lists_are_refused(text: str) -> None:
    with pytest.raises(GpuListError, match="--gpus"):
        parse_gpus(text)


def test_a_diverging_run_is_a_result_recorded_once_and_does_not_stop_the_agent(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sweep_id = created_id(tiny_sweep(tmp_path, {"lr": [1e30, 1e29, 1e28]}), home)
    result = cli("agent", sweep_id, "--home", str(home), "--train-fn", "sweep_fakes:nan_loss", "--max-failures", "1")
    assert result.exit_code == 0, result.stderr  # three diverging runs in a row are not a broken box
    runs = SQLiteStore(home).list_runs(sweep_id)
    assert [r.state for r in runs] == ["failed"] * 3 and [r.attempts for r in runs] == [1, 1, 1]  # never retried
    assert all(r.failure == "FloatingPointError: train_loss is nan at epoch 1" and not r.retryable for r in runs)
    assert status(sweep_id, home)["state"] == "finished"  # a diverged run is the configuration's result


def test_stopped_sweep_hands_out_nothing(tmp_path: Path, tiny_data_dir: Path) -> None:
    home = tmp_path / "home"
    sweep_id = created_id(tiny_sweep(tmp_path, {"lr": [0.1, 0.2]}), home)
    stopped = cli("stop", sweep_id, "--home", str(home))
    assert stopped.exit_code == 0 and "stopped" in stopped.stdout
    result = cli("agent", sweep_id, "--data-dir", str(tiny_data_dir), "--home", str(home))
    assert result.exit_code == 0 and "sweep stopped" in result.stdout
    assert SQLiteStore(home).list_runs(sweep_id) == []


def test_ls_and_status_tables_show_the_sweep(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sweep_id = created_id(ROOT / "sweeps" / "smoke.yaml", home)
    listing = cli("ls", "--home", str(home))
    assert listing.exit_code == 0 and sweep_id in listing.stdout and "smoke" in listing.stdout
    table = cli("status", sweep_id, "--home", str(home))
    assert table.exit_code == 0 and f"sweep {sweep_id} smoke: running" in table.stdout and "0/2 runs" in table.stdout
    as_json = json.loads(cli("ls", "--json", "--home", str(home)).stdout)
    assert as_json[0]["id"] == sweep_id and as_json[0]["runs"] == 0


def test_create_prints_id_and_agent_command(tmp_path: Path) -> None:
    result = cli("create", str(ROOT / "sweeps" / "grid.yaml"), "--home", str(tmp_path / "home"))
    assert result.exit_code == 0
    sweep_id = SQLiteStore(tmp_path / "home").list_sweeps()[0].id
    assert f"Created local sweep {sweep_id} (grid, 108 runs, maximize val_acc)" in result.stdout
    assert f"sweep agent {sweep_id}" in result.stdout


def test_hyperband_stops_lagging_runs_early_through_the_agent(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # The fake training's scores follow lr and seed; lr is pinned so the recipe's default can't reorder them.
    sweep_file = tiny_sweep(tmp_path, {"seed": list(range(8)), "lr": [0.24]}, epochs=8,
                            early_terminate={"type": "hyperband", "min_iter": 2, "eta": 2})
    sweep_id = created_id(sweep_file, home)
    result = cli("agent", sweep_id, "--home", str(home), "--train-fn", "bench.fake_train:instant_train")
    assert result.exit_code == 0, result.stderr

    runs = SQLiteStore(home).list_runs(sweep_id)
    assert {r.state for r in runs} == {"finished"} and len(runs) == 8
    stopped = [r for r in runs if r.summary.get("stop_reason")]
    assert stopped and all(r.summary["stop_reason"].startswith("hyperband: val_acc") for r in stopped)
    assert all(len(r.history) < 8 for r in stopped)
    assert max(r.history[-1]["val_acc"] for r in runs) not in [r.history[-1]["val_acc"] for r in stopped]


class QuietEvents:
    def claimed(self, claim) -> None: ...
    def epoch(self, run_id, metrics, epochs) -> None: ...
    def ended(self, run_id, state, detail) -> None: ...
    def idle(self, idle) -> None: ...


def test_agent_that_loses_its_lease_stops_without_writing_a_checkpoint(tmp_path: Path) -> None:
    import sqlite3
    import time

    from agent.controller import Controller
    from store.errors import LeaseLost
    from agent.sweep_config import load_sweep_file
    from agent.worker import Agent, AgentOptions, StopFlag

    store = SQLiteStore(tmp_path)
    sweep = store.create_sweep(load_sweep_file(tiny_sweep(tmp_path, {"seed": [0]})).config)
    seen: dict[str, object] = {}

    def zombie_train(config, hooks=None, *, run_dir=None, **_):
        # Another agent takes the run over (as after an expired lease) while this one trains.
        with sqlite3.connect(store.db_path) as conn:
            conn.execute("UPDATE runs SET lease_token = 'someone-else'")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if hooks.should_stop():  # a stop (not a loss) is where the real loop writes its checkpoint
                    seen["stopped"] = True
                    return None
            except LeaseLost as error:
                seen["raised"] = str(error)
                raise
            time.sleep(0.01)
        raise AssertionError("the lease loss was never noticed")

    zombie_train.needs_data = False
    options = AgentOptions(sweep_id=sweep.id, count=1, lease_seconds=0.4)
    report = Agent(Controller(store), options, zombie_train, QuietEvents(), StopFlag()).run()

    assert "another agent owns this run" in seen["raised"] and "stopped" not in seen
    assert report.outcomes == {"lost": 1}
    run = store.list_runs(sweep.id)[0]
    assert run.state == "running" and run.history == []  # still the other owner's, untouched


def test_a_store_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "not-a-folder"
    home.write_text("a file where the store folder should be")
    result = cli("create", str(ROOT / "sweeps" / "smoke.yaml"), "--home", str(home))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {home / 'sweep.db'}: cannot create the store")
    assert len(result.stderr.strip().splitlines()) == 1 and home.read_text().startswith("a file")
