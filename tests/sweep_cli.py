"""Check a `sweep ...` command line against the real CLI without running it.

Used by the tests of the README commands, the Docker entry point, compose and SLURM, so that
every place that starts the CLI is held to the parser the users get.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import pytest
import typer

from cli.main import app

# The console script that `pip install` made beside this interpreter.
SWEEP = Path(sys.executable).with_name("sweep")


def group() -> click.Group:
    return typer.main.get_command(app)


def require_command(name: str) -> None:
    """Skip while a subcommand the tests need is not on the CLI yet (it is being built)."""
    if name not in group().commands:
        pytest.skip(f"`sweep {name}` is not registered in cli.main yet")


def parse(argv: list[str]) -> tuple[str, dict]:
    """Parse `sweep ARGV` as the CLI would; return (subcommand, its parameters).

    Raises click.UsageError (unknown command or option, missing argument, bad value) exactly
    where `sweep ARGV` would stop with a usage error. No command body runs.
    """
    root = group()
    parent = click.Context(root, info_name="sweep")
    command = root.get_command(parent, argv[0]) if argv else None
    if command is None:
        raise click.UsageError(f"no such command: {argv[:1]}")
    with command.make_context(argv[0], list(argv[1:]), parent=parent) as context:
        return argv[0], dict(context.params)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus the sweep variables, so a developer's shell cannot leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWEEP_", "WANDB_"))}
    env.update(extra)
    return env


def make_stub(folder: Path, name: str, log: Path, replies: dict[str, str] | None = None,
              exit_code: int = 0, exit_codes: dict[str, int] | None = None) -> Path:
    """An executable `name` in `folder` that appends its argv and sweep-related environment to
    `log` as one JSON line, prints replies[argv[0]] if given, and exits with exit_codes[argv[0]],
    else `exit_code`."""
    folder.mkdir(parents=True, exist_ok=True)
    stub = folder / name
    stub.write_text(f"""#!{sys.executable}
import json, os, sys
keep = ("CUDA_VISIBLE_DEVICES", "SWEEP_HOME", "SWEEP_DATA_DIR", "WANDB_DIR", "DEBIAN_FRONTEND", "SWEEP_STORE",
        "SWEEP_ARTIFACTS")
with open({str(log)!r}, "a") as out:
    out.write(json.dumps({{"tool": {name!r}, "argv": sys.argv[1:],
                          "env": {{k: os.environ[k] for k in keep if k in os.environ}}}}) + "\\n")
replies = {replies or {}!r}
if sys.argv[1:2] and sys.argv[1] in replies:
    print(replies[sys.argv[1]])
codes = {exit_codes or {}!r}
sys.exit(codes.get(sys.argv[1] if sys.argv[1:] else "", {exit_code}))
""")
    stub.chmod(0o755)
    return stub


def read_log(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
