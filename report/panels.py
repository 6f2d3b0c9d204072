"""The data behind the sweep-level panels, computed once for `sweep report` and `sweep dashboard`.

The static report draws these as PNG (report.sweep_figures, report.run_figures) and the dashboard
as Plotly charts; both call the functions here, so the two never disagree about which run is best,
where a run sits on an axis, or how important a parameter is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel

from report.artifacts import confusion_counts
from report.errors import ReportError
from report.importance import ParameterInfluence, parameter_influence
from report.parameters import SweptParameter, category_label, is_number, parameter_value
from report.render import Unavailable
from report.select import Metric, RankedRun, best_finished_run, rank_runs, sweep_metric
from report.seeds import SettingOverSeeds, pool_seeds
from store.records import RunRecord, SweepRecord

SPREAD = 0.15  # how far apart runs sharing a category are placed on a scatter panel


class Axis(BaseModel):
    """One parallel-coordinates axis: each run's place on it in [0, 1], and where its labels go."""

    label: str
    positions: list[float]
    ticks: list[tuple[float, str]]


class ParallelCoordinates(BaseModel):
    run_ids: list[str]  # in creation order, matching every axis's positions
    scores: list[float]
    axes: list[Axis]  # one per swept parameter, then the metric


class ScatterPanel(BaseModel):
    """One hyperparameter's value against each scored run's best metric."""

    parameter: str
    log: bool  # numeric and drawn from a log distribution: a log x axis
    categories: list[str] | None  # categorical: x is the category's slot, spread a little per run
    x: list[float]
    run_ids: list[str]
    scores: list[float]


class ConfusionPanel(BaseModel):
    classes: list[str]
    counts: list[list[int]]  # counts[true][predicted] on the test set, without TTA
    normalised: list[list[float]]  # each row divided by its true-class total
    true_totals: list[int]
    predicted_totals: list[int]


class SweepPanels(BaseModel):
    """Everything the sweep-level panels show; a panel that cannot be drawn is None with its reason."""

    metric: Metric
    best_id: str | None  # the best finished run (only a finished run has test results)
    leader_id: str | None  # the top-ranked run, which may still be running
    scored: int
    parameters: list[SweptParameter]
    parallel: ParallelCoordinates | None
    importance: list[ParameterInfluence]
    scatter: list[ScatterPanel]
    confusion: ConfusionPanel | None
    over_seeds: list[SettingOverSeeds]  # when `seed` is swept: each setting pooled over its finished seeds
    skipped: dict[str, str]  # panel key -> why it is missing


def axis(label: str, values: list[Any], log: bool = False) -> Axis:
    """Numbers on a linear (or log10) scale over their range; anything else as sorted categories."""
    if values and all(is_number(v) for v in values):
        raw = np.array(values, dtype=float)
        use_log = log and bool((raw > 0).all())
        scaled = np.log10(raw) if use_log else raw
        low, high = float(scaled.min()), float(scaled.max())
        span = high - low
        positions = (scaled - low) / span if span > 0 else np.full(len(raw), 0.5)
        stops = np.linspace(0, 1, 5) if span > 0 else np.array([0.5])
        at = (10 ** (low + stops * span)) if use_log else (low + stops * span)
        return Axis(label=label, positions=positions.tolist(),
                    ticks=[(float(s), f"{v:.3g}") for s, v in zip(stops, at)])
    labels = [category_label(v) for v in values]
    categories = sorted(set(labels))
    place = {c: (i / (len(categories) - 1) if len(categories) > 1 else 0.5) for i, c in enumerate(categories)}
    return Axis(label=label, positions=[place[label] for label in labels], ticks=[(place[c], c) for c in categories])


def chronological(ranked: list[RankedRun]) -> list[RankedRun]:
    if not ranked:
        raise Unavailable("no run reported the metric")
    return sorted(ranked, key=lambda r: (r.run.created_at, r.run.id))


