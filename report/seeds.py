"""Runs that differ only in their seed, pooled: each setting's mean and range over its seeds.

One seed's accuracy on CIFAR-10 moves by a few tenths of a point from seed to seed, as much as many
recipe switches do, so a sweep that lists `seed` among its parameters is asking for the comparison
by setting. Only finished runs are pooled, so every row compares complete trainings.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from pydantic import BaseModel

from report.parameters import is_number, parameter_value
from report.select import Metric, RankedRun

SEED = "seed"


class SettingOverSeeds(BaseModel):
    setting: dict[str, Any]  # the swept values other than the seed
    seeds: list[Any]  # of its finished runs, in the order of the runs' creation
    score_mean: float  # the sweep's metric, each run scored as the engine scores it
    score_min: float
    score_max: float
    test_acc_tta_mean: float | None  # reported only (None unless every run has it): selection is on the metric


def pool_seeds(ranked: list[RankedRun], parameter_names: list[str], metric: Metric) -> list[SettingOverSeeds]:
    """One row per setting of the other swept parameters, best mean first; [] when seed is not swept."""
    if SEED not in parameter_names:
        return []
    others = [name for name in parameter_names if name != SEED]
    groups: dict[str, tuple[dict[str, Any], list[RankedRun]]] = {}
    for entry in sorted(ranked, key=lambda r: r.run.created_at):
        if entry.run.state == "finished":
            setting = {name: parameter_value(entry.run.config, name) for name in others}
            groups.setdefault(json.dumps(setting, sort_keys=True, default=str), (setting, []))[1].append(entry)
    rows = [_row(setting, entries) for setting, entries in groups.values()]
    direction = -1 if metric.goal == "maximize" else 1
    return sorted(rows, key=lambda row: direction * row.score_mean)


def _row(setting: dict[str, Any], entries: list[RankedRun]) -> SettingOverSeeds:
    scores = [entry.score for entry in entries]
    tta = [entry.run.summary.get("test_acc_tta") for entry in entries]
    return SettingOverSeeds(
        setting=setting, seeds=[parameter_value(entry.run.config, SEED) for entry in entries],
        score_mean=statistics.fmean(scores), score_min=min(scores), score_max=max(scores),
        test_acc_tta_mean=statistics.fmean(tta) if all(is_number(v) for v in tta) else None,
    )
