"""Sweep-wide figures, like W&B's sweep page: parallel coordinates, importance, metric per parameter."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from report.importance import ParameterInfluence
from report.parameters import SweptParameter, category_label, parameter_value
from report.render import Unavailable, new_figure
from report.select import Metric, RankedRun

BEST_COLOUR = "#d62728"
POSITIVE_COLOUR, NEGATIVE_COLOUR = "#2ca02c", "#d62728"
COLOURMAP = "viridis"
PANEL_COLUMNS = 3


class Axis:
    """One vertical axis: where each run's value sits in [0, 1], and the tick labels."""

    def __init__(self, label: str, values: list[Any], log: bool = False):
        self.label = label
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            self._numeric(values, log and all(v > 0 for v in values))
        else:
            self._categorical([category_label(v) for v in values])

    def _numeric(self, values: list[float], log: bool) -> None:
        raw = np.array(values, dtype=float)
        scaled = np.log10(raw) if log else raw
        low, high = float(scaled.min()), float(scaled.max())
        span = high - low
        self.positions = (scaled - low) / span if span > 0 else np.full(len(raw), 0.5)
        stops = np.linspace(0, 1, 5) if span > 0 else np.array([0.5])
        values_at = (10 ** (low + stops * span)) if log else (low + stops * span)
        self.ticks = [(float(s), f"{v:.3g}") for s, v in zip(stops, values_at)]

    def _categorical(self, labels: list[str]) -> None:
        categories = sorted(set(labels))
        place = {c: (i / (len(categories) - 1) if len(categories) > 1 else 0.5) for i, c in enumerate(categories)}
        self.positions = np.array([place[label] for label in labels])
        self.ticks = [(place[c], c) for c in categories]


def parallel_coordinates(ranked: list[RankedRun], parameters: list[SweptParameter], metric: Metric,
                         best_id: str) -> Figure:
    """One line per run through its hyperparameters to its metric, coloured by the metric."""
    if not parameters:
        raise Unavailable("the sweep varies no parameter")
    runs = _chronological(ranked)
    axes_spec = [Axis(p.name, [parameter_value(r.run.config, p.name) for r in runs], p.log) for p in parameters]
    axes_spec.append(Axis(metric.name, [r.score for r in runs]))
    colour_scale = _score_scale([r.score for r in runs])
    palette = colormaps[COLOURMAP if metric.goal == "maximize" else f"{COLOURMAP}_r"]

    figure = new_figure(max(7.0, 1.9 * len(axes_spec)), 5.0)
    axes = figure.add_subplot()
    xs = np.arange(len(axes_spec))
    for index, ranked_run in enumerate(runs):
        ys = [axis.positions[index] for axis in axes_spec]
        is_best = ranked_run.run.id == best_id
        axes.plot(xs, ys, color=BEST_COLOUR if is_best else palette(colour_scale(ranked_run.score)),
                  linewidth=3.0 if is_best else 1.4, alpha=1.0 if is_best else 0.8, zorder=3 if is_best else 2)
    for x, axis in zip(xs, axes_spec):
        axes.axvline(x, color="black", linewidth=0.8, zorder=1)
        for position, text in axis.ticks:
            axes.text(x + 0.04, position, text, fontsize=7, va="center", ha="left", zorder=4,
                      bbox=dict(facecolor="white", edgecolor="none", alpha=0.7, pad=0.5))
    axes.set_xticks(xs, [axis.label for axis in axes_spec], rotation=20, ha="right")
    axes.set_xlim(-0.1, len(axes_spec) - 0.6)
    axes.set_ylim(-0.05, 1.05)
    axes.set_yticks([])
    for side in ("left", "right", "top"):
        axes.spines[side].set_visible(False)
    figure.colorbar(ScalarMappable(norm=colour_scale, cmap=palette), ax=axes, label=f"{metric.name} ({metric.goal})",
                    shrink=0.8)
    shown_best = " (red: best finished run)" if any(r.run.id == best_id for r in runs) else ""
    axes.set_title(f"Hyperparameters against {metric.name}, {len(runs)} runs{shown_best}", pad=12)
    return figure


