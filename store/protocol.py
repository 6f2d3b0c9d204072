"""The storage interface: what every part of the program may ask of a store, and what it guarantees.

Two backends implement it with the same SQL (`store/sql.py`): an embedded SQLite file for one
machine (`sqlite.py`) and a PostgreSQL server for many (`postgres.py`). `store.open.open_store(url)`
picks one. No SQL and no driver type leaves the backends; their errors become `store.errors` types.

The contract
------------
Sweep lock. Every change to a sweep or its runs happens inside `store.transaction(sweep_id)`, which
holds that sweep's lock until it commits (PostgreSQL: `SELECT ... FOR UPDATE` on the sweep's row;
SQLite: `BEGIN IMMEDIATE`, which locks the whole file). Inside it, reads see every change committed
before the lock was taken, so two agents claiming at once are served one after the other and can
never be handed the same run. The only write outside the lock is a heartbeat, a single-row
compare-and-set on the lease token.

Clock. Lease times are the database's clock (`transaction.now`), never an agent's: an agent whose
clock is minutes off neither loses its lease early nor reaps another's live run.

Leases and fencing. Claiming a run opens an attempt and gives it a fresh random token (a `Lease`).
Only the holder of the current token may change a running run: renew it, add an epoch and its
checkpoint, end it. A write with a stale token raises `LeaseLost` and changes nothing, so an agent
that was paused, partitioned or slow past its lease can never again write a metric, a state, or
the checkpoint another attempt resumes from. A run whose lease ran out (by the database's clock)
is reaped: it becomes `crashed` and is offered again.

Checkpoints. Each attempt writes its checkpoints into its own folder under the artifact root
(`<sweep>/<run>/attempt-<n>/`); the run's row names the current one (`RunRecord.checkpoint`, set
with the epoch that produced it, under the token) and the one before it. A resuming attempt starts
from the row's checkpoint, never from a file it finds on disk.

Errors. `StoreUnavailable` is transient; callers retry it (`store.retry.retrying`). Every other
`StoreError` is permanent. The database records its schema version; opening one of another
version raises `SchemaMismatch` before anything is written.

Changes. Each sweep keeps a change counter, advanced by every transaction that changes it; rows and
epochs record the counter's value. `changes(sweep_id, since)` returns only what changed after
`since`, so a live view of a sweep with a thousand runs reads a few rows per update.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from store.records import Attempt, RunRecord, RunState, SweepChanges, SweepRecord, SweepState


class Lease(BaseModel):
    """Proof that an attempt holds a run; every write about the run presents it."""

    run_id: str
    sweep_id: str
    token: str
    owner: str
    attempt: int
    seconds: float


class SweepTransaction(Protocol):
    """One sweep, locked: the controller reads records, decides, and writes the decision here."""

    sweep: SweepRecord
    now: float  # the database's clock when the lock was taken (seconds since the epoch)

    def runs(self, with_history: bool) -> list[RunRecord]: ...

    def insert_run(self, config: dict[str, Any]) -> RunRecord: ...

    def take_lease(self, run_id: str, owner: str, seconds: float) -> Lease:
        """Mark the run running under a fresh token and open an attempt for it."""

    def check_lease(self, lease: Lease) -> RunRecord:
        """The run, if `lease` still holds it; `LeaseLost` otherwise."""

    def add_epoch(self, lease: Lease, metrics: dict[str, Any], checkpoint: str | None) -> None:
        """Record one epoch (idempotent per epoch) and, when given, make `checkpoint` the run's current one."""

    def end_attempt(self, lease: Lease, state: RunState, *, detail: str | None = None,
                    summary: dict[str, Any] | None = None, failed: bool = False,
                    history: list[dict[str, Any]] | None = None) -> None:
        """Release the lease and leave the run in `state`; `failed` counts towards the retry limit.
        Idempotent: ending an attempt again the same way (a retried commit) is not an error."""

    def request_stop(self, run_id: str, reason: str) -> None: ...

    def reap_expired(self) -> list[str]:
        """Running runs whose lease ran out by `now` become crashed; returns their ids."""

    def set_state(self, state: SweepState, reason: str | None) -> None: ...

    def offer_again(self, run_ids: list[str], note: str) -> None:
        """Failed or crashed runs become `preempted` with their failure count reset (`sweep retry`)."""

    def note(self, run_id: str, text: str) -> None:
        """Append a note to the run's record (a damaged checkpoint skipped, ...)."""


class Store(Protocol):
    url: str  # how the user named it; shown in messages
    artifacts: Path  # the artifact root: checkpoints, predictions, logs, W&B offline runs

    def exists(self) -> bool: ...

    def create_sweep(self, config: dict[str, Any], backend: str = "local",
                     sweep_id: str | None = None) -> SweepRecord: ...

    def get_sweep(self, sweep_id: str) -> SweepRecord: ...  # SweepNotFound

    def list_sweeps(self) -> list[SweepRecord]: ...

    def delete_sweep(self, sweep_id: str) -> None:
        """The sweep's rows, and nothing else; the caller removes its artifact folder."""

    def list_runs(self, sweep_id: str, with_history: bool = True) -> list[RunRecord]: ...

    def get_run(self, run_id: str) -> RunRecord: ...  # RunNotFound; with history

    def list_attempts(self, sweep_id: str | None = None, run_id: str | None = None) -> list[Attempt]: ...

    def history_attempts(self, run_id: str) -> dict[int, int]:
        """Which attempt reported each epoch."""

    def changes(self, sweep_id: str, since: int) -> SweepChanges: ...

    def transaction(self, sweep_id: str) -> AbstractContextManager[SweepTransaction]: ...

    def heartbeat(self, lease: Lease) -> str | None:
        """Renew the lease (compare-and-set on its token); returns why the run should stop, if it should."""

    def check_alive(self) -> None:
        """Raise `StoreGone` if the store an agent opened is no longer the one at its location."""

    def close(self) -> None: ...

    def run_path(self, run: RunRecord) -> Path:
        """The run's artifact folder on this machine."""
