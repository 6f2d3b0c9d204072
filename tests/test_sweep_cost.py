"""bench.sweep_cost: a sweep's cost from the recorded rates, checked against the recorded runs themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.sweep_cost import RESULTS, main, read_jsonl, recorded_rates, run_cost, sweep_cost

ROOT = Path(__file__).resolve().parents[1]


def test_a_grid_costs_the_sum_of_its_points() -> None:
    rates = recorded_rates()
    cost = sweep_cost(ROOT / "sweeps" / "grid.yaml", rates)
    assert cost.runs == 108 and sum(row.runs for row in cost.rows) == 108
    assert {(row.batch_size, row.epochs) for row in cost.rows} == {(b, e) for b in (64, 128, 256) for e in (10, 20, 30)}
    # 3 lr x 2 weight decay x 2 clipping = 12 runs per (batch, epochs); 2,160 epochs of 45,000 images in all.
    assert all(row.runs == 12 for row in cost.rows)
    per_image = 45_000 / rates.cpu_images_per_second["resnet9"] * rates.cpu_overhead / 3600
    assert cost.cpu_hours[0] == pytest.approx(2160 * per_image)


def test_the_cpu_estimate_matches_the_recorded_cpu_run_it_is_built_from() -> None:
    rates = recorded_rates()
    [first, *_] = read_jsonl(RESULTS / "resnet9_cpu.jsonl")
    estimate = run_cost(rates, "resnet9", 64, 10, 5000).cpu_hours_per_run * 3600
    assert estimate == pytest.approx(first["wall_seconds"], rel=0.05)


def test_the_h200_estimate_matches_a_recorded_h200_run() -> None:
    rates = recorded_rates()
    recorded = [line for line in read_jsonl(RESULTS / "resnet9_h200.jsonl")
                if line["config"]["batch_size"] == 64 and line["config"]["optimizer"] == "nesterov"]
    estimate = run_cost(rates, "resnet9", 64, 10, 5000)
    assert not estimate.h200_estimated
    assert estimate.h200_minutes_per_run * 60 == pytest.approx(recorded[0]["wall_seconds"], rel=0.05)
    assert run_cost(rates, "resnet9", 512, 10, 5000).h200_estimated  # never timed: marked


def test_a_capped_search_gives_a_range_around_its_mean(capsys) -> None:
    main(["sweeps/bayes.yaml", "--json"])
    [cost] = json.loads(capsys.readouterr().out)["sweeps"]
    assert cost["runs"] == 40 and len(cost["rows"]) == 2 * 2 * 3  # model x batch x epochs choices
    low, high = cost["cpu_hours"]
    assert low < cost["cpu_hours_mean"] < high