def importance_chart(influence: list[ParameterInfluence], metric: Metric, run_count: int) -> Figure:
    """Random-forest importance and Pearson correlation of each hyperparameter with the metric."""
    if not influence:
        raise Unavailable(f"parameter importance needs at least two runs ({run_count} scored) whose parameters "
                          f"and {metric.name} vary")
    names = [row.name for row in influence][::-1]  # most important at the top
    importance = [row.importance for row in influence][::-1]
    correlation = [row.correlation for row in influence][::-1]
    figure = new_figure(10.0, max(2.6, 0.38 * len(names) + 1.4))
    left, right = figure.subplots(1, 2, sharey=True)
    left.barh(names, importance, color="#1f77b4", height=0.6)
    left.set_xlim(0, 1.15)  # room for the value labels
    left.set_title("importance (random forest)")
    right.barh(names, correlation, color=[POSITIVE_COLOUR if c >= 0 else NEGATIVE_COLOUR for c in correlation],
               height=0.6)
    right.set_xlim(-1.3, 1.3)
    right.axvline(0, color="black", linewidth=0.8)
    right.set_title("correlation (Pearson r)")
    for axes, values, fmt in ((left, importance, "{:.2f}"), (right, correlation, "{:+.2f}")):
        axes.grid(axis="x", alpha=0.3)
        for y, value in enumerate(values):
            axes.text(value, y, " " + fmt.format(value), va="center", ha="left" if value >= 0 else "right",
                      fontsize=8)
    figure.suptitle(f"Parameter importance with respect to {metric.name} ({run_count} runs)")
    return figure


def metric_against_parameters(ranked: list[RankedRun], parameters: list[SweptParameter], metric: Metric,
                              best_id: str) -> Figure:
    """One scatter panel per hyperparameter: its value against the run's best metric."""
    if not parameters:
        raise Unavailable("the sweep varies no parameter")
    runs = _chronological(ranked)
    columns = min(PANEL_COLUMNS, len(parameters))
    rows = math.ceil(len(parameters) / columns)
    figure = new_figure(4.2 * columns, 3.3 * rows)
    grid = figure.subplots(rows, columns, squeeze=False)
    scores = [r.score for r in runs]
    best = [r.run.id == best_id for r in runs]
    for axes in grid.flat[len(parameters):]:
        axes.set_axis_off()
    for axes, parameter in zip(grid.flat, parameters):
        values = [parameter_value(r.run.config, parameter.name) for r in runs]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            xs = np.array(values, dtype=float)
            if parameter.log and (xs > 0).all():
                axes.set_xscale("log")
                # Plain numbers at 1-2-5 steps: default minor-tick labels overlap on a narrow panel.
                axes.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                axes.xaxis.set_major_formatter(FormatStrFormatter("%g"))
                axes.xaxis.set_minor_formatter(NullFormatter())
        else:
            axis = Axis(parameter.name, values)
            categories = [label for _, label in axis.ticks]
            xs = _spread([categories.index(category_label(v)) for v in values])
            axes.set_xticks(range(len(categories)), categories, rotation=20, ha="right")
            axes.set_xlim(-0.5, len(categories) - 0.5)
        plain = [i for i, b in enumerate(best) if not b]
        axes.scatter(xs[plain], np.array(scores)[plain], color="#1f77b4", alpha=0.8, s=30)
        starred = [i for i, b in enumerate(best) if b]
        axes.scatter(xs[starred], np.array(scores)[starred], color=BEST_COLOUR, marker="*", s=160, zorder=3,
                     label="best run")
        axes.set_xlabel(parameter.name)
        axes.set_ylabel(metric.name)
        axes.grid(alpha=0.3)
    if any(best):
        grid.flat[0].legend(fontsize=8)
    figure.suptitle(f"{metric.name} ({metric.goal}) against each hyperparameter")
    return figure


def _score_scale(scores: list[float]) -> Normalize:
    low, high = min(scores), max(scores)
    if high == low:  # one run, or all equal: widen so the colour bar still has a range
        pad = max(abs(low) * 0.01, 1e-3)
        low, high = low - pad, high + pad
    return Normalize(vmin=low, vmax=high)


def _chronological(ranked: list[RankedRun]) -> list[RankedRun]:
    if not ranked:
        raise Unavailable("no run reported the metric")
    return sorted(ranked, key=lambda r: (r.run.created_at, r.run.id))


def _spread(slots: list[int]) -> np.ndarray:
    """Place runs that share a category side by side, deterministically, instead of on top of each other."""
    positions = np.array(slots, dtype=float)
    for slot in set(slots):
        members = [i for i, s in enumerate(slots) if s == slot]
        if len(members) > 1:
            positions[members] += np.linspace(-0.15, 0.15, len(members))
    return positions
