"""Shared fixtures: a tiny CIFAR-10 written in the real pickle format, and the real data."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

REAL_DATA = Path(os.environ.get("SWEEP_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CLASSES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def write_tiny_cifar(root: Path, per_batch: int = 40, seed: int = 0) -> Path:
    """Write cifar-10-batches-py/ under `root` exactly as the original files are laid out.

    Images are class-dependent colour blobs plus noise, so a network can learn
    them in a few steps; every batch holds all ten classes.
    """
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(label: str, n: int) -> dict:
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        base = np.stack([np.full((3, 32, 32), 25 * c, dtype=np.float64) for c in range(10)])
        images = base[labels] + rng.normal(0, 20, size=(n, 3, 32, 32))
        data = np.clip(images, 0, 255).astype(np.uint8).reshape(n, 3072)
        return {b"batch_label": label.encode(), b"labels": labels.tolist(), b"data": data,
                b"filenames": [f"{i}.png".encode() for i in range(n)]}

    for i in range(1, 6):
        with (folder / f"data_batch_{i}").open("wb") as handle:
            pickle.dump(batch(f"training batch {i} of 5", per_batch), handle, protocol=2)
    with (folder / "test_batch").open("wb") as handle:
        pickle.dump(batch("testing batch 1 of 1", per_batch), handle, protocol=2)
    with (folder / "batches.meta").open("wb") as handle:
        pickle.dump({b"num_cases_per_batch": per_batch, b"label_names": CLASSES, b"num_vis": 3072}, handle,
                    protocol=2)
    return root


@pytest.fixture
def tiny_data_dir(tmp_path: Path) -> Path:
    """A folder holding a 200-image training set and a 40-image test set."""
    return write_tiny_cifar(tmp_path / "data")


@pytest.fixture
def real_data_dir() -> Path:
    if not (REAL_DATA / "cifar-10-batches-py" / "data_batch_1").is_file():
        pytest.skip(f"real CIFAR-10 not found under {REAL_DATA}")
    return REAL_DATA
