"""`sweep create` on bad input: exit code, wall and CPU seconds, peak memory and the one line, per input.

    python -m bench.create_memory [--out bench/results/create_memory.jsonl]

Each input is a real file given to a real `python -m cli.main create FILE --home TMP`; the child's
peak RSS is read with getrusage(RUSAGE_CHILDREN) in a fresh wrapper process, so no other child of
this one can be mistaken for it. `python -c pass` is timed first: on a loaded machine wall time
says more about the load than about `sweep create`, CPU seconds less so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "create_memory.jsonl"

# Nine parameters of ten values each: a 10^9-point grid in about a kilobyte.
GRID_VALUES = {
    "lr": [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8],
    "momentum": [0.0, 0.5, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99],
    "weight_decay": [0.0, 1.0e-5, 2.0e-5, 5.0e-5, 1.0e-4, 2.0e-4, 5.0e-4, 1.0e-3, 2.0e-3, 5.0e-3],
    "grad_clip": [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 8.0, 10.0],
    "label_smoothing": [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45],
    "warmup": [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45],
    "batch_size": [32, 64, 96, 128, 160, 192, 256, 384, 512, 1024],
    "cutout": [0, 2, 4, 6, 8, 10, 12, 14, 16, 20],
    "translate": [0, 1, 2, 3, 4, 5, 6, 7, 8, 10],
}


def grid_text(names: list[str]) -> str:
    lines = ["method: grid", "metric:", "  name: val_acc", "  goal: maximize", "parameters:",
             "  model:", "    value: fast", "  epochs:", "    value: 10"]
    for name in names:
        lines += [f"  {name}:", f"    values: [{', '.join(map(str, GRID_VALUES[name]))}]"]
    return "\n".join(lines) + "\n"


def alias_bomb_text(levels: int = 9) -> str:
    """`billion laughs`: each anchor lists the previous one ten times; 10^levels values in a few hundred bytes."""
    items = ["&a0 [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]"]
    items += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "method: random\nparameters:\n  lr:\n    values: [" + ", ".join(items) + "]\n"


def deep_text(depth: int = 5000) -> str:
    return "method: grid\nparameters:\n  lr:\n    values: [" + "[" * depth + "]" * depth + "]\n"


def write_big(path: Path, size: int = 50 * 1024 * 1024) -> None:
    """A valid sweep followed by ~50 MB of YAML comments."""
    with path.open("w") as handle:
        handle.write("method: grid\nparameters:\n  lr:\n    values: [0.1]\n")
        line = "# " + "x" * 77 + "\n"
        handle.write(line * (size // len(line)))


GOOD_GRID = ("method: grid\nmetric: {name: val_acc, goal: maximize}\nparameters:\n  model: {value: fast}\n"
             "  epochs: {value: 10}\n  lr: {values: [0.05, 0.1, 0.2]}\n  weight_decay: {values: [5e-4, 1e-3]}\n")
NORMAL_WD = ("method: random\nmetric: {name: val_acc}\nparameters:\n  weight_decay:\n    distribution: normal\n"
             "    mu: 0.0005\n    sigma: 0.0001\n")

# (name, builder writing the file, what it is); the builders take the path to write.
INPUTS: list[tuple[str, Callable[[Path], Any], str]] = [
    ("grid_1e9", lambda p: p.write_text(grid_text(list(GRID_VALUES))), "9 parameters x 10 values (10^9 points)"),
    ("grid_1e7", lambda p: p.write_text(grid_text(list(GRID_VALUES)[:7])), "7 parameters x 10 values (10^7 points)"),
    ("int_range_grid", lambda p: p.write_text("method: grid\nparameters:\n  seed: {min: 0, max: 1000000000000}\n"),
     "grid over int_uniform 0..10^12"),
    ("alias_bomb", lambda p: p.write_text(alias_bomb_text()), "billion laughs: 10^10 values through aliases"),
    ("recursive_alias", lambda p: p.write_text("method: grid\nparameters: &p\n  lr: {value: 0.1}\n  seed: *p\n"),
     "an alias inside its own anchor"),
    ("deep_nesting", lambda p: p.write_text(deep_text()), "5,000 nested lists"),
    ("big_50mb", write_big, "50 MB file (valid sweep + comments)"),
    ("binary", lambda p: p.write_bytes(bytes(range(256)) * 16), "4 KB of binary"),
    ("latin1", lambda p: p.write_bytes("method: grid\nname: caf\xe9\nparameters: {lr: {value: 0.1}}\n"
                                       .encode("latin-1")), "Latin-1 text, not UTF-8"),
    ("list_parameters", lambda p: p.write_text("method: grid\nparameters:\n  - lr\n  - momentum\n"),
     "`parameters:` as a list"),
    ("inf_value", lambda p: p.write_text("method: grid\nparameters:\n  lr: {values: [.inf]}\n"), "lr: [.inf]"),
    ("nan_max", lambda p: p.write_text("method: random\nparameters:\n  lr: {min: 0.001, max: .nan}\n"),
     "lr max .nan"),
    ("huge_int", lambda p: p.write_text("method: grid\nparameters:\n  seed: {value: " + "9" * 5000 + "}\n"),
     "a 5,000-digit integer"),
    ("min_over_max", lambda p: p.write_text("method: random\nparameters:\n  lr: {min: 0.5, max: 0.01}\n"),
     "lr min 0.5 > max 0.01 (schema error, once)"),
    ("normal_weight_decay", lambda p: p.write_text(NORMAL_WD), "weight_decay ~ normal(5e-4, 1e-4): warned, created"),
    ("good_grid", lambda p: p.write_text(GOOD_GRID), "a good 6-point grid (reference)"),
    ("grid_1e5", lambda p: p.write_text(grid_text(["lr", "momentum", "grad_clip", "label_smoothing", "warmup"])),
     "5 parameters x 10 values: 100,000 points, the largest grid accepted"),
    ("values_99k", lambda p: p.write_text("method: random\nparameters:\n  lr:\n    values: ["
                                          + ", ".join(f"{0.001 + i * 1e-6:.6f}" for i in range(99_990)) + "]\n"),
     "random over a 99,990-value list (~1 MB, just under the node bound)"),
]


class CreateResult(BaseModel):
    input: str
    description: str = ""
    file_bytes: int
    exit_code: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    stderr_lines: int
    message: str  # the first stderr line, else the first stdout line


# Runs the command and reports the child's peak RSS (KB on Linux) and CPU time: a fresh process per input.
WRAPPER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True, errors="replace")
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": done.returncode, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
                  "maxrss_kb": usage.ru_maxrss, "stdout": done.stdout, "stderr": done.stderr}))
"""


