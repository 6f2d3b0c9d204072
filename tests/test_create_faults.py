"""`sweep create` and friends on hostile input, through the real CLI in real processes.

Each bad file is refused with one line on stderr naming the file, exit 2, no traceback, no store
written, and a peak memory far below what building the grid, the alias expansion or the whole
file would take. Timing is the benchmark's business (bench/create_memory.py), not the tests'.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.create_memory import GRID_VALUES, INPUTS, NORMAL_WD, ROOT, grid_text, measure_create

PEAK_LIMIT_MB = 400  # a 10^9 grid took 19 GB before the bound; torch alone is ~650 MB, so none is imported
BUILDERS = {name: build for name, build, _ in INPUTS}


def only_line(result: dict) -> str:
    assert "Traceback" not in result["stderr"], result["stderr"]
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    assert len(lines) == 1, result["stderr"]
    return lines[0]


def test_a_billion_point_grid_is_refused_in_one_line_without_building_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text(grid_text(list(GRID_VALUES)))
    assert path.stat().st_size < 1500  # about a kilobyte describes 10^9 runs

    result = measure_create(path, tmp_path / "home")

    line = only_line(result)
    assert result["rc"] == 2 and result["stdout"] == ""
    assert line.startswith(f"error: {path}: the grid has 1,000,000,000 points")
    for advice in ("over the limit of 100,000", "method: random", "run_cap", "fewer values"):
        assert advice in line
    assert result["maxrss_kb"] / 1024 < PEAK_LIMIT_MB
    assert not (tmp_path / "home").exists()


# input -> words its one line must hold
REFUSED = {
    "grid_1e7": ["10,000,000 points", "10 lr"],
    "int_range_grid": ["1,000,000,000,001 points", "seed"],
    "alias_bomb": ["more than 100,000 values", "aliases", "line 4"],
    "recursive_alias": ["*p", "recursive", "line 4"],
    "deep_nesting": ["nest", "line 4"],
    "big_50mb": ["bytes, over the 1 MiB limit"],
    "binary": ["binary file"],
    "latin1": ["not UTF-8", "0xe9", "offset 22"],
    "list_parameters": ["parameters: expected a mapping of names to specs", "found a list"],
    "inf_value": ["parameters.lr.values[0]: .inf is not a finite number"],
    "nan_max": ["parameters.lr.max: .nan is not a finite number"],
    "huge_int": ["invalid YAML value", "integer"],
}


@pytest.mark.parametrize("name", REFUSED)
def test_bad_sweep_files_get_one_line_exit_2_and_no_store(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.yaml"
    BUILDERS[name](path)

    result = measure_create(path, tmp_path / "home")

    line = only_line(result)
    assert result["rc"] == 2 and result["stdout"] == ""
    assert line.startswith(f"error: {path}: ")
    for word in REFUSED[name]:
        assert word in line, line
    assert result["maxrss_kb"] / 1024 < PEAK_LIMIT_MB
    assert not (tmp_path / "home").exists()


def test_the_size_limit_is_checked_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "sparse.yaml"
    with path.open("wb") as handle:
        handle.truncate(8 << 30)  # 8 GiB of holes: reading it would take the memory, stat does not
    result = measure_create(path, tmp_path / "home")
    assert result["rc"] == 2
    assert f"{path}: 8,589,934,592 bytes, over the 1 MiB limit" in only_line(result)
    assert result["maxrss_kb"] / 1024 < PEAK_LIMIT_MB


def test_a_normal_tail_below_zero_is_created_with_a_warning_naming_the_chance(tmp_path: Path) -> None:
    from scipy import stats

    path = tmp_path / "wd.yaml"
    path.write_text(NORMAL_WD)
    result = measure_create(path, tmp_path / "home")

    assert result["rc"] == 0, result["stderr"]
    warning = only_line(result)
    chance = stats.norm(loc=5e-4, scale=1e-4).cdf(0.0)  # mu - 5 sigma
    assert warning.startswith(f"warning: {path}: parameters.weight_decay: normal(mu=0.0005, sigma=0.0001)")
    assert f"probability {chance:.2g}" in warning and "weight_decay >= 0" in warning
    assert "Created local sweep" in result["stdout"]
    assert (tmp_path / "home" / "sweep.db").is_file()


def cli_process(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWEEP_", "WANDB_"))}
    env.update(PYTHONPATH=str(ROOT), WANDB_MODE="disabled", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "cli.main", *args, "--home", str(home)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=600)


def test_a_name_made_of_rich_markup_is_shown_literally_by_ls_and_status(tmp_path: Path) -> None:
    name = "[/] [bold]x"  # `[/]` closes nothing: rendered as markup it raises MarkupError
    path = tmp_path / "named.yaml"
    path.write_text(f"method: grid\nname: '{name}'\nparameters:\n  lr: {{values: [0.1, 0.2]}}\n")
    home = tmp_path / "home"
    created = cli_process("create", str(path), "--json", home=home)
    assert created.returncode == 0, created.stderr
    sweep_id = json.loads(created.stdout)["id"]

    listing = cli_process("ls", home=home)
    assert listing.returncode == 0, listing.stderr
    assert name in listing.stdout and sweep_id in listing.stdout

    status = cli_process("status", sweep_id, home=home)
    assert status.returncode == 0, status.stderr
    assert f"sweep {sweep_id} {name}: running" in status.stdout


def test_stop_of_an_unknown_sweep_creates_no_store(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = cli_process("stop", "nosuchid", home=home)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert str(home / "sweep.db") in result.stderr
    assert not (home / "sweep.db").exists()


def test_an_invalid_draw_is_a_failed_run_that_neither_crashes_nor_stops_the_agent(tmp_path: Path) -> None:
    from agent_helpers import TINY, created_id, start_agent, status

    # weight_decay ~ normal(1e-4, 8e-4) is negative 45% of the time; 16 runs all valid would be a 7e-5 chance.
    fixed = {k: {"value": v} for k, v in {**TINY, "epochs": 1}.items()}
    path = tmp_path / "tail.yaml"
    path.write_text(json.dumps({"method": "random", "run_cap": 16, "metric": {"name": "val_acc", "goal": "maximize"},
                                "parameters": {**fixed, "weight_decay": {"distribution": "normal", "mu": 1e-4,
                                                                         "sigma": 8e-4}}}))
    home = tmp_path / "home"
    sweep_id = created_id(path, home)
    # The draw is refused before training starts, so the instant stand-in for training is enough here.
    agent = start_agent(sweep_id, home, "--max-failures", "1", SWEEP_TRAIN_FN="bench.fake_train:instant_train")
    assert agent.wait(timeout=900) == 0, agent.stderr()

    runs = status(sweep_id, home)["runs"]
    assert len(runs) == 16
    invalid = [r for r in runs if r["config"]["weight_decay"] < 0]
    assert invalid, "no negative draw in 16: rerun"
    for run in invalid:
        assert run["state"] == "failed" and run["attempts"] == 1
        assert "invalid draw" in run["failure"] and "weight_decay" in run["failure"]
    assert all(r["state"] == "finished" for r in runs if r["config"]["weight_decay"] >= 0)
