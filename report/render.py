"""Saving figures so the same data always gives the same bytes."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

DPI = 110
# PNG tEXt "Software" carries the matplotlib version; dropping it keeps files byte-identical across installs.
PNG_METADATA = {"Software": None}


class Unavailable(Exception):
    """A figure cannot be drawn from what the runs stored; the message says what is missing."""


def save_png(figure: Figure, path: Path) -> None:
    """Write atomically, so an interrupted report never leaves a truncated image behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    figure.savefig(partial, format="png", dpi=DPI, metadata=PNG_METADATA, facecolor="white")
    os.replace(partial, path)


def new_figure(width: float, height: float) -> Figure:
    # A bare Figure (not pyplot) keeps no global state between reports.
    return Figure(figsize=(width, height), layout="constrained")