def measure_create(path: Path, home: Path, timeout: float = 600) -> dict[str, Any]:
    """Run `python -m cli.main create PATH --home HOME`; its exit code, output, wall/CPU seconds and peak RSS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWEEP_", "WANDB_"))}
    env.update(PYTHONPATH=str(ROOT), WANDB_MODE="disabled")
    command = [sys.executable, "-c", WRAPPER, sys.executable, "-m", "cli.main", "create", str(path),
               "--home", str(home)]
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout, check=True)
    return json.loads(out.stdout)


def run_one(name: str, build: Callable[[Path], Any], description: str, folder: Path) -> CreateResult:
    path = folder / f"{name}.yaml"
    build(path)
    raw = measure_create(path, folder / f"home-{name}")
    lines = [line for line in raw["stderr"].splitlines() if line.strip()]
    first = lines[0] if lines else next((line for line in raw["stdout"].splitlines() if line.strip()), "")
    return CreateResult(input=name, description=description, file_bytes=path.stat().st_size, exit_code=raw["rc"],
                        wall_s=round(raw["wall"], 3), cpu_s=round(raw["cpu"], 3),
                        peak_rss_mb=round(raw["maxrss_kb"] / 1024, 1), stderr_lines=len(lines), message=first)


def baseline() -> dict[str, float]:
    """`python -c pass` through the same wrapper: the machine's own start-up cost right now."""
    out = subprocess.run([sys.executable, "-c", WRAPPER, sys.executable, "-c", "pass"], capture_output=True,
                         text=True, check=True)
    raw = json.loads(out.stdout)
    return {"wall_s": round(raw["wall"], 3), "cpu_s": round(raw["cpu"], 3),
            "peak_rss_mb": round(raw["maxrss_kb"] / 1024, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--only", nargs="*", help="input names to run (default: all)")
    args = parser.parse_args(argv)
    start = baseline()
    print(f"python -c pass: {start['wall_s']:.2f} s wall, {start['cpu_s']:.2f} s CPU, {start['peak_rss_mb']} MB"
          f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"{'input':<20} {'bytes':>10} {'exit':>4} {'wall s':>7} {'CPU s':>6} {'peak MB':>8}  message")
    results = []
    with tempfile.TemporaryDirectory(prefix="create-memory-") as tmp:
        for name, build, description in INPUTS:
            if args.only and name not in args.only:
                continue
            result = run_one(name, build, description, Path(tmp))
            results.append(result)
            message = result.message if len(result.message) <= 110 else result.message[:107] + "..."
            print(f"{name:<20} {result.file_bytes:>10,} {result.exit_code:>4} {result.wall_s:>7.2f} "
                  f"{result.cpu_s:>6.2f} {result.peak_rss_mb:>8.1f}  {message}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as handle:
        handle.write(json.dumps({"baseline": start, "load_average": os.getloadavg()[0],
                                 "cpus": os.cpu_count()}) + "\n")
        for result in results:
            handle.write(result.model_dump_json() + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
