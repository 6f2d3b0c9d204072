"""The CLI's surface a new user meets first: -h, --version, flags, plurals, hints, 'did you mean', --json."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import click
import pytest
import yaml
from agent_helpers import ROOT, cli, created_id, start_agent, status, tiny_sweep
from sweep_cli import group, parse
from wandb_offline import _payloads, offline_runs

# Commands whose output a script would read: each takes --json.
SCRIPTED = ("create", "agent", "ls", "status", "stop", "retry", "runs", "run", "delete", "resume", "report", "models", "data")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch) -> None:
    for name in ("SWEEP_HOME", "SWEEP_STORE", "SWEEP_TRAIN_FN", "WANDB_DIR", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "disabled")


def write(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


# -- help, version, flags -------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], *[[name] for name in sorted(group().commands)]])
def test_dash_h_is_help_for_the_app_and_every_command(command: list[str]) -> None:
    short, long = cli(*command, "-h"), cli(*command, "--help")
    assert short.exit_code == long.exit_code == 0
    assert short.stdout == long.stdout and "Usage:" in short.stdout


def test_version_is_the_installed_version_and_the_checkout_commit() -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"sweep {metadata.version('cifar-sweep')}")
    git = shutil.which("git")
    if git and (ROOT / ".git").exists():
        commit = subprocess.run([git, "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        assert result.stdout.strip().endswith(f"(git {commit})")


@pytest.mark.parametrize("name", sorted(group().commands))
def test_boolean_options_are_plain_flags_shown_without_a_type(name: str) -> None:
    command = group().commands[name]
    for param in command.params:
        if isinstance(param, click.Option) and param.is_flag:
            assert not param.secondary_opts, f"sweep {name} {param.opts}: a --no- twin makes it a <bool> pair"
    text = cli(name, "--help").stdout
    assert "<bool>" not in text and "--no-" not in text


def test_plain_is_visible_on_agent_and_json_on_every_scripted_command() -> None:
    assert "--plain" in cli("agent", "--help").stdout
    for name in SCRIPTED:
        options = {opt for param in group().commands[name].params for opt in param.opts}
        assert "--json" in options, f"sweep {name} has no --json"


# -- plurals and next-step hints -------------------------------------------------------------------------------


def test_create_says_1_run_and_2_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    one = cli("create", str(tiny_sweep(tmp_path, {"lr": [0.1]})), "--home", str(home))
    assert one.exit_code == 0 and "grid, 1 run," in one.stdout and "1 runs" not in one.stdout
    two = cli("create", str(tiny_sweep(tmp_path, {"lr": [0.1, 0.2]})), "--home", str(home))
    assert two.exit_code == 0 and "grid, 2 runs," in two.stdout
    [single] = [line for line in cli("status", one.stdout.split()[3], "--home", str(home)).stdout.splitlines()
                if "grid," in line]
    assert "0/1 run:" in single


def test_create_hints_repeat_the_given_home_and_every_hint_works(tmp_path: Path) -> None:
    home = tmp_path / "a home with spaces"
    result = cli("create", str(tiny_sweep(tmp_path, {"lr": [0.1]})), "--home", str(home))
    assert result.exit_code == 0, result.stderr
    hints = [line.split("  #")[0].strip() for line in result.stdout.splitlines() if line.strip().startswith("sweep ")]
    assert [h.split()[1] for h in hints] == ["agent", "status", "report"]
    for hint in hints:
        argv = shlex.split(hint)[1:]
        _, params = parse(argv)  # the real parser accepts the printed line as it is
        assert params["home"] == home
    status_argv = shlex.split(hints[1])[1:]
    shown = cli(*status_argv)
    assert shown.exit_code == 0 and "0/1 run" in shown.stdout  # the printed status command finds the sweep


def test_create_without_options_prints_bare_hints(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("create", str(tiny_sweep(tmp_path, {"lr": [0.1]})))
    assert result.exit_code == 0, result.stderr
    assert re.search(r"^\s+sweep agent \w+\s+#", result.stdout, re.M) and "--home" not in result.stdout


# -- sweep file keys -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key,value", [("program", "train.py"),
                                       ("command", ["${env}", "${interpreter}", "${program}", "${args}"])])
def test_program_and_command_are_refused_in_one_line_and_nothing_is_stored(tmp_path: Path, key: str,
                                                                           value: object) -> None:
    path = write(tmp_path / "wandb.yaml", {"method": "grid", key: value, "parameters": {"lr": {"values": [0.1]}}})
    home = tmp_path / "home"
    result = cli("create", str(path), "--home", str(home))
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert f"'{key}:" in line and "built-in training function" in line and "SWEEP_TRAIN_FN" in line
    assert not (home / "sweep.db").exists()


def test_project_and_entity_on_the_local_backend_name_every_runs_wandb_offline_run(tmp_path: Path,
                                                                                   tiny_data_dir: Path) -> None:
    from wandb.proto import wandb_internal_pb2 as pb

    home = tmp_path / "home"
    path = tiny_sweep(tmp_path, {"lr": [0.1]}, epochs=1)
    created = cli("create", str(path), "--home", str(home), "--project", "cifar-budget", "--entity", "my-lab",
                  "--json")
    assert created.exit_code == 0, created.stderr
    sweep_id = json.loads(created.stdout)["id"]
    agent = start_agent(sweep_id, home, "--data-dir", str(tiny_data_dir), WANDB_MODE="offline", WANDB_SILENT="true")
    assert agent.wait() == 0, agent.stderr()
    [run_file] = offline_runs(home)
    runs = []
    for payload in _payloads(run_file.read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") == "run":
            runs.append(record.run)
    assert runs and (runs[0].project, runs[0].entity) == ("cifar-budget", "my-lab")


# -- did you mean ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,guess", [("learning_rate", "lr"), ("num_epochs", "epochs"), ("batchsize", "batch_size"),
                                        ("weight-decay", "weight_decay"), ("lable_smoothing", "label_smoothing")])
def test_unknown_sweep_parameter_gets_did_you_mean(tmp_path: Path, name: str, guess: str) -> None:
    path = write(tmp_path / "typo.yaml", {"method": "grid", "parameters": {name: {"values": [0.1]}}})
    result = cli("create", str(path), "--home", str(tmp_path / "home"))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {path}: unknown parameter '{name}'; did you mean '{guess}'?"


def test_a_name_like_no_setting_still_lists_the_valid_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "typo.yaml", {"method": "grid", "parameters": {"colour": {"values": [1]}}})
    result = cli("create", str(path), "--home", str(tmp_path / "home"))
    assert result.exit_code == 2 and "did you mean" not in result.stderr
    assert "valid names: model, epochs, batch_size" in result.stderr


def test_unknown_train_setting_gets_did_you_mean() -> None:
    result = cli("train", "--set", "learning_rate=0.05", "--show-config")
    assert result.exit_code == 2
    assert "unknown key 'learning_rate'; did you mean 'lr'?" in result.stderr


# -- --json for scripts ----------------------------------------------------------------------------------------


def test_agent_json_prints_one_json_object_per_event(tmp_path: Path, tiny_data_dir: Path) -> None:
    home = tmp_path / "home"
    sweep_id = created_id(tiny_sweep(tmp_path, {"lr": [0.1, 0.2]}), home)
    result = cli("agent", sweep_id, "--json", "--data-dir", str(tiny_data_dir), "--home", str(home))
    assert result.exit_code == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]  # every line parses: nothing else printed
    kinds = [e["event"] for e in events]
    assert kinds == ["claimed", "epoch", "epoch", "ended"] * 2 + ["done"]
    assert "grid exhausted" in events[-1]["reason"] and events[-1]["metric"] == "val_acc"
    stored = {run["id"]: run for run in status(sweep_id, home)["runs"]}
    for claimed, *epochs, ended in (events[0:4], events[4:8]):
        run = stored[claimed["run"]]
        assert claimed["config"]["lr"] == run["config"]["lr"] and claimed["attempt"] == 1
        assert [e["epoch"] for e in epochs] == [1, 2] and all(e["run"] == run["id"] for e in epochs)
        assert max(e["metrics"]["val_acc"] for e in epochs) == pytest.approx(run["best_metric"])
        assert (ended["run"], ended["state"]) == (run["id"], "finished")
    assert events[-1]["best"] == pytest.approx(max(r["best_metric"] for r in stored.values()))


def test_stop_json(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sweep_id = created_id(tiny_sweep(tmp_path, {"lr": [0.1]}), home)
    result = cli("stop", sweep_id, "--json", "--home", str(home))
    assert result.exit_code == 0, result.stderr
    reply = json.loads(result.stdout)
    assert (reply["id"], reply["state"], reply["cancel"]) == (sweep_id, "stopped", False)
    assert "sweep stop" in reply["state_reason"]
    assert status(sweep_id, home)["state"] == "stopped"


# -- the CPU-only install path ---------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_venv_cpu_takes_torch_from_the_cpu_index_at_the_pinned_versions_first() -> None:
    result = subprocess.run(["make", "--dry-run", "--always-make", "venv-cpu"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    script = result.stdout.replace("\\\n", " ")
    lines = script.splitlines()
    [torch_line] = [i for i, line in enumerate(lines) if "download.pytorch.org/whl/cpu" in line]
    [project_line] = [i for i, line in enumerate(lines) if "-c constraints.txt -e '.[test]'" in line]
    assert torch_line < project_line
    # The versions are read from the pins at install time: run that part of the line here.
    pins = subprocess.run(["bash", "-c", "echo " + lines[torch_line].split("whl/cpu", 1)[1]], cwd=ROOT,
                          capture_output=True, text=True).stdout.split()
    pinned = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                  if line.startswith(("torch==", "torchvision==")))
    assert pins == [f"torch=={pinned['torch']}", f"torchvision=={pinned['torchvision']}"]


# -- the README and docs speak to users -----------------------------------------------------------------------

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands(path: Path) -> list[list[str]]:
    """The `sweep ...` commands in a page's code blocks: `$ sweep ...` lines, and bare `sweep ...` lines of
    ```sh blocks (comments dropped). Synopsis lines ([--opt], <id>, ...) and output are not commands."""
    found, fence = [], None
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fence = line[3:].strip() if fence is None else None
            continue
        text = line.strip()
        if fence is None or not (text.startswith("$ sweep ") or (fence == "sh" and text.startswith("sweep "))):
            continue
        text = text.removeprefix("$ ")
        if "[" in text or "<" in text or "..." in text:
            continue
        words = shlex.split(text.split("  #")[0].split(" | ")[0], comments=True)
        found.append(words[1:])
    return found


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_documented_sweep_command_parses(page: Path) -> None:
    commands = documented_commands(page)
    if page.name == "README.md":
        assert {argv[0] for argv in commands} >= {"data", "create", "agent", "status", "report"}
    for argv in commands:
        if argv and argv[0] in group().commands:
            parse(argv)  # raises click.UsageError where `sweep ARGV` would
        else:
            pytest.fail(f"{page.name}: `sweep {' '.join(argv)}` is not a command")


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_pages_name_no_development_machine(page: Path) -> None:
    text = page.read_text()
    for phrase in ("../shared", "/work/", "this offline machine", "this development machine", ".devdata",
                   "cifar_device_pack"):
        assert phrase not in text, f"{page.name} mentions {phrase!r}"


def test_create_hints_repeat_the_given_store_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere' / 'sweep.db'}"
    result = cli("create", str(tiny_sweep(tmp_path, {"lr": [0.1]})), "--store", url)
    assert result.exit_code == 0, result.stderr
    hints = [line.split("  #")[0].strip() for line in result.stdout.splitlines() if line.strip().startswith("sweep ")]
    assert len(hints) == 3 and all(f"--store {url}" in hint for hint in hints)
    for hint in hints:
        assert parse(shlex.split(hint)[1:])[1]["store_url"] == url
    shown = cli(*shlex.split(hints[1])[1:])
    assert shown.exit_code == 0 and "0/1 run" in shown.stdout
