"""Reading a run's artifact folder: the augmented samples and test predictions train() saved."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from store.records import RunRecord
from report.errors import ReportError
from report.render import Unavailable
from train.loop import PREDICTIONS_NAME, SAMPLES_NAME


class AugmentedSamples(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    images: np.ndarray  # uint8, N x 32 x 32 x 3
    labels: np.ndarray
    classes: list[str]


def augmented_samples(run: RunRecord) -> AugmentedSamples:
    arrays = _load_npz(run, SAMPLES_NAME)
    images = arrays["images"]
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ReportError(f"{_path(run, SAMPLES_NAME)}: images must be uint8 N x H x W x 3, got {images.dtype} "
                          f"{images.shape}")
    return AugmentedSamples(images=images, labels=arrays["labels"], classes=[str(c) for c in arrays["classes"]])


class ConfusionCounts(BaseModel):
    counts: list[list[int]]  # counts[true][predicted] on the test set, without TTA
    classes: list[str]


def confusion_counts(run: RunRecord) -> ConfusionCounts:
    """From the run's summary; from its saved predictions when the summary lacks the matrix."""
    counts, classes = run.summary.get("confusion_matrix"), run.summary.get("classes")
    if counts and classes:
        return ConfusionCounts(counts=counts, classes=classes)
    arrays = _load_npz(run, PREDICTIONS_NAME)
    classes = [str(c) for c in arrays["classes"]]
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(matrix, (arrays["true"].astype(np.int64), arrays["predicted"].astype(np.int64)), 1)
    return ConfusionCounts(counts=matrix.tolist(), classes=classes)


def _load_npz(run: RunRecord, name: str) -> dict[str, np.ndarray]:
    path = _path(run, name)
    if path is None or not path.is_file():
        where = f"in {run.run_dir}" if run.run_dir else "(the run has no artifact folder)"
        raise Unavailable(f"run {run.id} stored no {name} {where}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise ReportError(f"{path}: unreadable ({error})") from None


def _path(run: RunRecord, name: str) -> Path | None:
    """The run's folder, else its newest attempt's folder holding `name` (each attempt writes its own)."""
    if not run.run_dir:
        return None
    folder = Path(run.run_dir)
    attempts = sorted(folder.glob(f"attempt-*/{name}"), key=lambda p: int(p.parent.name.split("-")[1]), reverse=True)
    return attempts[0] if attempts else folder / name

