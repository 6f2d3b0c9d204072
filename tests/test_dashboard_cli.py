"""`sweep dashboard`'s user mistakes: one line on stderr, exit 2, nothing served."""

from __future__ import annotations

import socket
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from dashboard_runs import SWEEP_CONFIG, open_store


def run(*args: str):
    return CliRunner().invoke(app, ["dashboard", *args], catch_exceptions=False)


def test_a_folder_without_a_store_is_one_line_exit_2(tmp_path: Path) -> None:
    result = run("--home", str(tmp_path / "nothing-here"), "--port", "0")
    assert result.exit_code == 2
    assert "no store there yet" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "nothing-here").exists()


def test_a_port_in_use_is_one_line_exit_2(tmp_path: Path) -> None:
    open_store(tmp_path / "home").create_sweep(SWEEP_CONFIG)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        result = run("--home", str(tmp_path / "home"), "--port", str(taken.getsockname()[1]))
    finally:
        taken.close()
    assert result.exit_code == 2
    assert "cannot listen on 127.0.0.1:" in result.stderr and "--port" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
