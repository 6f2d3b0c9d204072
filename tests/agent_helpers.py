"""Shared pieces of the agent tests: a tiny sweep, the CLI in-process, and agent subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from conftest import PLUMBING_MODEL
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

# Trains in about a second on conftest's tiny CIFAR-10.
TINY = {"model": PLUMBING_MODEL, "train_size": 64, "batch_size": 32, "val_size": 20, "tta": 0, "precision": "fp32"}


def tiny_sweep(folder: Path, values: dict[str, list[Any]], epochs: int = 2, **extra: Any) -> Path:
    """A grid sweep file over `values`, everything else fixed to the tiny training config."""
    parameters = {k: {"value": v} for k, v in {**TINY, "epochs": epochs}.items()}
    parameters.update({k: {"values": v} for k, v in values.items()})
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump({"method": "grid", "metric": {"name": "val_acc", "goal": "maximize"},
                                    "parameters": parameters, **extra}))
    return path


def cli(*args: str) -> Any:
    from cli.main import app

    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def created_id(path: Path, home: Path) -> str:
    result = cli("create", str(path), "--json", "--home", str(home))
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["id"]


def status(sweep_id: str, home: Path) -> dict[str, Any]:
    result = cli("status", sweep_id, "--json", "--home", str(home))
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def agent_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWEEP_", "WANDB_"))}
    env.update(SWEEP_HOME=str(home), WANDB_MODE="disabled", PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS)]))
    env.update(extra)
    return env


class AgentProcess:
    """A real `sweep agent` process (plain output), as a user or a cluster would start it.

    Output goes to files, not pipes: a pipe nobody reads fills up and stalls the agent mid-run.
    """

    count = 0

    def __init__(self, sweep_id: str, home: Path, *args: str, **env: str) -> None:
        AgentProcess.count += 1
        self.log = home.parent / f"agent-{AgentProcess.count}"
        self.out, self.err = self.log.with_suffix(".out"), self.log.with_suffix(".err")
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen([sys.executable, "-m", "cli.main", "agent", sweep_id, "--plain", *args],
                                            env=agent_env(home, **env), cwd=home.parent, stdout=out, stderr=err)
        self.pid = self.process.pid

    def wait(self, timeout: float = 240) -> int:
        return self.process.wait(timeout=timeout)

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_agent(sweep_id: str, home: Path, *args: str, **env: str) -> AgentProcess:
    return AgentProcess(sweep_id, home, *args, **env)
