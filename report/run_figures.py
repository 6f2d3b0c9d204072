"""The source paper's per-run figures, drawn from one stored run."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from store.records import RunRecord
from report import panels
from report.artifacts import augmented_samples
from report.render import Unavailable, new_figure

TRAIN_COLOUR, VAL_COLOUR = "#1f77b4", "#d62728"
TRUE_COLOUR, PREDICTED_COLOUR = "#7f7f7f", "#2ca02c"
SAMPLE_COLUMNS = 8
TILE_GAP, LABEL_GAP = 4, 9  # pixels between tiles, and above each for its class name


def accuracy_curves(run: RunRecord) -> Figure:
    """Figure 3: training and validation accuracy per epoch."""
    return _curves(run, "acc", "accuracy (%)", scale=100.0, title="Training and validation accuracy")


def loss_curves(run: RunRecord) -> Figure:
    """Figure 5: training and validation loss per epoch."""
    return _curves(run, "loss", "cross-entropy loss", scale=1.0, title="Training and validation loss")


def _curves(run: RunRecord, suffix: str, ylabel: str, scale: float, title: str) -> Figure:
    if not run.history:
        raise Unavailable(f"run {run.id} logged no epochs")
    figure = new_figure(7.0, 4.2)
    axes = figure.add_subplot()
    for split, colour in (("train", TRAIN_COLOUR), ("val", VAL_COLOUR)):
        points = [(row["epoch"], row[f"{split}_{suffix}"] * scale) for row in run.history
                  if _finite(row.get(f"{split}_{suffix}")) and "epoch" in row]
        if points:
            epochs, values = zip(*points)
            label = "training" if split == "train" else "validation"
            axes.plot(epochs, values, marker="o", markersize=4, color=colour, label=label)
    axes.set_xlabel("epoch")
    axes.set_ylabel(ylabel)
    axes.set_title(f"{title} (run {run.id})")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.grid(alpha=0.3)
    axes.legend()
    return figure


def confusion_matrix(run: RunRecord) -> Figure:
    """Figure 4: test-set confusion matrix, as counts and normalised by true class."""
    confusion = panels.confusion(run)
    counts, normalised = np.array(confusion.counts, dtype=float), np.array(confusion.normalised)
    figure = new_figure(14.0, 6.4)
    left, right = figure.subplots(1, 2)
    _matrix_panel(left, counts, confusion.classes, "counts", lambda v: f"{int(v)}")
    _matrix_panel(right, normalised, confusion.classes, "normalised by true class", lambda v: f"{v:.2f}",
                  vmax=1.0)
    figure.suptitle(f"Test-set confusion matrix (run {run.id})")
    return figure


def _matrix_panel(axes, values: np.ndarray, classes: list[str], title: str, fmt, vmax: float | None = None) -> None:
    top = vmax if vmax is not None else max(float(values.max()), 1.0)
    image = axes.imshow(values, cmap="Blues", vmin=0.0, vmax=top)
    ticks = range(len(classes))
    axes.set_xticks(ticks, classes, rotation=45, ha="right")
    axes.set_yticks(ticks, classes)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)
    for (row, column), value in np.ndenumerate(values):
        colour = "white" if value > top / 2 else "black"
        axes.text(column, row, fmt(value), ha="center", va="center", color=colour, fontsize=7)
    axes.figure.colorbar(image, ax=axes, shrink=0.8)


def class_distribution(run: RunRecord) -> Figure:
    """Figure 6: how often the network predicted each class, against how often it was true."""
    confusion = panels.confusion(run)
    true, predicted = np.array(confusion.true_totals), np.array(confusion.predicted_totals)
    positions = np.arange(len(confusion.classes))
    figure = new_figure(8.0, 4.4)
    axes = figure.add_subplot()
    axes.bar(positions - 0.2, true, width=0.4, color=TRUE_COLOUR, label="true")
    axes.bar(positions + 0.2, predicted, width=0.4, color=PREDICTED_COLOUR, label="predicted")
    axes.set_xticks(positions, confusion.classes, rotation=45, ha="right")
    axes.set_ylabel("test images")
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.set_title(f"Predicted against true class distribution (run {run.id})")
    axes.grid(axis="y", alpha=0.3)
    axes.legend()
    return figure


def sample_grid(run: RunRecord) -> Figure:
    """Figure 2: the augmented training images the network saw in its first batch."""
    samples = augmented_samples(run)
    count = len(samples.images)
    if count == 0:
        raise Unavailable(f"run {run.id} saved an empty sample file")
    columns = min(SAMPLE_COLUMNS, count)
    rows = math.ceil(count / columns)
    height, width = samples.images.shape[1:3]
    # One mosaic image drawn once is far cheaper than an axes per sample; the gaps leave room for labels.
    cell_h, cell_w = height + LABEL_GAP, width + TILE_GAP
    mosaic = np.full((rows * cell_h, columns * cell_w, 3), 255, dtype=np.uint8)
    figure = new_figure(1.3 * columns, 1.45 * rows + 0.4)
    axes = figure.add_subplot()
    for index, image in enumerate(samples.images):
        top, left = (index // columns) * cell_h + LABEL_GAP, (index % columns) * cell_w + TILE_GAP // 2
        mosaic[top:top + height, left:left + width] = image
        label = int(samples.labels[index])
        name = samples.classes[label] if 0 <= label < len(samples.classes) else str(label)
        axes.text(left + width / 2, top - 1.5, name, ha="center", va="bottom", fontsize=8)
    axes.imshow(mosaic, interpolation="nearest")
    axes.set_axis_off()
    figure.suptitle(f"Augmented training samples (run {run.id})")
    return figure


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
