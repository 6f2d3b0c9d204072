"""Each sweep as the dashboard holds it in memory, kept current by asking the store what changed.

A `SweepView` starts from `changes(sweep_id, 0)` (everything) and then folds in
`changes(sweep_id, cursor)` answers, so a poll costs the store a few rows however large the sweep
is. Every browser polls with its own cursor; one store query per poll serves it: the view keeps a
short log of the batches it applied, and a client that is behind gets those batches from the log.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from store.protocol import Store
from store.records import EpochRow, RunRecord, SweepChanges, SweepRecord

LOG_BATCHES = 512  # batches kept for clients that are behind; older cursors read the store again


@dataclass
class Batch:
    since: int
    cursor: int
    runs: list[RunRecord]
    epochs: list[EpochRow]


@dataclass
class Update:
    """What a client with cursor `since` has not seen yet."""

    cursor: int
    sweep: SweepRecord
    runs: list[RunRecord]  # the latest row of each changed run, with its full history
    epochs: list[EpochRow]  # epochs recorded after `since`, in order


@dataclass
class SweepView:
    store: Store
    sweep_id: str
    cursor: int = 0
    sweep: SweepRecord | None = None
    rows: dict[str, RunRecord] = field(default_factory=dict)  # latest row of each run, without history
    histories: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)  # run -> epoch -> metrics
    versions: dict[str, int] = field(default_factory=dict)  # run -> bumped whenever its row or an epoch changes
    encoded: dict[str, Any] = field(default_factory=dict)  # run -> its JSON as of a version (dashboard.views)
    log: deque[Batch] = field(default_factory=lambda: deque(maxlen=LOG_BATCHES))
    refreshed_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self) -> None:
        """Fold in what changed since the view's cursor: one `changes()` call."""
        with self.lock:
            self._apply(self.store.changes(self.sweep_id, self.cursor))

    def _apply(self, changes: SweepChanges) -> None:
        self.sweep = changes.sweep
        for run in changes.runs:
            self.rows[run.id] = run
            self.versions[run.id] = self.versions.get(run.id, 0) + 1
        for epoch in changes.epochs:
            self.histories.setdefault(epoch.run_id, {})[epoch.epoch] = epoch.metrics
            self.versions[epoch.run_id] = self.versions.get(epoch.run_id, 0) + 1
        if changes.cursor != self.cursor or changes.runs or changes.epochs:
            self.log.append(Batch(self.cursor, changes.cursor, changes.runs, changes.epochs))
        self.cursor = max(self.cursor, changes.cursor)
        self.refreshed_at = time.monotonic()

    def update_since(self, since: int) -> Update:
        """Refresh, then what a client at `since` is missing (from the log, else from the store)."""
        self.refresh()
        with self.lock:
            assert self.sweep is not None
            if since >= self.cursor:
                return Update(cursor=self.cursor, sweep=self.sweep, runs=[], epochs=[])
            batches = [batch for batch in self.log if batch.cursor > since]
            if batches and batches[0].since <= since:
                run_ids = dict.fromkeys(run.id for batch in batches for run in batch.runs)
                epochs = [epoch for batch in batches for epoch in batch.epochs]
            else:  # older than the log (a page left open for hours): ask the store for that client alone
                changes = self.store.changes(self.sweep_id, since)
                run_ids = dict.fromkeys(run.id for run in changes.runs)
                epochs = changes.epochs
            # Changed epochs change their run's score and epoch count: send those rows too.
            run_ids.update(dict.fromkeys(epoch.run_id for epoch in epochs))
            runs = [self._record(run_id) for run_id in run_ids if run_id in self.rows]
            return Update(cursor=self.cursor, sweep=self.sweep, runs=runs, epochs=epochs)

    def records(self) -> list[RunRecord]:
        """Every run with its history, in creation order."""
        with self.lock:
            return sorted((self._record(run_id) for run_id in self.rows), key=lambda r: (r.seq, r.created_at))

    def stamped(self) -> list[tuple[RunRecord, int]]:
        """Every run's row (without history) and its version, in creation order: cheap to take."""
        with self.lock:
            rows = sorted(self.rows.values(), key=lambda r: (r.seq, r.created_at))
            return [(row, self.versions.get(row.id, 0)) for row in rows]

    def record(self, run_id: str) -> RunRecord | None:
        with self.lock:
            return self._record(run_id) if run_id in self.rows else None

    def _record(self, run_id: str) -> RunRecord:
        epochs = self.histories.get(run_id, {})
        return self.rows[run_id].model_copy(update={"history": [epochs[n] for n in sorted(epochs)]})


class Views:
    """One view per sweep, made on first use and shared by every request."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._views: dict[str, SweepView] = {}
        self._lock = threading.Lock()

    def get(self, sweep_id: str) -> SweepView:
        with self._lock:
            view = self._views.get(sweep_id)
            if view is None:
                view = self._views[sweep_id] = SweepView(self.store, sweep_id)
        if view.sweep is None:
            try:
                view.refresh()
            except Exception:  # SweepNotFound, the store gone: keep no view of a sweep we never read
                self.forget(sweep_id)
                raise
        return view

    def warm(self, prepare) -> None:
        """Read every sweep once (`prepare(view)` encodes it), so the first page a user opens is quick."""
        for sweep in self.store.list_sweeps():
            try:
                prepare(self.get(sweep.id))
            except Exception:  # a sweep deleted meanwhile, a store hiccup: its page will read it when asked
                continue

    def forget(self, sweep_id: str) -> None:
        with self._lock:
            self._views.pop(sweep_id, None)
