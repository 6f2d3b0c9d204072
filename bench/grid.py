"""A sweep file run by the project's own agents on this machine, as a table beside the paper's 84.5%.

    python -m bench.grid --data-dir DIR [--sweep sweeps/paper-grid-10.yaml] [--agents 3]
                         [--deadline-s 540] [--out bench/results/resnet9_grid.jsonl]

`sweep create` registers the sweep in a fresh store, then `--agents` real `sweep agent` processes
drain it side by side (on a machine with one GPU they share it). At the deadline the agents still
running get SIGTERM, which checkpoints and hands their runs back, so a later `sweep agent` on the
same `--home` finishes the grid. One JSON line per run (its swept values, best validation accuracy,
test accuracy with and without TTA, seconds), then a Markdown table: validation decides the order,
test is only reported. Exit code 1 if no run finished.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bench.jsonl import append_lines
from cli.polish import plural

ROOT = Path(__file__).resolve().parents[1]
PAPER_TEST_ACCURACY = 84.5  # the paper's best, from its W&B grid on this ResNet-9
STOP_GRACE_S = 60.0  # a SIGTERMed agent checkpoints its run first


class GridRun(BaseModel):
    sweep_file: str
    run: str
    state: str
    values: dict[str, Any]  # the swept parameters' values
    epochs: int  # epochs trained
    best_val_acc: float | None
    test_acc: float | None
    test_acc_tta: float | None
    train_seconds: float | None
    wall_seconds: float | None
    device: str | None
    agents: int


def sweep_cli(*args: str, home: Path) -> list[str]:
    return [sys.executable, "-m", "cli.main", *args, "--home", str(home)]


def child_env() -> dict[str, str]:
    """This process's environment less a store URL, so that every command uses the fresh store in --home."""
    from store.open import STORE_ENV

    return {key: value for key, value in os.environ.items() if key != STORE_ENV}


def drain(sweep_id: str, agents: int, home: Path, data_dir: Path | None, deadline_s: float) -> tuple[float, int]:
    """Agents until the sweep is drained or the deadline passes; (seconds, agents stopped at the deadline).

    Each agent's output goes to agent-N.log in the store's folder."""
    command = sweep_cli("agent", sweep_id, "--plain", home=home)
    command += ["--data-dir", str(data_dir)] if data_dir is not None else []
    started = time.monotonic()
    with contextlib.ExitStack() as logs:
        processes = [subprocess.Popen(command, cwd=ROOT, env=child_env(), stderr=subprocess.STDOUT,
                                      stdout=logs.enter_context((home / f"agent-{n}.log").open("w")))
                     for n in range(agents)]
        while any(p.poll() is None for p in processes) and time.monotonic() - started < deadline_s:
            time.sleep(1.0)
        stopped = [p for p in processes if p.poll() is None]
        for process in stopped:
            process.send_signal(signal.SIGTERM)
        for process in stopped:
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return time.monotonic() - started, len(stopped)


def grid_runs(home: Path, sweep_id: str, sweep_file: str, agents: int) -> list[GridRun]:
    from report.parameters import swept_parameters
    from report.select import run_score, sweep_metric
    from report.summary import run_row
    from store.open import open_store

    store = open_store(home=home)
    try:
        sweep = store.get_sweep(sweep_id)
        metric, names = sweep_metric(sweep), [p.name for p in swept_parameters(sweep.config)]
        runs = store.list_runs(sweep_id)
    finally:
        store.close()
    rows = []
    for run in runs:
        row = run_row(run, run_score(run, metric), names)  # the report's own reading of a run
        rows.append(GridRun(sweep_file=sweep_file, run=row.id, state=row.state, values=row.config, epochs=row.epochs,
                            best_val_acc=row.score, test_acc=row.test_acc, test_acc_tta=row.test_acc_tta,
                            train_seconds=run.summary.get("train_seconds"), wall_seconds=row.wall_seconds,
                            device=run.summary.get("device"), agents=agents))
    return rows


def percent(value: float | None) -> str:
    return f"{100 * value:.2f}" if value is not None else ""


def markdown(rows: list[GridRun]) -> str:
    """Finished runs best validation first, then the rest, with the paper's figure for comparison."""
    names = list(rows[0].values) if rows else []
    ordered = sorted(rows, key=lambda r: (r.best_val_acc is None, -(r.best_val_acc or 0.0)))
    lines = ["| " + " | ".join([*names, "state", "best val %", "test %", "test % (TTA)", "training s"]) + " |",
             "| " + " | ".join(["---"] * (len(names) + 5)) + " |"]
    for row in ordered:
        seconds = f"{row.train_seconds:.0f}" if row.train_seconds is not None else ""
        lines.append("| " + " | ".join([*(str(row.values[n]) for n in names), row.state, percent(row.best_val_acc),
                                        percent(row.test_acc), percent(row.test_acc_tta), seconds]) + " |")
    lines.append(f"\nThe paper's best: {PAPER_TEST_ACCURACY}% test accuracy.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="the folder holding cifar-10-batches-py/")
    parser.add_argument("--sweep", type=Path, default=ROOT / "sweeps" / "paper-grid-10.yaml")
    parser.add_argument("--agents", type=int, default=3, help="agents side by side (they share one GPU)")
    parser.add_argument("--deadline-s", type=float, default=540.0, help="SIGTERM the agents still running then")
    parser.add_argument("--home", type=Path, default=None, help="the store's folder (default: a new temporary one)")
    parser.add_argument("--out", type=Path, default=None, help="append one JSON line per run here")
    args = parser.parse_args(argv)
    if args.agents < 1:
        parser.error("--agents must be at least 1")
    home = args.home or Path(tempfile.mkdtemp(prefix="bench-grid-"))
    home.mkdir(parents=True, exist_ok=True)
    created = subprocess.run(sweep_cli("create", str(args.sweep), "--json", home=home), cwd=ROOT,
                             env=child_env(), capture_output=True, text=True, timeout=300)
    if created.returncode != 0:
        sys.exit(created.stderr.strip() or f"sweep create exited {created.returncode}")
    registered = json.loads(created.stdout)
    sweep_id, total = registered["id"], registered["total_configs"]
    seconds, stopped = drain(sweep_id, args.agents, home, args.data_dir, args.deadline_s)
    rows = grid_runs(home, sweep_id, args.sweep.name, args.agents)
    finished = [row for row in rows if row.state == "finished"]
    for row in rows:
        print(row.model_dump_json(), flush=True)
    append_lines(args.out, *(row.model_dump_json() for row in rows))
    print(markdown(rows))
    at_deadline = f"; {plural(stopped, 'agent')} stopped at the deadline" if stopped else ""
    print(f"\n{len(finished)} of {total or len(rows)} runs finished in {seconds:.0f} s with "
          f"{plural(args.agents, 'agent')}{at_deadline}; store: {home} (sweep {sweep_id}; "
          f"`sweep agent {sweep_id} --home {home}` finishes the rest)", flush=True)
    if not finished:
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
