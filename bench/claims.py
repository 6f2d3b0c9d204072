"""Load benchmark of the local store: N agent processes drain one grid sweep.

    python -m bench.claims                      # 8 agents, 125-point grid
    python -m bench.claims --agents 4 --points 40 --work-ms 0

Each agent is a real `sweep agent` process on one SQLite file; its training
function (`instant_train`) only sleeps `--work-ms` per epoch and reports made-up
metrics, so what is measured is the orchestration: the claim transaction
(W&B's grid engine included) and the agent's idle time between two runs.
Afterwards the store is checked: every grid configuration finished exactly
once, none lost, none duplicated. Exit code 1 if not.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

WORK_MS_ENV = "BENCH_WORK_MS"


def instant_train(config: Any, hooks: Any = None, *, data: Any = None, run_dir: Any = None,
                  resume_from: Any = None, device: Any = None) -> Any:
    """Stands in for train.train: sleeps instead of training, reports one made-up epoch at a time."""
    from train import EpochEnd, TrainHooks
    from train.result import EpochMetrics, TrainResult

    hooks = hooks or TrainHooks()

    work_s = float(os.environ.get(WORK_MS_ENV, "20")) / 1000
    epochs = math.ceil(config.epochs)
    history: list[EpochMetrics] = []
    stop_reason = None
    for epoch in range(1, epochs + 1):
        time.sleep(work_s)
        if hooks.should_stop():
            stop_reason = "preempted"
            break
        score = 0.5 + 0.1 * math.sin(config.lr * 100 + config.seed) + 0.01 * epoch
        metrics = EpochMetrics(epoch=epoch, train_loss=1 / epoch, train_acc=score, val_loss=1 - score,
                               val_acc=score, lr=config.lr, epoch_seconds=work_s, images_per_second=1.0)
        history.append(metrics)
        event = EpochEnd(metrics, epochs, None)
        hooks.on_epoch(event)
        if event.stop_reason:
            stop_reason = event.stop_reason
            break
    return TrainResult(status="stopped" if stop_reason else "finished", stop_reason=stop_reason,
                       config=config.model_dump(), model=config.model, params=0, device="none", precision="none",
                       history=history, train_seconds=work_s * len(history), total_seconds=work_s * len(history),
                       test_acc=history[-1].val_acc if history and not stop_reason else None)


instant_train.needs_data = False  # the agent skips loading CIFAR-10 for it


def grid_config(points: int, epochs: int) -> dict[str, Any]:
    """A grid of at least `points` configurations over lr x batch_size x seed."""
    seeds = math.ceil(points / 25)
    return {
        "name": f"bench-claims-{points}",
        "method": "grid",
        "metric": {"name": "val_acc", "goal": "maximize"},
        "parameters": {
            "lr": {"values": [0.01, 0.02, 0.05, 0.1, 0.2]},
            "batch_size": {"values": [64, 128, 256, 512, 1024]},
            "seed": {"values": list(range(seeds))},
            "epochs": {"value": epochs},
        },
    }


def percentile_ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q)) if values else float("nan")


def run(agents: int, points: int, epochs: int, work_ms: float, home: Path) -> dict[str, Any]:
    from store.sqlite import LocalStore
    from agent.sweep_config import validate_sweep

    spec = validate_sweep(grid_config(points, epochs), source="bench")
    store = LocalStore(home)
    sweep = store.create_sweep(spec.config)
    env = dict(os.environ, SWEEP_HOME=str(home), WANDB_MODE="disabled", **{WORK_MS_ENV: str(work_ms)})
    stats = [home / f"agent-{i}.json" for i in range(agents)]
    logs = [home / f"agent-{i}.err" for i in range(agents)]
    started = time.perf_counter()

    def start(i: int) -> subprocess.Popen:
        # stderr goes to a file: a pipe nobody reads while we wait could fill and hang the child.
        with logs[i].open("wb") as err:
            return subprocess.Popen([sys.executable, "-m", "cli.main", "agent", sweep.id, "--plain",
                                     "--label", f"a{i}", "--train-fn", "bench.claims:instant_train",
                                     "--stats-out", str(stats[i])], env=env, stdout=subprocess.DEVNULL, stderr=err)

    children = [start(i) for i in range(agents)]
    codes = [child.wait() for child in children]
    wall = time.perf_counter() - started
    errors = [log.read_text().strip() for log, code in zip(logs, codes) if code]

    reports = [json.loads(path.read_text()) for path in stats if path.exists()]
    claims = [s for r in reports for s in r["claim_seconds"]]
    idle = [s for r in reports for s in r["idle_seconds"]]
    runs = store.list_runs(sweep.id)
    configs = Counter(json.dumps(r.config, sort_keys=True) for r in runs)
    finished = Counter(json.dumps(r.config, sort_keys=True) for r in runs if r.state == "finished")
    return {
        "agents": agents, "grid_points": spec.grid_size, "epochs_per_run": epochs, "work_ms_per_epoch": work_ms,
        "exit_codes": codes, "errors": errors, "wall_seconds": round(wall, 2),
        "runs": len(runs), "finished_once": sum(1 for n in finished.values() if n == 1),
        "duplicated_configs": sum(1 for n in configs.values() if n > 1),
        "lost_configs": spec.grid_size - len(finished),
        "states": dict(Counter(r.state for r in runs)),
        "runs_per_agent": sorted(sum(r["outcomes"].values()) for r in reports),
        "claims": len(claims),
        "claim_ms_p50": round(percentile_ms(claims, 50), 2), "claim_ms_p99": round(percentile_ms(claims, 99), 2),
        "claim_ms_max": round(max(claims) * 1000, 2) if claims else None,
        "idle_ms_p50": round(percentile_ms(idle, 50), 2), "idle_ms_p99": round(percentile_ms(idle, 99), 2),
        "idle_ms_mean": round(float(np.mean(idle)) * 1000, 2) if idle else None,
        "sweep_state": store.get_sweep(sweep.id).state,
    }


def passed(result: dict[str, Any]) -> bool:
    return (result["finished_once"] == result["grid_points"] == result["runs"] and not result["duplicated_configs"]
            and not result["lost_configs"] and all(code == 0 for code in result["exit_codes"]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--points", type=int, default=125, help="grid size, rounded up to a multiple of 25")
    parser.add_argument("--epochs", type=int, default=2, help="epochs each run reports (one store write each)")
    parser.add_argument("--work-ms", type=float, default=20.0, help="sleep per epoch, standing in for training")
    parser.add_argument("--home", type=Path, default=None, help="store folder (default: a fresh temporary one)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-claims-") as scratch:
        result = run(args.agents, args.points, args.epochs, args.work_ms, args.home or Path(scratch))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['agents']} agents drained a {result['grid_points']}-point grid in {result['wall_seconds']} s "
              f"(runs per agent: {result['runs_per_agent']})")
        print(f"runs: {result['runs']}, finished exactly once: {result['finished_once']}, "
              f"duplicated: {result['duplicated_configs']}, lost: {result['lost_configs']}, "
              f"states: {result['states']}, sweep: {result['sweep_state']}")
        print(f"claim latency over {result['claims']} claims: p50 {result['claim_ms_p50']} ms, "
              f"p99 {result['claim_ms_p99']} ms, max {result['claim_ms_max']} ms")
        print(f"agent idle between runs: p50 {result['idle_ms_p50']} ms, p99 {result['idle_ms_p99']} ms, "
              f"mean {result['idle_ms_mean']} ms")
        for error in result["errors"]:
            print(f"agent error: {error}", file=sys.stderr)
    sys.exit(0 if passed(result) else 1)


if __name__ == "__main__":
    main()
