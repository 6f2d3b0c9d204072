"""What a sweep report says, independent of how it is shown (terminal, HTML, Markdown, JSON)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from report.importance import ParameterInfluence
from report.seeds import SettingOverSeeds
from report.select import Metric


class RunRow(BaseModel):
    """One run as the tables show it."""

    id: str
    state: str
    score: float | None  # best metric value over history, as the engine ranks runs
    epochs: int
    val_acc: float | None  # last epoch's
    test_acc: float | None
    test_acc_tta: float | None
    params: int | None
    wall_seconds: float | None
    config: dict[str, Any]  # the parameter values the sweep chose for this run


class FigureEntry(BaseModel):
    key: str  # file stem: <key>.png
    title: str
    caption: str
    scope: Literal["best run", "sweep"]
    path: str | None = None  # written file; None when skipped
    skipped: str | None = None  # why the stored runs could not give this figure


class SweepReport(BaseModel):
    sweep_id: str
    backend: str
    sweep_state: str
    method: str
    metric: Metric
    run_count: int
    states: dict[str, int]  # runs by state
    best: RunRow
    best_model: str | None
    best_full_config: dict[str, Any]  # every training setting of the best run
    leader_unfinished: RunRow | None  # an unfinished run that currently ranks above the best finished one
    unfinished: list[RunRow]
    top_runs: list[RunRow]
    parameters: list[str]  # the swept ones
    influence: list[ParameterInfluence]
    over_seeds: list[SettingOverSeeds] = []  # when `seed` is swept: each setting pooled over its seeds
    figures: list[FigureEntry] = []
