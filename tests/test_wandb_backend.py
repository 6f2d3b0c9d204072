"""`--backend wandb` at the SDK boundary: W&B's servers are faked, everything on this side is real.

`wandb.sweep` and `wandb.agent` are replaced by a stand-in for W&B's hosted controller
that proposes runs with the same open-source engine and hands them to the training
function the way W&B's in-process agent does (a sweep-parameter file named by
WANDB_SWEEP_PARAM_PATH, then `wandb.finish`). `wandb.init`, the runs and their
offline files are real.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import wandb
from agent_helpers import ROOT, cli, tiny_sweep
from wandb_offline import offline_runs, read_run

from agent.engine import sweep_engine
from store.sqlite import SQLiteStore
from agent.sweep_config import load_sweep_file


class FakeWandbController:
    """What W&B's servers do for one sweep, at the two SDK calls this project makes."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.registered: dict[str, Any] | None = None
        self.sweep_kwargs: dict[str, Any] = {}
        self.issued: list[Any] = []  # SweepRuns handed out
        self.exit_codes: list[int] = []
        self.agent_calls: list[dict[str, Any]] = []

    def sweep(self, sweep: dict, entity: str | None = None, project: str | None = None, **_: Any) -> str:
        self.registered, self.sweep_kwargs = sweep, {"entity": entity, "project": project}
        return "abc123"

    def agent(self, sweep_id: str, function=None, entity=None, project=None, count=None, **kwargs: Any) -> None:
        from wandb.sdk.lib import config_util

        self.agent_calls.append({"sweep_id": sweep_id, "entity": entity, "project": project, "count": count,
                                 **kwargs})
        for _ in range(count or 10**6):
            run = sweep_engine().next_run(self.registered, self.issued, validate=False)
            if run is None:
                return
            run.name, run.state = f"run{len(self.issued)}", "running"
            self.issued.append(run)
            params = self.tmp_path / f"sweep-params-{run.name}.yaml"
            config_util.save_config_file_from_dict(str(params), run.config)
            os.environ.update(WANDB_SWEEP_PARAM_PATH=str(params), WANDB_SWEEP_ID="abc123", WANDB_RUN_ID=run.name,
                              WANDB_PROJECT=project or "", WANDB_ENTITY=entity or "")
            wandb.teardown()  # as W&B's agent does before each job: settings are re-read from the environment
            failure: list[BaseException] = []

            def job() -> None:  # W&B's agent runs the function in a thread too
                try:
                    function()
                except Exception as error:
                    failure.append(error)

            thread = threading.Thread(target=job)
            thread.start()
            thread.join()
            wandb.finish(exit_code=1 if failure else 0)
            self.exit_codes.append(1 if failure else 0)
            run.state = "failed" if failure else "finished"
            for name in ("WANDB_SWEEP_PARAM_PATH", "WANDB_SWEEP_ID", "WANDB_RUN_ID"):
                os.environ.pop(name, None)


@pytest.fixture
def fake_wandb(tmp_path: Path, monkeypatch) -> FakeWandbController:
    for name in ("SWEEP_HOME", "SWEEP_TRAIN_FN", "WANDB_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")  # the runs: real, written to disk
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wandb-dir").mkdir()
    fake = FakeWandbController(tmp_path)
    monkeypatch.setattr(wandb, "sweep", fake.sweep)
    monkeypatch.setattr(wandb, "agent", fake.agent)
    return fake


def test_create_registers_the_validated_yaml_with_wandb(tmp_path: Path, fake_wandb: FakeWandbController) -> None:
    home = tmp_path / "home"
    result = cli("create", str(ROOT / "sweeps" / "grid.yaml"), "--backend", "wandb", "--project", "cifar",
                 "--entity", "lab", "--json", "--home", str(home))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["id"] == "lab/cifar/abc123"
    assert fake_wandb.sweep_kwargs == {"entity": "lab", "project": "cifar"}
    assert fake_wandb.registered == load_sweep_file(ROOT / "sweeps" / "grid.yaml").config
    assert fake_wandb.registered["parameters"]["weight_decay"]["values"] == [0.0005, 0.0001]  # floats, not '5e-4'
    [record] = SQLiteStore(home).list_sweeps()
    assert (record.id, record.backend) == ("lab/cifar/abc123", "wandb")
    stop = cli("stop", "lab/cifar/abc123", "--home", str(home))  # W&B's sweep is stopped on W&B, not here
    assert stop.exit_code == 2 and "wandb sweep --stop lab/cifar/abc123" in stop.stderr


