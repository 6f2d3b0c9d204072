"""Chaos on one machine: agents SIGKILLed while they train on real CIFAR-10, then `sweep retry`.

    python -m bench.chaos --data-dir DIR          # 4 agents, 12 points of 3 epochs, a kill every 3-6 s

Real `sweep agent` processes train the real `fast` network (on a subset of the training images,
so that a point takes seconds) from an embedded SQLite store. While they drain the grid, one that
is mid-run is SIGKILLed every `--kill-every` seconds and a new one takes its place. A run killed
before it finished an epoch too often is failed by the retry limit; so when the agents are done,
`sweep retry` offers every run without a result again and one more agent finishes them. Then the
store is checked: every grid point finished exactly once with each epoch recorded once. The kills,
the attempts that resumed from a checkpoint and the runs that `sweep retry` offered again are
printed. Exit code 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.hosts import Host, check, drain_under_fire, finish

LEARNING_RATES = [0.12, 0.18, 0.24, 0.3]


def chaos_grid(seeds: int, epochs: int, train_size: int) -> dict[str, Any]:
    """`fast` at a few learning rates and seeds, small enough that a run takes seconds."""
    return {
        "name": "bench-chaos",
        "method": "grid",
        "metric": {"name": "val_acc", "goal": "maximize"},
        "parameters": {
            "model": {"value": "fast"},
            "lr": {"values": LEARNING_RATES},
            "seed": {"values": list(range(seeds))},
            "epochs": {"value": epochs},
            "train_size": {"value": train_size},
            "val_size": {"value": 500},
            "batch_size": {"value": 250},
            "whiten_bias_epochs": {"value": 1.0},
            "tta": {"value": 0},
        },
    }


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def run(agents: int, seeds: int, epochs: int, train_size: int, kill_every: tuple[float, float], lease_s: float,
        seed: int, data_dir: Path, root: Path) -> dict[str, Any]:
    from agent.sweep_config import validate_sweep
    from store.open import open_store

    rng = random.Random(seed)
    spec = validate_sweep(chaos_grid(seeds, epochs, train_size), source="bench")
    # One thread per agent: four agents on a small machine would otherwise fight over its cores and
    # spend the seconds between kills starting up, so that no attempt ever got far enough to resume.
    machine = Host("box", root, {"SWEEP_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}, "", lease_s,
                   train_fn=None)
    store = open_store(None, home=machine.home, create=True)
    sweep = store.create_sweep(spec.config)
    machine.sweep_id = sweep.id
    live = [(machine, machine.start_agent()) for _ in range(agents)]
    kills, exit_codes, chaos_wall = drain_under_fire(live, store, sweep.id, rng, kill_every, 1800.0)
    without_result = sum(1 for r in store.list_runs(sweep.id, with_history=False) if r.state != "finished")

    started = time.perf_counter()
    retried = cli("retry", sweep.id, "--json", env=machine.env)
    if retried.returncode != 0:
        raise SystemExit(f"sweep retry failed: {retried.stderr.strip()}")
    offered = len(json.loads(retried.stdout)["offered"])
    final = machine.start_agent()
    final.wait(timeout=1800)
    retry_wall = time.perf_counter() - started

    result = check(store, sweep.id, spec.grid_size, epochs)
    attempts = store.list_attempts(sweep.id)
    return result | {
        "agents": agents, "grid_points": spec.grid_size, "epochs_per_run": epochs, "train_size": train_size,
        "kill_every_s": list(kill_every), "kills": kills, "agents_started": machine.started,
        "agent_exit_codes": sorted(exit_codes), "without_result_after_chaos": without_result,
        "retry_offered": offered, "final_agent_exit_code": final.returncode,
        "resumed_attempts": sum(1 for a in attempts if a.resumed_from_epoch > 0),
        "chaos_wall_seconds": round(chaos_wall, 1), "retry_wall_seconds": round(retry_wall, 1)}


def passed(result: dict[str, Any]) -> bool:
    return (result["finished_exactly_once"] == result["grid_points"] == result["runs"] and not result["duplicated"]
            and not result["lost"] and result["final_agent_exit_code"] == 0 and result["sweep_state"] == "finished")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="folder holding cifar-10-batches-py/")
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3, help=f"grid: {len(LEARNING_RATES)} learning rates x this")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=500, help="training images per run (2 steps an epoch)")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(3.0, 6.0), metavar=("MIN_S", "MAX_S"))
    parser.add_argument("--lease-seconds", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="append the result as a JSON line here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-chaos-") as scratch:
        result = run(args.agents, args.seeds, args.epochs, args.train_size, tuple(args.kill_every),
                     args.lease_seconds, args.seed, args.data_dir, Path(scratch))
    finish(result, f"{result['agents']} agents on {result['grid_points']} points x {result['epochs_per_run']} "
                   f"epochs: {result['kills']} SIGKILLs in {result['chaos_wall_seconds']} s, "
                   f"{result['resumed_attempts']} attempts resumed from a checkpoint, "
                   f"{result['without_result_after_chaos']} runs without a result; `sweep retry` offered "
                   f"{result['retry_offered']}, one agent finished them in {result['retry_wall_seconds']} s; "
                   f"finished exactly once {result['finished_exactly_once']}, lost {result['lost']}, "
                   f"duplicated {result['duplicated']}", args.out, passed(result))

if __name__ == "__main__":
    main()
