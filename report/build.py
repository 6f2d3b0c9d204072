"""Draw every figure and write the report folder: PNGs, report.html, report.md.

Everything is rendered into a scratch folder first and moved into place only
when all of it succeeded, so a failing report never leaves a half-written one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from matplotlib.figure import Figure

from store.records import RunSource
from report import panels, run_figures, sweep_figures
from report.html import render_html
from report.markdown import render_markdown
from report.model import FigureEntry, SweepReport
from report.parameters import swept_parameters
from report.render import Unavailable, save_png
from report.select import rank_runs
from report.summary import summarize

HTML_NAME, MARKDOWN_NAME = "report.html", "report.md"


def build_report(source: RunSource, sweep_id: str, out_dir: Path) -> SweepReport:
    """Read the sweep from `source`, write the report under `out_dir`, return what it says."""
    sweep = source.get_sweep(sweep_id)
    runs = source.list_runs(sweep_id)
    report = summarize(sweep, runs)
    best = next(run for run in runs if run.id == report.best.id)
    ranked = rank_runs(runs, report.metric)
    parameters = swept_parameters(sweep.config)
    scored = len(ranked)

    # Paper figures first (2-6, in the order of the report), then the sweep page's panels.
    drawers: list[tuple[str, str, str, str, Callable[[], Figure]]] = [
        ("accuracy", "Training and validation accuracy (paper Figure 3)",
         "Accuracy on the training batches and on the held-out validation images after each epoch.",
         "best run", lambda: run_figures.accuracy_curves(best)),
        ("loss", "Training and validation loss (paper Figure 5)",
         "Cross-entropy on the training batches and on the validation images after each epoch.",
         "best run", lambda: run_figures.loss_curves(best)),
        ("confusion_matrix", "Confusion matrix (paper Figure 4)",
         "Test-set predictions without test-time augmentation: counts, and each row divided by its true-class total.",
         "best run", lambda: run_figures.confusion_matrix(best)),
        ("class_distribution", "Predicted against true class distribution (paper Figure 6)",
         "How often each class was predicted on the test set, next to how often it was the true class.",
         "best run", lambda: run_figures.class_distribution(best)),
        ("augmented_samples", "Augmented training samples (paper Figure 2)",
         "The first training images of the best run after its augmentation (crop, flip, cutout), as the network saw them.",
         "best run", lambda: run_figures.sample_grid(best)),
        ("parallel_coordinates", "Parallel coordinates",
         f"Each line is a run ({scored} scored, failed and crashed excluded) through its hyperparameters to its best "
         f"{report.metric.name}; the best finished run is drawn in red.",
         "sweep", lambda: sweep_figures.parallel_coordinates(
             panels.parallel_coordinates(ranked, parameters, report.metric), report.metric, best.id)),
        ("parameter_importance", "Parameter importance",
         f"Random-forest feature importance of each hyperparameter for predicting {report.metric.name}, and its "
         "Pearson correlation with it; categorical values are one-hot encoded.",
         "sweep", lambda: sweep_figures.importance_chart(report.influence, report.metric, scored)),
        ("metric_vs_parameters", f"{report.metric.name} against each hyperparameter",
         f"Every scored run's best {report.metric.name} against the value of each swept hyperparameter.",
         "sweep", lambda: sweep_figures.metric_against_parameters(
             panels.metric_against_parameters(ranked, parameters), report.metric, best.id)),
    ]

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-partial-", dir=out_dir.parent))
    try:
        for key, title, caption, scope, draw in drawers:
            report.figures.append(_draw(key, title, caption, scope, draw, scratch))
        (scratch / HTML_NAME).write_text(render_html(report, scratch), encoding="utf-8")
        (scratch / MARKDOWN_NAME).write_text(render_markdown(report), encoding="utf-8")
        _publish(scratch, out_dir, report)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report


def written_files(report: SweepReport, out_dir: Path) -> list[Path]:
    figures = [out_dir / Path(f.path).name for f in report.figures if f.path]
    return figures + [out_dir / HTML_NAME, out_dir / MARKDOWN_NAME]


def _draw(key: str, title: str, caption: str, scope: str, draw: Callable[[], Figure], folder: Path) -> FigureEntry:
    entry = FigureEntry(key=key, title=title, caption=caption, scope=scope)
    try:
        figure = draw()
    except Unavailable as reason:
        entry.skipped = str(reason)
        return entry
    save_png(figure, folder / f"{key}.png")
    entry.path = f"{key}.png"  # relative: the report folder can be moved as a whole
    return entry


def _publish(scratch: Path, out_dir: Path, report: SweepReport) -> None:
    out_dir.mkdir(exist_ok=True)
    for entry in report.figures:
        target = out_dir / f"{entry.key}.png"
        if entry.path:
            os.replace(scratch / entry.path, target)
        else:
            target.unlink(missing_ok=True)  # a figure from an earlier report would contradict this one
    for name in (HTML_NAME, MARKDOWN_NAME):
        os.replace(scratch / name, out_dir / name)
