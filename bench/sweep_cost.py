"""What a sweep file costs to run, per run and in all, on a 2-core CPU and on one H200, from recorded results.

    python -m bench.sweep_cost [sweeps/grid.yaml sweeps/bayes.yaml] [--json]

Nothing is trained: the rates come from `bench/results/`.
- 2-core CPU: training images/s per network from `throughput.jsonl` (`bench.throughput`, the training step
  as `train()` runs it, batch 500, 2 threads). A run's evaluation (validation every epoch, the test set
  with TTA at the end, loading) adds the share it took in the recorded 10-epoch resnet9 runs
  (`resnet9_cpu.jsonl`: wall / training time).
- H200: seconds per training epoch from the recorded runs (`resnet9_h200.jsonl` by batch size;
  `gpu_h200.jsonl` for `fast`, at its recipe's batch 2,000 only), plus the mean non-training seconds per run
  of the recorded resnet9 runs. A batch size that was never timed takes the nearest timed one's figure
  and is marked `*`; for `fast` at a smaller batch than 2,000 that is a lower bound (more, smaller steps).

Each run trains on 50,000 - val_size images per epoch. Grid sweeps are enumerated point by point. For
random and bayes sweeps the discrete choices that set the cost (model, batch size, epochs) are listed
with their cost, and the total is given as the range from `run_cap` cheapest to `run_cap` dearest runs and
as `run_cap` times the mean over those choices (every choice equally likely). Early termination
(hyperband) only lowers these figures: a stopped run costs the epochs it ran.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TRAIN_IMAGES = 50_000
# The batch of the recipe runs in gpu_h200.jsonl from before bench.gpu wrote each run's config
# (the registry's recipes when they ran); newer lines carry their own.
RECORDED_RECIPE_BATCH = {"fast": 2000, "resnet9": 64, "fast-wide": 2000}
DEFAULT_SWEEPS = ("sweeps/grid.yaml", "sweeps/bayes.yaml")


class Rates(BaseModel):
    """What the recorded results say about speed."""

    cpu_images_per_second: dict[str, float]  # model -> training images/s, 2-core CPU
    cpu_overhead: float  # wall / training time of a recorded CPU run (evaluation, loading)
    h200_epoch_seconds: dict[str, dict[int, float]]  # model -> batch size -> seconds per epoch on 50,000 images
    h200_run_overhead_s: float  # mean wall - training seconds of a recorded H200 run


class Cost(BaseModel):
    model: str
    batch_size: int
    epochs: float
    runs: int
    cpu_hours_per_run: float
    h200_minutes_per_run: float
    h200_estimated: bool  # this batch size was not timed on the H200 (nearest timed batch used)


class SweepCost(BaseModel):
    file: str
    method: str
    runs: int  # grid points, or run_cap
    rows: list[Cost]
    cpu_hours: tuple[float, float]  # (low, high); equal for a grid
    h200_hours: tuple[float, float]
    cpu_hours_mean: float | None = None  # random/bayes: run_cap x the mean over the choices
    h200_hours_mean: float | None = None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def recorded_rates(results: Path = RESULTS) -> Rates:
    cpu = {line["model"]: line["images_per_second"] for line in read_jsonl(results / "throughput.jsonl")
           if line.get("device") == "cpu"}
    cpu_runs = read_jsonl(results / "resnet9_cpu.jsonl")
    overhead = statistics.mean(line["wall_seconds"] / line["train_seconds"] for line in cpu_runs)
    h200: dict[str, dict[int, list[float]]] = {}
    gpu_runs = read_jsonl(results / "resnet9_h200.jsonl")
    for line in gpu_runs:
        if line["config"]["optimizer"] != "nesterov":  # the recipe's optimizer, which the sweeps keep
            continue
        per_epoch = line["train_seconds"] / line["epochs"] * TRAIN_IMAGES / (TRAIN_IMAGES - line["config"]["val_size"])
        h200.setdefault(line["model"], {}).setdefault(line["config"]["batch_size"], []).append(per_epoch)
    for line in read_jsonl(results / "gpu_h200.jsonl"):
        if "seed" in line and not line.get("overrides"):  # per-seed lines of the recipes (val_size=0)
            batch = line["config"]["batch_size"] if "config" in line else RECORDED_RECIPE_BATCH[line["model"]]
            h200.setdefault(line["model"], {}).setdefault(batch, []).append(line["train_seconds"] / line["epochs"])
    run_overhead = statistics.mean(line["wall_seconds"] - line["train_seconds"] for line in gpu_runs)
    return Rates(cpu_images_per_second=cpu, cpu_overhead=overhead,
                 h200_epoch_seconds={m: {b: statistics.mean(v) for b, v in sorted(by.items())}
                                     for m, by in h200.items()},
                 h200_run_overhead_s=run_overhead)


def run_cost(rates: Rates, model: str, batch_size: int, epochs: float, val_size: int, runs: int = 1) -> Cost:
    images = (TRAIN_IMAGES - val_size) * epochs
    cpu_s = images / rates.cpu_images_per_second[model] * rates.cpu_overhead
    timed = rates.h200_epoch_seconds[model]
    nearest = min(timed, key=lambda b: (abs(b - batch_size), b))
    h200_s = timed[nearest] * (TRAIN_IMAGES - val_size) / TRAIN_IMAGES * epochs + rates.h200_run_overhead_s
    return Cost(model=model, batch_size=batch_size, epochs=epochs, runs=runs, cpu_hours_per_run=cpu_s / 3600,
                h200_minutes_per_run=h200_s / 60, h200_estimated=nearest != batch_size)


def choices(spec: dict[str, Any]) -> list[Any]:
    if "value" in spec:
        return [spec["value"]]
    if "values" in spec:
        return list(spec["values"])
    raise ValueError(f"a cost-setting parameter must be a value or a list of values, not {spec}")


def sweep_cost(path: Path, rates: Rates) -> SweepCost:
    config = yaml.safe_load(path.read_text())
    parameters = config["parameters"]
    model_choices = choices(parameters.get("model", {"value": "fast"}))

    def setting(name: str, model: str) -> list[Any]:
        if name in parameters:
            return choices(parameters[name])
        from model.registry import REGISTRY

        return [REGISTRY[model].recipe[name]]

    val_size = int(choices(parameters.get("val_size", {"value": 5000}))[0])
    rows: list[Cost] = []
    for model in model_choices:
        for batch, epochs in itertools.product(setting("batch_size", model), setting("epochs", model)):
            rows.append(run_cost(rates, model, int(batch), float(epochs), val_size))
    if config["method"] == "grid":
        others = 1
        for name, spec in parameters.items():
            if name not in ("model", "batch_size", "epochs"):
                others *= len(choices(spec))
        rows = [row.model_copy(update={"runs": others}) for row in rows]
        cpu = sum(r.cpu_hours_per_run * r.runs for r in rows)
        gpu = sum(r.h200_minutes_per_run * r.runs for r in rows) / 60
        return SweepCost(file=str(path), method="grid", runs=sum(r.runs for r in rows), rows=rows,
                         cpu_hours=(cpu, cpu), h200_hours=(gpu, gpu))
    cap = int(config["run_cap"])
    cpu_each = [r.cpu_hours_per_run for r in rows]
    gpu_each = [r.h200_minutes_per_run / 60 for r in rows]
    return SweepCost(file=str(path), method=config["method"], runs=cap, rows=rows,
                     cpu_hours=(cap * min(cpu_each), cap * max(cpu_each)),
                     h200_hours=(cap * min(gpu_each), cap * max(gpu_each)),
                     cpu_hours_mean=cap * statistics.mean(cpu_each), h200_hours_mean=cap * statistics.mean(gpu_each))


def duration(hours: float) -> str:
    if hours >= 48:
        return f"{hours / 24:.1f} days"
    if hours >= 1:
        return f"{hours:.1f} h"
    return f"{hours * 60:.0f} min"


def markdown(costs: list[SweepCost], rates: Rates) -> str:
    lines = ["| sweep | model | batch | epochs | runs | 2-core CPU, per run | H200, per run |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for cost in costs:
        name = Path(cost.file).name
        for row in cost.rows:
            star = "*" if row.h200_estimated else ""
            runs = str(row.runs) if cost.method == "grid" else "-"
            lines.append(f"| `{name}` | `{row.model}` | {row.batch_size} | {row.epochs:g} | {runs} | "
                         f"{duration(row.cpu_hours_per_run)} | {row.h200_minutes_per_run:.1f} min{star} |")
    lines += ["", "| sweep | runs | 2-core CPU, in all | H200, in all |", "| --- | --- | --- | --- |"]
    for cost in costs:
        name = Path(cost.file).name
        if cost.method == "grid":
            lines.append(f"| `{name}` | {cost.runs} | {duration(cost.cpu_hours[0])} | {duration(cost.h200_hours[0])} |")
        else:
            lines.append(f"| `{name}` | {cost.runs} (`run_cap`) | {duration(cost.cpu_hours[0])} to "
                         f"{duration(cost.cpu_hours[1])}, mean {duration(cost.cpu_hours_mean or 0)} | "
                         f"{duration(cost.h200_hours[0])} to {duration(cost.h200_hours[1])}, "
                         f"mean {duration(cost.h200_hours_mean or 0)} |")
    cpu = ", ".join(f"`{m}` {v:.0f}" for m, v in sorted(rates.cpu_images_per_second.items()))
    gpu = "; ".join(f"`{m}` " + ", ".join(f"batch {b} {s:.2f} s" for b, s in by.items())
                    for m, by in sorted(rates.h200_epoch_seconds.items()))
    lines += ["", f"Rates. 2-core CPU: training images/s {cpu}; wall = training x {rates.cpu_overhead:.3f} "
                  f"(evaluation, loading). H200, seconds per epoch of 50,000 images: {gpu}; plus "
                  f"{rates.h200_run_overhead_s:.1f} s per run. `*`: that batch size was not timed on the H200 "
                  f"(the nearest timed one's figure)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="*", default=list(DEFAULT_SWEEPS))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown tables")
    args = parser.parse_args(argv)
    rates = recorded_rates(args.results)
    costs = [sweep_cost(ROOT / path if not Path(path).is_absolute() else Path(path), rates) for path in args.sweeps]
    if args.json:
        print(json.dumps({"rates": rates.model_dump(), "sweeps": [c.model_dump() for c in costs]}, indent=2))
    else:
        print(markdown(costs, rates))


if __name__ == "__main__":
    main()
