"""`sweep delete ID` and `sweep resume ID` on a real store, with real tiny runs trained by real agents."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from agent_helpers import cli, created_id, start_agent, status, tiny_sweep

from store.open import open_store


@pytest.fixture(autouse=True)
def clean_env(monkeypatch) -> None:
    for name in ("SWEEP_HOME", "SWEEP_STORE", "SWEEP_TRAIN_FN", "WANDB_DIR", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "disabled")


def files_under(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


def trained_sweep(tmp_path: Path, home: Path, data: Path, name: str, lrs: list[float]) -> str:
    folder = tmp_path / name
    folder.mkdir()
    sweep_id = created_id(tiny_sweep(folder, {"lr": lrs}, epochs=1), home)
    result = cli("agent", sweep_id, "--data-dir", str(data), "--home", str(home))
    assert result.exit_code == 0, result.stderr
    return sweep_id


def test_delete_removes_the_sweeps_rows_and_artifacts_and_leaves_other_sweeps_untouched(
        tmp_path: Path, tiny_data_dir: Path) -> None:
    home = tmp_path / "home"
    doomed = trained_sweep(tmp_path, home, tiny_data_dir, "a", [0.1, 0.2])
    kept = trained_sweep(tmp_path, home, tiny_data_dir, "b", [0.3])
    store = open_store(None, home=home)
    root = Path(store.artifacts)
    doomed_folder, kept_folder = root / doomed, root / kept
    assert files_under(doomed_folder) and files_under(kept_folder)  # both trained into their own folders
    unrelated = root / "notes.txt"
    unrelated.write_text("mine")
    kept_before = (status(kept, home), files_under(kept_folder))
    run_ids = [run.id for run in store.list_runs(doomed)]

    result = cli("delete", doomed, "--yes", "--json", "--home", str(home))
    assert result.exit_code == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["id"] == doomed and reply["deleted_runs"] == 2 and reply["artifacts_removed"] == str(doomed_folder)

    assert not doomed_folder.exists()
    gone = cli("status", doomed, "--home", str(home))
    assert gone.exit_code == 2 and doomed in gone.stderr
    for run_id in run_ids:
        assert cli("run", run_id, "--home", str(home)).exit_code == 2
    assert [s["id"] for s in json.loads(cli("ls", "--json", "--home", str(home)).stdout)] == [kept]
    assert (status(kept, home), files_under(kept_folder)) == kept_before
    assert unrelated.read_text() == "mine"
    assert not [p for p in root.iterdir() if p.name.startswith(".deleting-")]


def test_delete_asks_and_a_no_keeps_everything(tmp_path: Path, tiny_data_dir: Path) -> None:
    home = tmp_path / "home"
    sweep_id = trained_sweep(tmp_path, home, tiny_data_dir, "a", [0.1])
    folder = Path(open_store(None, home=home).artifacts) / sweep_id
    before = (status(sweep_id, home), files_under(folder))

    from typer.testing import CliRunner

    from cli.main import app

    no = CliRunner().invoke(app, ["delete", sweep_id, "--home", str(home)], input="n\n")
    assert no.exit_code == 1 and "1 run (1 finished)" in no.stdout and "nothing deleted" in no.stdout
    assert (status(sweep_id, home), files_under(folder)) == before

    yes = CliRunner().invoke(app, ["delete", sweep_id, "--home", str(home)], input="y\n")
    assert yes.exit_code == 0 and f"deleted sweep {sweep_id}: 1 run" in yes.stdout
    assert not folder.exists() and cli("status", sweep_id, "--home", str(home)).exit_code == 2


def test_delete_json_without_yes_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sweep_id = created_id(tiny_sweep(tmp_path, {"lr": [0.1]}), home)
    result = cli("delete", sweep_id, "--json", "--home", str(home))
    assert result.exit_code == 2 and "--yes" in result.stderr
    assert status(sweep_id, home)["id"] == sweep_id


def test_delete_refuses_while_an_agent_trains_one_of_its_runs(tmp_path: Path, tiny_data_dir: Path) -> None:
    home = tmp_path / "home"
    sweep_id = created_id(tiny_sweep(tmp_path, {"lr": [0.1]}, epochs=30), home)
    agent = start_agent(sweep_id, home, "--data-dir", str(tiny_data_dir))
    try:
        deadline = time.monotonic() + 180
        while "epoch 1/30" not in agent.stdout():
            assert time.monotonic() < deadline and agent.process.poll() is None, agent.stderr()
            time.sleep(0.1)
        refused = cli("delete", sweep_id, "--yes", "--home", str(home))
        assert refused.exit_code == 2 and "1 running run " in refused.stderr and "sweep stop" in refused.stderr
        assert status(sweep_id, home)["runs"][0]["state"] == "running"
    finally:
        agent.process.send_signal(signal.SIGTERM)
        agent.wait()
    assert cli("delete", sweep_id, "--yes", "--home", str(home)).exit_code == 0  # preempted now: deletable


def test_resume_undoes_a_stop(tmp_path: Path, tiny_data_dir: Path) -> None:
    home = tmp_path / "home"
    sweep_id = created_id(tiny_sweep(tmp_path, {"lr": [0.1, 0.2]}, epochs=1), home)
    assert cli("stop", sweep_id, "--home", str(home)).exit_code == 0

    idle = cli("agent", sweep_id, "--data-dir", str(tiny_data_dir), "--home", str(home))
    assert idle.exit_code == 0 and "stopped" in idle.stdout
    assert status(sweep_id, home)["runs"] == []  # a stopped sweep hands out nothing

    resumed = cli("resume", sweep_id, "--json", "--home", str(home))
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads(resumed.stdout) == {"id": sweep_id, "state": "running", "was": "stopped", "changed": True}
    assert status(sweep_id, home)["state"] == "running"

    drained = cli("agent", sweep_id, "--data-dir", str(tiny_data_dir), "--home", str(home))
    assert drained.exit_code == 0, drained.stderr
    report = status(sweep_id, home)
    assert report["state"] == "finished" and [r["state"] for r in report["runs"]] == ["finished", "finished"]


def test_resume_of_a_running_sweep_changes_nothing_and_of_a_finished_one_is_refused(
        tmp_path: Path, tiny_data_dir: Path) -> None:
    home = tmp_path / "home"
    sweep_id = created_id(tiny_sweep(tmp_path, {"lr": [0.1]}, epochs=1), home)
    again = cli("resume", sweep_id, "--home", str(home))
    assert again.exit_code == 0 and "already running" in again.stdout

    assert cli("agent", sweep_id, "--data-dir", str(tiny_data_dir), "--home", str(home)).exit_code == 0
    refused = cli("resume", sweep_id, "--home", str(home))
    assert refused.exit_code == 2
    [line] = refused.stderr.strip().splitlines()
    assert "finished" in line and "grid exhausted" in line and "sweep stop" in line
    assert status(sweep_id, home)["state"] == "finished"


def test_delete_and_resume_of_an_unknown_sweep_are_one_line_errors(tmp_path: Path) -> None:
    home = tmp_path / "home"
    created_id(tiny_sweep(tmp_path, {"lr": [0.1]}), home)
    for command in (["delete", "nosuchid", "--yes"], ["resume", "nosuchid"]):
        result = cli(*command, "--home", str(home))
        assert result.exit_code == 2 and "nosuchid" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
