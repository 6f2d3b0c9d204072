"""Runs written through the storage interface exactly as agents write them, for dashboard tests and bench.

A transaction inserts the run and takes its lease, each epoch is added under that lease, and the
attempt is ended with the run's summary. Nothing here imports the dashboard: writer processes start fast.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

from store.protocol import Lease, Store

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SWEEP_CONFIG: dict[str, Any] = {
    "name": "dashboard test sweep",
    "method": "random",
    "metric": {"name": "val_acc", "goal": "maximize"},
    "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 0.01, "max": 0.5},
        "optimizer": {"values": ["sgd", "nesterov"]},
        "epochs": {"value": 30},
    },
}


def open_store(home: Path) -> Store:
    from cli.common import open_store_for

    return open_store_for(None, home, create=True)


def epoch_metrics(epoch: int, lr: float, rng: random.Random) -> dict[str, Any]:
    """Plausible curves: accuracy rises towards a ceiling set by the learning rate."""
    ceiling = 0.55 + 0.4 * min(1.0, lr / 0.3)
    acc = ceiling * (1 - math.exp(-epoch / 6)) + rng.uniform(-0.01, 0.01)
    return {"epoch": epoch, "train_loss": 2.3 * math.exp(-epoch / 8) + 0.1, "train_acc": min(0.999, acc + 0.03),
            "val_loss": 2.3 * math.exp(-epoch / 9) + 0.2, "val_acc": acc, "lr": lr, "epoch_seconds": 1.5,
            "images_per_second": 30000.0}


def summary_for(history: list[dict[str, Any]], config: dict[str, Any]) -> dict[str, Any]:
    last = history[-1]["val_acc"] if history else 0.1
    correct = int(100 * last)
    matrix = [[correct if t == p else (100 - correct) // 9 for p in range(10)] for t in range(10)]
    return {"status": "finished", "model": "fast", "params": 1_234_567, "device": "cpu", "precision": "fp32",
            "config": dict(config, batch_size=512), "train_seconds": 40.0, "total_seconds": 45.0,
            "test_loss": 0.5, "test_acc": last - 0.01, "test_acc_tta": last, "classes": CLASSES,
            "confusion_matrix": matrix, "true_counts": [sum(row) for row in matrix],
            "predicted_counts": [sum(column) for column in zip(*matrix)],
            "per_class_acc": [row[t] / sum(row) for t, row in enumerate(matrix)]}


def start_run(store: Store, sweep_id: str, config: dict[str, Any], owner: str = "tester@box:1",
              lease_s: float = 600.0) -> Lease:
    with store.transaction(sweep_id) as tx:
        run = tx.insert_run(config)
        return tx.take_lease(run.id, owner, lease_s)


def add_epochs(store: Store, lease: Lease, epochs: list[dict[str, Any]]) -> None:
    for metrics in epochs:
        with store.transaction(lease.sweep_id) as tx:
            tx.add_epoch(lease, metrics, None)


def end_run(store: Store, lease: Lease, state: str, history: list[dict[str, Any]], config: dict[str, Any],
            detail: str | None = None) -> None:
    summary = summary_for(history, config) if state == "finished" else None
    with store.transaction(lease.sweep_id) as tx:
        tx.end_attempt(lease, state, detail=detail, summary=summary, failed=state == "failed")


def add_run(store: Store, sweep_id: str, config: dict[str, Any], epochs: int, state: str = "finished",
            seed: int = 0, detail: str | None = None) -> Lease:
    """One run with `epochs` epochs, left in `state` (running keeps its lease)."""
    rng = random.Random(seed)
    lease = start_run(store, sweep_id, config)
    history = [epoch_metrics(n, config.get("lr", 0.1), rng) for n in range(1, epochs + 1)]
    add_epochs(store, lease, history)
    if state != "running":
        end_run(store, lease, state, history, config, detail)
    return lease
