"""Shared fixtures: a tiny CIFAR-10 written in the real pickle format, and the real data."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

REAL_DATA = Path(os.environ.get("SWEEP_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
# One distinct colour per class (RGB), far apart so a few steps can separate them.
PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230], [128, 128, 0], [0, 0, 128]], dtype=np.float64)
# The network of every test that checks what happens around training (agents, stores, reports,
# checkpoints, export) rather than what a network learns: the fast net's code at 1/7 of its work.
PLUMBING_MODEL = "fast-small"
CLASSES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def write_tiny_cifar(root: Path, per_batch: int = 40, seed: int = 0) -> Path:
    """Write cifar-10-batches-py/ under `root` exactly as the original files are laid out.

    Images are class-dependent flat colours plus noise, so a network can learn
    them in a few steps; every batch holds all ten classes.
    """
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(label: str, n: int) -> dict:
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        base = np.broadcast_to(PALETTE[:, :, None, None], (10, 3, 32, 32)).astype(np.float64)
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


# --- report fixtures: a small sweep whose runs really trained on the tiny dataset -------------------------

REPORT_SWEEP_CONFIG = {
    "method": "random",
    "metric": {"name": "val_acc", "goal": "maximize"},
    "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 0.01, "max": 0.5},
        "optimizer": {"values": ["sgd", "nesterov"]},
        "label_smoothing": {"values": [0.0, 0.2]},
        "model": {"value": PLUMBING_MODEL},
    },
}
REPORT_RUN_CHOICES = [
    {"lr": 0.24, "optimizer": "sgd", "label_smoothing": 0.2, "model": PLUMBING_MODEL},
    {"lr": 0.02, "optimizer": "nesterov", "label_smoothing": 0.0, "model": PLUMBING_MODEL},
    {"lr": 0.1, "optimizer": "nesterov", "label_smoothing": 0.2, "model": PLUMBING_MODEL},
]


@pytest.fixture(scope="session")
def trained_report_runs(tmp_path_factory) -> list[dict]:
    """Three finished tiny runs: (run id, chosen config, TrainResult dump, run_dir), trained once per session."""
    from data.cifar import load_cifar10
    from train import TrainConfig, train

    root = tmp_path_factory.mktemp("report-runs")
    data = load_cifar10(write_tiny_cifar(root / "data"), download=False)
    trained = []
    for index, choice in enumerate(REPORT_RUN_CHOICES):
        run_dir = root / f"run-{index}"
        config = TrainConfig.resolve(dict(choice, train_size=32, batch_size=32, val_size=20, epochs=3, tta=1,
                                          precision="fp32"))
        result = train(config, data=data, run_dir=run_dir)
        trained.append({"id": f"run{index}", "config": choice, "result": result.model_dump(mode="json"),
                        "run_dir": str(run_dir)})
    return trained


class MemorySource:
    """A RunSource over records held in memory: the report's view of any store."""

    def __init__(self, sweep, runs):
        self.sweep, self.runs = sweep, runs

    def get_sweep(self, sweep_id: str):
        from report.errors import ReportError

        if sweep_id != self.sweep.id:
            raise ReportError(f"unknown sweep id {sweep_id!r}")
        return self.sweep

    def list_runs(self, sweep_id: str):
        return [run for run in self.runs if run.sweep_id == sweep_id]


def report_records(trained: list[dict], sweep_id: str = "swp1", extra_states: bool = True):
    """A SweepRecord and RunRecords built from really trained runs; optionally a running and a failed run too."""
    from store.records import RunRecord, SweepRecord

    sweep = SweepRecord(id=sweep_id, state="running" if extra_states else "finished", config=REPORT_SWEEP_CONFIG,
                        created_at=1000.0)
    runs = []
    for index, item in enumerate(trained):
        result = dict(item["result"])
        history = result.pop("history")
        runs.append(RunRecord(id=item["id"], sweep_id=sweep_id, state="finished", config=item["config"],
                              history=history, summary=result, created_at=1001.0 + index, started_at=1001.0 + index,
                              finished_at=1010.0 + index, run_dir=item["run_dir"]))
    if extra_states:
        leader = runs[0].history[0] | {"val_acc": 0.99}
        runs.append(RunRecord(id="running1", sweep_id=sweep_id, state="running",
                              config={"lr": 0.3, "optimizer": "sgd", "label_smoothing": 0.0, "model": PLUMBING_MODEL},
                              history=[leader], created_at=1020.0, started_at=1020.0))
        runs.append(RunRecord(id="failed1", sweep_id=sweep_id, state="failed",
                              config={"lr": 0.4, "optimizer": "sgd", "label_smoothing": 0.0, "model": PLUMBING_MODEL},
                              history=[runs[0].history[0] | {"val_acc": 1.0}], failure="CUDA error",
                              created_at=1021.0))
    return sweep, runs


@pytest.fixture
def report_source(trained_report_runs) -> MemorySource:
    """The three trained runs, plus one still running (ranked first) and one failed (with a perfect score)."""
    return MemorySource(*report_records(trained_report_runs))


# --- stores: every conformance test runs against a real SQLite file and a real PostgreSQL server -----------

@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server for the whole session; under CI=true it must start."""
    from bench.postgres_server import PostgresServer

    try:
        server = PostgresServer()
    except (RuntimeError, OSError) as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the PostgreSQL tests must run under CI, but the server did not start: {error}")
        pytest.skip(f"no PostgreSQL server: {error}")
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path: Path, monkeypatch) -> str:
    """A fresh, empty store: a SQLite folder, or a new database on the session's PostgreSQL server."""
    monkeypatch.setenv("SWEEP_ARTIFACTS", str(tmp_path / "artifacts"))
    if request.param == "sqlite":
        return str(tmp_path / "store")
    return request.getfixturevalue("postgres_server").new_database()


@pytest.fixture
def store(store_url: str):
    from store.open import open_store

    opened = open_store(store_url, create=True)
    yield opened
    opened.close()
