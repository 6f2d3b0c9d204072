"""Many hosts, one sweep: agents on simulated hosts drain a grid on PostgreSQL while being killed.

    python -m bench.hosts                                   # 3 hosts, 8 agents, 125 points, 30 s leases
    python -m bench.hosts --hosts 3 --agents 4 --points 24 --epochs 3 --work-ms 150   # the test suite's size

Each host is its own folder (`SWEEP_HOME`) and its agents share nothing with the other hosts but
the PostgreSQL URL and the artifact root (a folder standing in for a network filesystem). Agents
are real `sweep agent` processes with `bench.fake_train` (it sleeps instead of training, but
writes and resumes checkpoints the way `train()` does). While they work, a random agent is
SIGKILLed every `--kill-every` seconds in the middle of its run (after it recorded an epoch of it)
and a new one starts on the same host, and the PostgreSQL
server itself is restarted once, when about `--restart-at` of the grid is done. Then the store is
checked: every grid point finished exactly once with every epoch recorded once, none lost, none
duplicated, no run failed, and how many runs resumed on another host than they started on.
Exit code 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from bench.jsonl import append_lines
from bench.claims import grid_config
from bench.fake_train import WORK_MS_ENV
from bench.postgres_server import PostgresServer


class Host:
    """One simulated machine: its own SWEEP_HOME; `env` adds what it shares (store URL, artifact root)."""

    def __init__(self, name: str, root: Path, env: dict[str, str], sweep_id: str, lease_s: float,
                 train_fn: str | None = "bench.fake_train:instant_train") -> None:
        # train_fn None: the real training function.
        self.name, self.sweep_id, self.lease_s, self.train_fn = name, sweep_id, lease_s, train_fn
        self.home = root / name
        self.home.mkdir(parents=True)
        self.env = dict(os.environ, SWEEP_HOME=str(self.home), WANDB_MODE="disabled", **env)
        self.started = 0

    def start_agent(self) -> subprocess.Popen:
        self.started += 1
        log = self.home / f"agent-{self.started}.log"
        with log.open("wb") as out:
            return subprocess.Popen([sys.executable, "-m", "cli.main", "agent", self.sweep_id, "--plain",
                                     "--label", f"{self.name}-{self.started}", "--lease-seconds", str(self.lease_s),
                                     *(["--train-fn", self.train_fn] if self.train_fn else [])],
                                    env=self.env, stdout=out, stderr=subprocess.STDOUT)


def host_of(agent_id: str) -> str:
    """Agents are labelled `<host>-<n>`: the simulated host is the label's first part."""
    return agent_id.split("@", 1)[0].rsplit("-", 1)[0]


def run(hosts: int, agents: int, points: int, epochs: int, work_ms: float, kill_every: tuple[float, float],
        restart_at: float, lease_s: float, seed: int, root: Path,
        server: PostgresServer | None = None, max_kills: int | None = None) -> dict[str, Any]:
    """One chaotic drain; on `server` (which it restarts) or a throwaway server of its own."""
    from agent.sweep_config import validate_sweep
    from store.open import open_store

    rng = random.Random(seed)
    own = server is None
    server = server or PostgresServer()
    try:
        url = server.new_database()
        artifacts = root / "shared-artifacts"
        spec = validate_sweep(grid_config(points, epochs), source="bench")
        store = open_store(url, home=root / "login-node", create=True)
        sweep = store.create_sweep(spec.config)
        shared = {"SWEEP_STORE": url, "SWEEP_ARTIFACTS": str(artifacts), WORK_MS_ENV: str(work_ms)}
        machines = [Host(f"host{chr(ord('a') + i)}", root, shared, sweep.id, lease_s) for i in range(hosts)]
        live = [(machines[i % hosts], machines[i % hosts].start_agent()) for i in range(agents)]
        restarted = False

        def restart_once(runs: list[Any]) -> None:
            nonlocal restarted
            done = sum(1 for r in runs if r.state == "finished")
            if not restarted and done >= restart_at * spec.grid_size:
                server.stop("fast")  # every agent's connection drops mid-sweep
                time.sleep(3)
                server.start()
                restarted = True

        kills, exit_codes, wall = drain_under_fire(live, store, sweep.id, rng, kill_every, 600.0, restart_once,
                                                   mid_epoch_only=True, max_kills=max_kills)
        return check(store, sweep.id, spec.grid_size, epochs) | {
            "hosts": hosts, "agents": agents, "grid_points": spec.grid_size, "epochs_per_run": epochs,
            "kills": kills, "postgres_restarted": restarted, "wall_seconds": round(wall, 1),
            "agent_exit_codes": dict(Counter(exit_codes)),
            "agents_started": sum(m.started for m in machines)}
    finally:
        if own:
            server.close()