def test_wandb_errors_are_one_line_and_leave_the_store_untouched(tmp_path: Path, fake_wandb, monkeypatch) -> None:
    def unreachable(**_: Any) -> str:
        raise wandb.errors.CommError("Could not reach api.wandb.ai: network is unreachable")

    monkeypatch.setattr(wandb, "sweep", unreachable)
    result = cli("create", str(ROOT / "sweeps" / "smoke.yaml"), "--backend", "wandb", "--home",
                 str(tmp_path / "home"))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "wandb.sweep failed" in result.stderr and "network is unreachable" in result.stderr
    assert not (tmp_path / "home").exists()


def test_invalid_file_never_reaches_wandb(tmp_path: Path, fake_wandb: FakeWandbController) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: grid\nparameters:\n  learning_rate: {value: 0.1}\n")
    result = cli("create", str(bad), "--backend", "wandb", "--home", str(tmp_path / "home"))
    assert result.exit_code == 2 and "unknown parameter 'learning_rate'" in result.stderr
    assert fake_wandb.registered is None


def test_wandb_agent_trains_with_the_same_function_and_logs_the_same_metrics(
        tmp_path: Path, tiny_data_dir: Path, fake_wandb: FakeWandbController) -> None:
    home = tmp_path / "home"
    created = cli("create", str(tiny_sweep(tmp_path, {"lr": [0.1, 0.2]})), "--backend", "wandb", "--project",
                  "cifar", "--entity", "lab", "--json", "--home", str(home))
    sweep_path = json.loads(created.stdout)["id"]

    result = cli("agent", sweep_path, "--data-dir", str(tiny_data_dir), "--home", str(home))
    assert result.exit_code == 0, result.stderr
    assert "no more runs: W&B's controller has no more runs" in result.stdout
    assert fake_wandb.agent_calls[0]["sweep_id"] == "lab/cifar/abc123"
    assert fake_wandb.agent_calls[0]["count"] == 1  # one run per call: the agent decides between runs
    assert fake_wandb.exit_codes == [0, 0]

    logged = [read_run(path) for path in offline_runs(tmp_path / "wandb-dir")]
    assert sorted(run["config"]["lr"] for run in logged) == [0.1, 0.2]
    for run in logged:
        epochs = [row for row in run["history"] if "val_acc" in row]
        assert [row["epoch"] for row in epochs] == [1, 2]
        assert set(epochs[0]) >= {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_second"}
        assert 0.0 <= run["summary"]["test_acc"] <= 1.0 and run["summary"]["sweep_state"] == "finished"
        assert any(key.startswith("test/confusion_matrix") for key in run["summary"])
        folder = home / "wandb-runs" / "abc123" / run["run_id"]
        assert sorted(p.name for p in folder.glob("checkpoint-*.pt")) == ["checkpoint-0001.pt", "checkpoint-0002.pt"]


def test_wandb_agent_stops_itself_after_consecutive_failures(tmp_path: Path, fake_wandb) -> None:
    home = tmp_path / "home"
    created = cli("create", str(tiny_sweep(tmp_path, {"seed": [0, 1, 2, 3, 4]})), "--backend", "wandb",
                  "--project", "cifar", "--json", "--home", str(home))
    result = cli("agent", json.loads(created.stdout)["id"], "--home", str(home), "--max-failures", "2",
                 "--train-fn", "sweep_fakes:always_raises")
    assert result.exit_code == 1
    assert "2 consecutive runs failed" in result.stderr and "CUDA out of memory (simulated)" in result.stderr
    assert fake_wandb.exit_codes == [1, 1]
    summaries = [read_run(path)["summary"] for path in offline_runs(tmp_path / "wandb-dir")]
    assert [s["sweep_state"] for s in summaries] == ["failed", "failed"]
