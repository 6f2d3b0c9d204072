"""CIFAR-10 from the standard `cifar-10-batches-py` pickle folder.

The files are validated by content (shapes, dtype, label range, counts), never
by MD5: a losslessly re-packed copy has other checksums but the same pixels.
"""

from __future__ import annotations

import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

BATCHES_FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
NUM_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)
IMAGE_VALUES = 3 * 32 * 32
DATA_DIR_ENV = "SWEEP_DATA_DIR"


class DataError(Exception):
    """Missing or malformed dataset; the message names the file and the problem."""


@dataclass(frozen=True)
class Cifar10:
    """The whole dataset as uint8 NCHW tensors plus int64 labels."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...]
    source: Path


def default_data_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "sweep" / "data"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder given, else $SWEEP_DATA_DIR, else the user cache folder."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV) or default_data_dir()
    return Path(chosen).expanduser()


def find_batches_dir(root: Path) -> Path | None:
    """Accept torchvision's `root` (holding cifar-10-batches-py/) or the batches folder itself."""
    for candidate in (root / BATCHES_FOLDER, root):
        if (candidate / META_FILE).is_file() or (candidate / TEST_FILE).is_file():
            return candidate
    return None


def _download(root: Path) -> None:
    """Fetch through torchvision into a scratch folder, then move the batches into place.

    A failed or interrupted download leaves nothing behind under `root`.
    """
    from torchvision.datasets import CIFAR10

    created = not root.exists()
    # One scratch folder per process: agents started together (`--gpus`) may all download at once.
    scratch = root / f".download-{os.getpid()}"
    try:
        scratch.mkdir(parents=True, exist_ok=True)
        CIFAR10(str(scratch), train=True, download=True)
        try:
            os.replace(scratch / BATCHES_FOLDER, root / BATCHES_FOLDER)
        except OSError:
            if not (root / BATCHES_FOLDER).is_dir():  # else another process moved its copy in first
                raise
    except Exception as error:  # network errors come in many types; all mean the same here
        raise DataError(f"{root}: no CIFAR-10 found and the download failed ({error})") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if created and not (root / BATCHES_FOLDER).exists():
            shutil.rmtree(root, ignore_errors=True)


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: file is missing")
    try:
        with path.open("rb") as handle:
            content = pickle.load(handle, encoding="bytes")
    except Exception as error:  # truncated or corrupt pickles raise several exception types
        raise DataError(f"{path}: cannot be read as a CIFAR-10 pickle ({type(error).__name__}: {error})") from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: expected a dict, found {type(content).__name__}")
    # The original files use byte keys; accept str keys from re-packed copies.
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in content.items()}


def _read_batch(path: Path, expected_rows: int | None) -> tuple[np.ndarray, np.ndarray]:
    content = _unpickle(path)
    for key in ("data", "labels"):
        if key not in content:
            raise DataError(f"{path}: missing key '{key}'")
    images, labels = content["data"], np.asarray(content["labels"])
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        found = getattr(images, "dtype", type(images).__name__)
        raise DataError(f"{path}: 'data' must be a uint8 array, found {found}")
    if images.ndim != 2 or images.shape[1] != IMAGE_VALUES:
        raise DataError(f"{path}: 'data' has shape {images.shape}, expected (N, {IMAGE_VALUES})")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{path}: {len(labels)} labels for {len(images)} images")
    if expected_rows is not None and len(images) != expected_rows:
        raise DataError(f"{path}: {len(images)} images, expected {expected_rows} (batches.meta num_cases_per_batch)")
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataError(f"{path}: labels must lie in 0..{NUM_CLASSES - 1}, found {labels.min()}..{labels.max()}")
    return images.reshape(-1, *IMAGE_SHAPE), labels.astype(np.int64)


def load_cifar10(data_dir: str | os.PathLike | None = None, download: bool = True) -> Cifar10:
    """Load and validate CIFAR-10, downloading it through torchvision when absent."""
    root = resolve_data_dir(data_dir)
    batches = find_batches_dir(root)
    if batches is None:
        if not download:
            raise DataError(f"{root}: no {BATCHES_FOLDER} folder (set --data-dir or ${DATA_DIR_ENV})")
        _download(root)
        batches = root / BATCHES_FOLDER

    meta = _unpickle(batches / META_FILE)
    names = meta.get("label_names")
    if not isinstance(names, list) or len(names) != NUM_CLASSES:
        raise DataError(f"{batches / META_FILE}: 'label_names' must list {NUM_CLASSES} class names")
    rows = meta.get("num_cases_per_batch")
    expected_rows = int(rows) if isinstance(rows, int) else None

    train = [_read_batch(batches / name, expected_rows) for name in TRAIN_FILES]
    test_images, test_labels = _read_batch(batches / TEST_FILE, expected_rows)
    train_images = np.concatenate([images for images, _ in train])
    train_labels = np.concatenate([labels for _, labels in train])
    return Cifar10(
        train_images=torch.from_numpy(train_images),
        train_labels=torch.from_numpy(train_labels),
        test_images=torch.from_numpy(test_images),
        test_labels=torch.from_numpy(test_labels),
        classes=tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names),
        source=batches,
    )


def stratified_order(labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A fixed permutation whose every prefix is as class-balanced as possible.

    Each class is shuffled on its own, then the classes are interleaved round
    robin. Taking the first k indices gives a stratified sample of size k.
    """
    generator = torch.Generator().manual_seed(seed)
    position = torch.empty(len(labels), dtype=torch.float64)
    for cls in labels.unique():
        members = (labels == cls).nonzero().squeeze(1)
        shuffled = members[torch.randperm(len(members), generator=generator)]
        # Fractional position within its class: 0, 1/n, 2/n, ... whatever the class size.
        position[shuffled] = torch.arange(len(members), dtype=torch.float64) / len(members)
    # Sorting by position, with classes in label order at equal positions, interleaves the classes.
    by_label = torch.argsort(labels, stable=True)
    return by_label[torch.argsort(position[by_label], stable=True)]


def split_train_val(labels: torch.Tensor, val_size: int, train_size: int | None = None,
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic stratified (train, validation) index split of the training set.

    The split seed is fixed independently of the run's seed so every run of a
    sweep is selected on the same validation images.
    """
    if not 0 <= val_size < len(labels):
        raise DataError(f"val_size={val_size} must lie in 0..{len(labels) - 1}")
    order = stratified_order(labels, seed)
    val_idx, train_idx = order[:val_size], order[val_size:]
    if train_size is not None:
        if train_size < 1:
            raise DataError(f"train_size={train_size} must be at least 1")
        train_idx = train_idx[:train_size]
    return torch.sort(train_idx).values, torch.sort(val_idx).values