def parallel_coordinates(ranked: list[RankedRun], parameters: list[SweptParameter],
                         metric: Metric) -> ParallelCoordinates:
    if not parameters:
        raise Unavailable("the sweep varies no parameter")
    runs = chronological(ranked)
    axes = [axis(p.name, [parameter_value(r.run.config, p.name) for r in runs], p.log) for p in parameters]
    axes.append(axis(metric.name, [r.score for r in runs]))
    return ParallelCoordinates(run_ids=[r.run.id for r in runs], scores=[r.score for r in runs], axes=axes)


def metric_against_parameters(ranked: list[RankedRun], parameters: list[SweptParameter]) -> list[ScatterPanel]:
    if not parameters:
        raise Unavailable("the sweep varies no parameter")
    runs = chronological(ranked)
    panels = []
    for parameter in parameters:
        values = [parameter_value(r.run.config, parameter.name) for r in runs]
        if all(is_number(v) for v in values):
            x = [float(v) for v in values]
            log = parameter.log and all(v > 0 for v in x)
            categories = None
        else:
            categories = [label for _, label in axis(parameter.name, values).ticks]
            x = spread([categories.index(category_label(v)) for v in values])
            log = False
        panels.append(ScatterPanel(parameter=parameter.name, log=log, categories=categories, x=x,
                                   run_ids=[r.run.id for r in runs], scores=[r.score for r in runs]))
    return panels


def spread(slots: list[int]) -> list[float]:
    """Place runs that share a category side by side, deterministically, instead of on top of each other."""
    positions = np.array(slots, dtype=float)
    for slot in set(slots):
        members = [i for i, s in enumerate(slots) if s == slot]
        if len(members) > 1:
            positions[members] += np.linspace(-SPREAD, SPREAD, len(members))
    return positions.tolist()


def importance(ranked: list[RankedRun], parameters: list[SweptParameter]) -> list[ParameterInfluence]:
    if len(ranked) < 2:  # nothing to learn from (a live sweep's first minutes)
        return []
    return parameter_influence([r.run.config for r in ranked], [r.score for r in ranked], parameters)


def confusion(run: RunRecord) -> ConfusionPanel:
    """The run's test-set confusion matrix (from its summary, else its saved predictions)."""
    found = confusion_counts(run)
    counts = np.array(found.counts, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    whole = np.array(found.counts, dtype=np.int64)
    return ConfusionPanel(classes=found.classes, counts=whole.tolist(), normalised=normalised.tolist(),
                          true_totals=whole.sum(axis=1).tolist(), predicted_totals=whole.sum(axis=0).tolist())


def sweep_panels(sweep: SweepRecord, runs: list[RunRecord], parameters: list[SweptParameter],
                 with_importance: bool = True) -> SweepPanels:
    """Every sweep-level panel's data. Raises ReportError only for a sweep without a metric."""
    metric = sweep_metric(sweep)
    ranked = rank_runs(runs, metric)
    skipped: dict[str, str] = {}
    try:
        best: RunRecord | None = best_finished_run(ranked, sweep.id).run
    except ReportError as reason:  # no finished run yet, as a live sweep often has
        best, skipped["confusion"] = None, str(reason)
    parallel, scatter, conf = None, [], None
    try:
        parallel = parallel_coordinates(ranked, parameters, metric)
        scatter = metric_against_parameters(ranked, parameters)
    except Unavailable as reason:
        skipped["parallel"] = skipped["scatter"] = str(reason)
    if best is not None:
        try:
            conf = confusion(best)
        except (Unavailable, ReportError) as reason:  # artifacts not written (yet), or unreadable
            skipped["confusion"] = str(reason)
    influence = importance(ranked, parameters) if with_importance else []
    if with_importance and not influence:
        skipped["importance"] = (f"parameter importance needs at least two runs ({len(ranked)} scored) whose "
                                 f"parameters and {metric.name} vary")
    return SweepPanels(metric=metric, best_id=best.id if best else None,
                       leader_id=ranked[0].run.id if ranked else None, scored=len(ranked), parameters=parameters,
                       parallel=parallel, importance=influence, scatter=scatter, confusion=conf,
                       over_seeds=pool_seeds(ranked, [p.name for p in parameters], metric), skipped=skipped)