def drain_under_fire(live: list[tuple[Host, subprocess.Popen]], store: Any, sweep_id: str, rng: random.Random,
                     kill_every: tuple[float, float], deadline_s: float,
                     on_tick: Callable[[list[Any]], None] | None = None,
                     mid_epoch_only: bool = False, max_kills: int | None = None) -> tuple[int, list[int], float]:
    """Wait for the agents to drain the sweep, SIGKILLing one that holds a run every `kill_every`
    seconds and starting a new one on the same host. Returns kills, exit codes and wall seconds.

    mid_epoch_only: kill only agents whose run has recorded an epoch since they took it. Otherwise
    the last runs of a sweep, the only ones still training, take every kill right after they
    start, and three such kills without progress are the retry limit doing its job.
    max_kills: stop firing after that many, so that a short check ends without waiting out the
    lease of a kill in its last seconds."""
    kills, exit_codes = 0, []
    first_seen: dict[str, int] = {}  # owner -> epochs the run had when this owner was first seen on it
    started = time.perf_counter()
    next_kill = started + rng.uniform(*kill_every)
    while time.perf_counter() < started + deadline_s:
        time.sleep(0.2)
        still = []
        for machine, process in live:
            if process.poll() is None:
                still.append((machine, process))
            else:
                exit_codes.append(process.returncode)
        live[:] = still
        if not live:
            break
        runs = _runs_or_empty(store, sweep_id)
        if on_tick is not None:
            on_tick(runs)
        # Kill agents in the middle of a run: those that own one now (`label@host:pid`).
        holding = [r for r in runs if r.state == "running" and r.owner]
        for r in holding:
            first_seen.setdefault(r.owner, r.epochs_done)
        owners = {int(r.owner.rsplit(":", 1)[1]) for r in holding
                  if not mid_epoch_only or r.epochs_done > first_seen[r.owner]}
        training = [i for i, (_, process) in enumerate(live) if process.pid in owners]
        if time.perf_counter() >= next_kill and training and (max_kills is None or kills < max_kills):
            index = rng.choice(training)
            machine, victim = live[index]
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            kills += 1
            live[index] = (machine, machine.start_agent())
            next_kill = time.perf_counter() + rng.uniform(*kill_every)
    wall = time.perf_counter() - started
    for _, process in live:
        process.kill()
        process.wait()
    return kills, exit_codes, wall


def _runs_or_empty(store: Any, sweep_id: str) -> list[Any]:
    from store.errors import StoreError

    try:
        return store.list_runs(sweep_id, with_history=False)
    except StoreError:
        return []  # the server is restarting


def check(store: Any, sweep_id: str, points: int, epochs: int) -> dict[str, Any]:
    runs = store.list_runs(sweep_id)
    attempts = store.list_attempts(sweep_id)
    configs = Counter(json.dumps(r.config, sort_keys=True) for r in runs)
    complete = [r for r in runs if r.state == "finished" and [h["epoch"] for h in r.history] == list(range(1, epochs + 1))]
    by_run: dict[str, list[Any]] = {}
    for attempt in attempts:
        by_run.setdefault(attempt.run_id, []).append(attempt)
    moved = sum(1 for tries in by_run.values() if len({host_of(a.agent) for a in tries}) > 1)
    return {
        "runs": len(runs), "finished_exactly_once": len(complete),
        "duplicated": sum(1 for n in configs.values() if n > 1), "lost": points - len(complete),
        "failed": sum(1 for r in runs if r.state == "failed"),
        "runs_with_a_failed_attempt": len({a.run_id for a in attempts if a.outcome == "failed"}),
        "attempts": len(attempts), "crashed_attempts": sum(1 for a in attempts if a.outcome == "crashed"),
        "resumed_on_another_host": moved, "states": dict(Counter(r.state for r in runs)),
        "sweep_state": store.get_sweep(sweep_id).state,
        "unfinished": [{"run": r.id, "state": r.state, "failures": r.failures, "epochs_done": r.epochs_done,
                        "attempts": [f"{a.agent}: {a.outcome} ({a.detail})" for a in by_run.get(r.id, [])]}
                       for r in runs if r.state != "finished"],
    }


def passed(result: dict[str, Any]) -> bool:
    return (result["finished_exactly_once"] == result["grid_points"] == result["runs"] and not result["duplicated"]
            and not result["lost"] and not result["failed"] and not result["runs_with_a_failed_attempt"]
            and result["postgres_restarted"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--points", type=int, default=125, help="grid size, rounded up to a multiple of 25")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--work-ms", type=float, default=250.0, help="sleep per epoch, standing in for training")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(2.0, 4.0), metavar=("MIN_S", "MAX_S"))
    parser.add_argument("--restart-at", type=float, default=0.4, help="fraction of the grid done at the restart")
    parser.add_argument("--lease-seconds", type=float, default=30.0,
                        help="the agents' lease; on a saturated 2-core machine 10 s proved too short for live agents")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="append the result as a JSON line here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-hosts-") as scratch:
        result = run(args.hosts, args.agents, args.points, args.epochs, args.work_ms, tuple(args.kill_every),
                     args.restart_at, args.lease_seconds, args.seed, Path(scratch))
    finish(result, f"{result['hosts']} hosts, {result['agents']} agents ({result['agents_started']} started, "
                   f"{result['kills']} SIGKILLed), PostgreSQL restarted: {result['postgres_restarted']}; "
                   f"{result['grid_points']} points in {result['wall_seconds']} s: finished exactly once "
                   f"{result['finished_exactly_once']}, lost {result['lost']}, duplicated {result['duplicated']}, "
                   f"failed {result['failed']}; resumed on another host: {result['resumed_on_another_host']}",
           args.out, passed(result))


def finish(result: dict[str, Any], summary: str, out: Path | None, ok: bool) -> None:
    """A drain benchmark's ending: the result as JSON on stdout, the summary on stderr, the JSON
    line appended to `out`, and exit code 0 only when every check passed."""
    print(json.dumps(result))
    print(summary, file=sys.stderr)
    append_lines(out, json.dumps(result))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
