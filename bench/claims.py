"""Load benchmark of the stores: N agent processes drain one grid sweep, SQLite and PostgreSQL side by side.

    python -m bench.claims                      # 8 agents, 125-point grid, on both stores
    python -m bench.claims --stores sqlite --agents 4 --points 40 --work-ms 0
    python -m bench.claims --postgres postgresql://user@host:5432/db   # an existing server

Each agent is a real `sweep agent` process; its training function (`bench.fake_train`) only sleeps
`--work-ms` per epoch and reports made-up metrics, so what is measured is the orchestration: the
claim transaction (W&B's grid engine included) and the agent's idle time between two runs. Without
--postgres, a throwaway PostgreSQL server is started on loopback (Debian's `postgresql` binaries).
Afterwards each store is checked: every grid configuration finished exactly once, none lost, none
duplicated. Exit code 1 if not.
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

from bench.jsonl import append_lines
from bench.fake_train import WORK_MS_ENV


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


def latency_ms(name: str, values: list[float], quantiles: tuple[int, ...] = (50, 99)) -> dict[str, float | None]:
    """`{name}_ms_p50`, `{name}_ms_p99`, ... and `{name}_ms_max` of durations given in seconds."""
    stats: dict[str, float | None] = {f"{name}_ms_p{q}": round(percentile_ms(values, q), 2) for q in quantiles}
    stats[f"{name}_ms_max"] = round(max(values) * 1000, 2) if values else None
    return stats


def run(agents: int, points: int, epochs: int, work_ms: float, home: Path, store_url: str | None = None) -> dict[str, Any]:
    from agent.sweep_config import validate_sweep
    from store.open import open_store

    spec = validate_sweep(grid_config(points, epochs), source="bench")
    home.mkdir(parents=True, exist_ok=True)
    store = open_store(store_url, home=home, create=True)
    sweep = store.create_sweep(spec.config)
    env = dict(os.environ, SWEEP_HOME=str(home), WANDB_MODE="disabled", SWEEP_ARTIFACTS=str(home / "runs"),
               **{WORK_MS_ENV: str(work_ms)})
    if store_url:
        env["SWEEP_STORE"] = store_url
    stats = [home / f"agent-{i}.json" for i in range(agents)]
    logs = [home / f"agent-{i}.err" for i in range(agents)]
    started = time.perf_counter()

    def start(i: int) -> subprocess.Popen:
        # stderr goes to a file: a pipe nobody reads while we wait could fill and hang the child.
        with logs[i].open("wb") as err:
            return subprocess.Popen([sys.executable, "-m", "cli.main", "agent", sweep.id, "--plain",
                                     "--label", f"a{i}", "--train-fn", "bench.fake_train:instant_train",
                                     "--stats-out", str(stats[i])], env=env, stdout=subprocess.DEVNULL, stderr=err)

    children = [start(i) for i in range(agents)]
    codes = [child.wait() for child in children]
    wall = time.perf_counter() - started
    errors = [log.read_text().strip() for log, code in zip(logs, codes) if code]

    reports = [json.loads(path.read_text()) for path in stats if path.exists()]
    claims = [s for r in reports for s in r["claim_seconds"]]
    # An agent's first claim comes while the others are still starting (importing torch), which on
    # a small machine takes the cores from the claim; the later ones are a sweep in its stride.
    first_claims = [r["claim_seconds"][0] for r in reports if r["claim_seconds"]]
    later_claims = [s for r in reports for s in r["claim_seconds"][1:]]
    idle = [s for r in reports for s in r["idle_seconds"]]
    runs = store.list_runs(sweep.id)
    configs = Counter(json.dumps(r.config, sort_keys=True) for r in runs)
    finished = Counter(json.dumps(r.config, sort_keys=True) for r in runs if r.state == "finished")
    return {
        "store": "postgresql" if store_url and store_url.startswith("postgres") else "sqlite",
        "agents": agents, "grid_points": spec.grid_size, "epochs_per_run": epochs, "work_ms_per_epoch": work_ms,
        "exit_codes": codes, "errors": errors, "wall_seconds": round(wall, 2),
        "runs": len(runs), "finished_once": sum(1 for n in finished.values() if n == 1),
        "duplicated_configs": sum(1 for n in configs.values() if n > 1),
        "lost_configs": spec.grid_size - len(finished),
        "states": dict(Counter(r.state for r in runs)),
        "runs_per_agent": sorted(sum(r["outcomes"].values()) for r in reports),
        "claims": len(claims),
        **latency_ms("claim", claims), **latency_ms("first_claim", first_claims, (50,)),
        "later_claims": len(later_claims), **latency_ms("later_claim", later_claims),
        "idle_ms_p50": round(percentile_ms(idle, 50), 2), "idle_ms_p99": round(percentile_ms(idle, 99), 2),
        "idle_ms_mean": round(float(np.mean(idle)) * 1000, 2) if idle else None,
        "sweep_state": store.get_sweep(sweep.id).state,
    }


def passed(result: dict[str, Any]) -> bool:
    return (result["finished_once"] == result["grid_points"] == result["runs"] and not result["duplicated_configs"]
            and not result["lost_configs"] and all(code == 0 for code in result["exit_codes"]))


def report_line(result: dict[str, Any]) -> str:
    return (f"{result['store']:>10}: {result['agents']} agents, {result['grid_points']}-point grid in "
            f"{result['wall_seconds']} s; finished once {result['finished_once']}, duplicated "
            f"{result['duplicated_configs']}, lost {result['lost_configs']}; claim p50 {result['claim_ms_p50']} ms, "
            f"p99 {result['claim_ms_p99']} ms, max {result['claim_ms_max']} ms over {result['claims']} claims "
            f"(each agent's first: p50 {result['first_claim_ms_p50']} ms, max {result['first_claim_ms_max']} ms; "
            f"the {result['later_claims']} later ones: p50 {result['later_claim_ms_p50']} ms, "
            f"p99 {result['later_claim_ms_p99']} ms); "
            f"idle between runs p50 {result['idle_ms_p50']} ms, p99 {result['idle_ms_p99']} ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--points", type=int, default=125, help="grid size, rounded up to a multiple of 25")
    parser.add_argument("--epochs", type=int, default=2, help="epochs each run reports (one store write each)")
    parser.add_argument("--work-ms", type=float, default=300.0,
                        help="sleep per epoch, standing in for training (300: `fast` on an H200; 20 saturates a small machine)")
    parser.add_argument("--stores", nargs="+", choices=("sqlite", "postgres"), default=["sqlite", "postgres"])
    parser.add_argument("--postgres", default=None, help="an existing server's URL (default: start a throwaway one)")
    parser.add_argument("--out", type=Path, default=None, help="append each store's result as a JSON line here")
    parser.add_argument("--json", action="store_true", help="print each result as one JSON object")
    args = parser.parse_args(argv)

    results, server = [], None
    try:
        for kind in args.stores:
            url = None
            if kind == "postgres":
                if args.postgres:
                    url = args.postgres
                else:
                    from bench.postgres_server import PostgresServer

                    server = PostgresServer()
                    url = server.new_database()
            with tempfile.TemporaryDirectory(prefix="bench-claims-") as scratch:
                results.append(run(args.agents, args.points, args.epochs, args.work_ms, Path(scratch), url))
    finally:
        if server is not None:
            server.close()
    for result in results:
        print(json.dumps(result) if args.json else report_line(result))
        for error in result["errors"]:
            print(f"agent error: {error}", file=sys.stderr)
        append_lines(args.out, json.dumps(result))
    sys.exit(0 if all(passed(result) for result in results) else 1)


if __name__ == "__main__":
    main()
