"""Sweep-wide figures as PNG, like W&B's sweep page: parallel coordinates, importance, metric per parameter.

The data comes from report.panels, which the dashboard draws from too."""

from __future__ import annotations

import math

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from report.importance import ParameterInfluence
from report.panels import ParallelCoordinates, ScatterPanel
from report.render import Unavailable, new_figure
from report.select import Metric

BEST_COLOUR = "#d62728"
POSITIVE_COLOUR, NEGATIVE_COLOUR = "#2ca02c", "#d62728"
COLOURMAP = "viridis"
PANEL_COLUMNS = 3


def parallel_coordinates(panel: ParallelCoordinates, metric: Metric, best_id: str) -> Figure:
    """One line per run through its hyperparameters to its metric, coloured by the metric."""
    colour_scale = _score_scale(panel.scores)
    palette = colormaps[COLOURMAP if metric.goal == "maximize" else f"{COLOURMAP}_r"]

    figure = new_figure(max(7.0, 1.9 * len(panel.axes)), 5.0)
    axes = figure.add_subplot()
    xs = np.arange(len(panel.axes))
    for index, (run_id, score) in enumerate(zip(panel.run_ids, panel.scores)):
        ys = [axis.positions[index] for axis in panel.axes]
        is_best = run_id == best_id
        axes.plot(xs, ys, color=BEST_COLOUR if is_best else palette(colour_scale(score)),
                  linewidth=3.0 if is_best else 1.4, alpha=1.0 if is_best else 0.8, zorder=3 if is_best else 2)
    for x, axis in zip(xs, panel.axes):
        axes.axvline(x, color="black", linewidth=0.8, zorder=1)
        for position, text in axis.ticks:
            axes.text(x + 0.04, position, text, fontsize=7, va="center", ha="left", zorder=4,
                      bbox=dict(facecolor="white", edgecolor="none", alpha=0.7, pad=0.5))
    axes.set_xticks(xs, [axis.label for axis in panel.axes], rotation=20, ha="right")
    axes.set_xlim(-0.1, len(panel.axes) - 0.6)
    axes.set_ylim(-0.05, 1.05)
    axes.set_yticks([])
    for side in ("left", "right", "top"):
        axes.spines[side].set_visible(False)
    figure.colorbar(ScalarMappable(norm=colour_scale, cmap=palette), ax=axes, label=f"{metric.name} ({metric.goal})",
                    shrink=0.8)
    shown_best = " (red: best finished run)" if best_id in panel.run_ids else ""
    axes.set_title(f"Hyperparameters against {metric.name}, {len(panel.run_ids)} runs{shown_best}", pad=12)
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


def metric_against_parameters(panels: list[ScatterPanel], metric: Metric, best_id: str) -> Figure:
    """One scatter panel per hyperparameter: its value against the run's best metric."""
    columns = min(PANEL_COLUMNS, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = new_figure(4.2 * columns, 3.3 * rows)
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes in grid.flat[len(panels):]:
        axes.set_axis_off()
    any_best = False
    for axes, panel in zip(grid.flat, panels):
        xs, scores = np.array(panel.x, dtype=float), np.array(panel.scores, dtype=float)
        best = [run_id == best_id for run_id in panel.run_ids]
        any_best = any_best or any(best)
        if panel.categories is None and panel.log:
            axes.set_xscale("log")
            # Plain numbers at 1-2-5 steps: default minor-tick labels overlap on a narrow panel.
            axes.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axes.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            axes.xaxis.set_minor_formatter(NullFormatter())
        elif panel.categories is not None:
            axes.set_xticks(range(len(panel.categories)), panel.categories, rotation=20, ha="right")
            axes.set_xlim(-0.5, len(panel.categories) - 0.5)
        plain = [i for i, b in enumerate(best) if not b]
        axes.scatter(xs[plain], scores[plain], color="#1f77b4", alpha=0.8, s=30)
        starred = [i for i, b in enumerate(best) if b]
        axes.scatter(xs[starred], scores[starred], color=BEST_COLOUR, marker="*", s=160, zorder=3,
                     label="best run")
        axes.set_xlabel(panel.parameter)
        axes.set_ylabel(metric.name)
        axes.grid(alpha=0.3)
    if any_best:
        grid.flat[0].legend(fontsize=8)
    figure.suptitle(f"{metric.name} ({metric.goal}) against each hyperparameter")
    return figure


def _score_scale(scores: list[float]) -> Normalize:
    low, high = min(scores), max(scores)
    if high == low:  # one run, or all equal: widen so the colour bar still has a range
        pad = max(abs(low) * 0.01, 1e-3)
        low, high = low - pad, high + pad
    return Normalize(vmin=low, vmax=high)
