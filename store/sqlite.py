"""The embedded store: one SQLite file in WAL mode under SWEEP_HOME, plus each run's artifact folder.

    $SWEEP_HOME/sweep.db                    sweeps, runs, per-epoch history, attempts
    $SWEEP_HOME/runs/<sweep>/<run>/         checkpoint.pt, predictions.npz, wandb/ ...

Every write is one short `BEGIN IMMEDIATE` transaction, so any number of agent
processes can share the file. Leases live here too: a run being trained holds
a lease that its agent renews by heartbeat, and `reap_expired` turns runs whose
lease ran out into crashed runs that the controller offers again.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import string
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from store.records import RunRecord, RunState, SweepRecord, SweepState

HOME_ENV = "SWEEP_HOME"
DEFAULT_HOME = ".sweep"
DB_NAME = "sweep.db"
ID_ALPHABET = string.ascii_lowercase + string.digits
BUSY_TIMEOUT_S = 10.0  # how long a writer waits for another's transaction; under a lease's quarter (beat)

SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    id TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    state TEXT NOT NULL,
    state_reason TEXT,
    config TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    sweep_id TEXT NOT NULL REFERENCES sweeps(id),
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    config TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '{}',
    failure TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    run_dir TEXT NOT NULL,
    owner TEXT,
    lease_token TEXT,
    lease_expires_at REAL,
    heartbeat_at REAL,
    stop_requested TEXT,
    UNIQUE (sweep_id, seq)
);
CREATE INDEX IF NOT EXISTS runs_by_sweep_state ON runs (sweep_id, state);
CREATE TABLE IF NOT EXISTS history (
    run_id TEXT NOT NULL REFERENCES runs(id),
    epoch INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL REFERENCES runs(id),
    attempt INTEGER NOT NULL,
    agent TEXT NOT NULL,
    started_at REAL NOT NULL,
    resumed_from_epoch INTEGER NOT NULL DEFAULT 0,
    ended_at REAL,
    outcome TEXT,
    detail TEXT,
    PRIMARY KEY (run_id, attempt)
);
"""


class StoreError(Exception):
    """A store problem a user can act on; the message names the sweep or the file."""


class SweepNotFound(StoreError):
    pass


class LeaseLost(StoreError):
    """The run is no longer this agent's: its lease expired and the run was reaped or re-claimed."""


class Lease(BaseModel):
    """Proof that an agent holds a run; every write about the run must present it."""

    run_id: str
    sweep_id: str
    token: str
    owner: str
    attempt: int
    seconds: float


class Attempt(BaseModel):
    run_id: str
    attempt: int
    agent: str
    started_at: float
    resumed_from_epoch: int
    ended_at: float | None
    outcome: str | None
    detail: str | None


def default_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)


def new_id(length: int = 8) -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(length))


class LocalStore:
    """Sweeps and runs in SQLite; implements RunSource for the report."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = Path(home) if home is not None else default_home()
        self.db_path = self.home / DB_NAME
        self._local = threading.local()  # one connection per thread: sqlite3 objects are not shared

    # -- connections and transactions -------------------------------------------------------------

    def exists(self) -> bool:
        return self.db_path.is_file()

    def _connection(self, create: bool) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if not self.exists():
            if not create:
                raise SweepNotFound(f"no sweeps yet: {self.db_path} does not exist (set --home or ${HOME_ENV})")
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.row_factory = sqlite3.Row
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, nor the writer them
            conn.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; WAL keeps it consistent
            conn.execute("PRAGMA foreign_keys=ON")
            conn.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as error:  # unwritable home, not a database, ...
            raise StoreError(f"{self.db_path}: cannot open the store ({error})") from None
        self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front so concurrent claims serialise instead of deadlocking."""
        conn = self._connection(create=True)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot across several queries."""
        conn = self._connection(create=False)
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- sweeps ----------------------------------------------------------------------------------------

    def create_sweep(self, config: dict[str, Any], backend: str = "local", sweep_id: str | None = None) -> SweepRecord:
        record = SweepRecord(id=sweep_id or new_id(), backend=backend, config=config, created_at=time.time())
        with self.write() as conn:
            if conn.execute("SELECT 1 FROM sweeps WHERE id = ?", (record.id,)).fetchone():
                raise StoreError(f"sweep '{record.id}' already exists in {self.db_path}")
            conn.execute("INSERT INTO sweeps (id, backend, state, config, created_at) VALUES (?, ?, ?, ?, ?)",
                         (record.id, record.backend, record.state, json.dumps(config), record.created_at))
        return record

    def get_sweep(self, sweep_id: str) -> SweepRecord:
        with self.read() as conn:
            row = conn.execute("SELECT * FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        if row is None:
            raise SweepNotFound(f"no sweep '{sweep_id}' in {self.db_path}")
        return _sweep_record(row)

    def list_sweeps(self) -> list[SweepRecord]:
        if not self.exists():
            return []
        with self.read() as conn:
            rows = conn.execute("SELECT * FROM sweeps ORDER BY created_at").fetchall()
        return [_sweep_record(row) for row in rows]

    def sweep_state_reason(self, sweep_id: str) -> str | None:
        """Why the sweep is finished or stopped (grid exhausted, run_cap, target, `sweep stop`)."""
        with self.read() as conn:
            return self.state_reason(conn, sweep_id)

    def state_reason(self, conn: sqlite3.Connection, sweep_id: str) -> str | None:
        row = conn.execute("SELECT state_reason FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        return row["state_reason"] if row else None

    def set_sweep_state(self, conn: sqlite3.Connection, sweep_id: str, state: SweepState, reason: str) -> None:
        finished_at = time.time() if state != "running" else None
        conn.execute("UPDATE sweeps SET state = ?, state_reason = ?, finished_at = ? WHERE id = ?",
                     (state, reason, finished_at, sweep_id))

    def sweep_row(self, conn: sqlite3.Connection, sweep_id: str) -> SweepRecord:
        row = conn.execute("SELECT * FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        if row is None:
            raise SweepNotFound(f"no sweep '{sweep_id}' in {self.db_path}")
        return _sweep_record(row)

    # -- runs: reading -------------------------------------------------------------------------------

    def list_runs(self, sweep_id: str) -> list[RunRecord]:
        with self.read() as conn:
            self.sweep_row(conn, sweep_id)
            return self.runs_in(conn, sweep_id, with_history=True)

    def runs_in(self, conn: sqlite3.Connection, sweep_id: str, with_history: bool) -> list[RunRecord]:
        rows = conn.execute("SELECT * FROM runs WHERE sweep_id = ? ORDER BY seq", (sweep_id,)).fetchall()
        histories: dict[str, list[dict[str, Any]]] = {}
        if with_history:
            for row in conn.execute("SELECT h.run_id, h.metrics FROM history h JOIN runs r ON r.id = h.run_id "
                                    "WHERE r.sweep_id = ? ORDER BY h.run_id, h.epoch", (sweep_id,)):
                histories.setdefault(row["run_id"], []).append(json.loads(row["metrics"]))
        return [_run_record(row, histories.get(row["id"], [])) for row in rows]

    def run_in(self, conn: sqlite3.Connection, run_id: str) -> RunRecord:
        row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run_record(row, [])

    def get_run(self, run_id: str) -> RunRecord:
        with self.read() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"no run '{run_id}' in {self.db_path}")
            history = [json.loads(r["metrics"]) for r in
                       conn.execute("SELECT metrics FROM history WHERE run_id = ? ORDER BY epoch", (run_id,))]
        return _run_record(row, history)

    def list_attempts(self, sweep_id: str) -> list[Attempt]:
        with self.read() as conn:
            rows = conn.execute("SELECT a.* FROM attempts a JOIN runs r ON r.id = a.run_id WHERE r.sweep_id = ? "
                                "ORDER BY r.seq, a.attempt", (sweep_id,)).fetchall()
        return [Attempt(**dict(row)) for row in rows]

    def history_attempts(self, run_id: str) -> dict[int, int]:
        """Which attempt reported each epoch: shows a resumed run did not redo finished epochs."""
        with self.read() as conn:
            rows = conn.execute("SELECT epoch, attempt FROM history WHERE run_id = ? ORDER BY epoch", (run_id,))
            return {row["epoch"]: row["attempt"] for row in rows}

    def run_dir(self, sweep_id: str, run_id: str) -> Path:
        return (self.home / "runs" / sweep_id / run_id).resolve()

    # -- runs: leases and writes (called inside `write()` by the controller) ------------------------

    def insert_run(self, conn: sqlite3.Connection, sweep_id: str, config: dict[str, Any]) -> str:
        run_id = new_id()
        seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM runs WHERE sweep_id = ?", (sweep_id,)).fetchone()[0]
        conn.execute("INSERT INTO runs (id, sweep_id, seq, state, config, created_at, run_dir) "
                     "VALUES (?, ?, ?, 'pending', ?, ?, ?)",
                     (run_id, sweep_id, seq, json.dumps(config), time.time(), str(self.run_dir(sweep_id, run_id))))
        return run_id

    def take_lease(self, conn: sqlite3.Connection, run_id: str, owner: str, seconds: float) -> Lease:
        """Mark the run running under a fresh lease and open an attempt for it."""
        now = time.time()
        row = conn.execute("SELECT sweep_id, attempts FROM runs WHERE id = ?", (run_id,)).fetchone()
        attempt, token = row["attempts"] + 1, secrets.token_hex(8)
        conn.execute("UPDATE runs SET state = 'running', owner = ?, lease_token = ?, lease_expires_at = ?, "
                     "heartbeat_at = ?, attempts = ?, stop_requested = NULL, started_at = COALESCE(started_at, ?), "
                     "finished_at = NULL WHERE id = ?", (owner, token, now + seconds, now, attempt, now, run_id))
        done = conn.execute("SELECT COUNT(*) FROM history WHERE run_id = ?", (run_id,)).fetchone()[0]
        conn.execute("INSERT INTO attempts (run_id, attempt, agent, started_at, resumed_from_epoch) "
                     "VALUES (?, ?, ?, ?, ?)", (run_id, attempt, owner, now, done))
        return Lease(run_id=run_id, sweep_id=row["sweep_id"], token=token, owner=owner, attempt=attempt,
                     seconds=seconds)

    def check_lease(self, conn: sqlite3.Connection, lease: Lease) -> sqlite3.Row:
        """The run's row, if the lease still holds it; LeaseLost otherwise (fencing a zombie agent)."""
        row = conn.execute("SELECT * FROM runs WHERE id = ?", (lease.run_id,)).fetchone()
        if row is None or row["state"] != "running" or row["lease_token"] != lease.token:
            raise LeaseLost(f"run '{lease.run_id}' is no longer held by {lease.owner} "
                            f"(now {row['state'] if row else 'gone'})")
        return row

    def renew(self, conn: sqlite3.Connection, lease: Lease) -> str | None:
        """Extend the lease; return the reason the controller wants the run stopped, if any."""
        row = self.check_lease(conn, lease)
        now = time.time()
        conn.execute("UPDATE runs SET lease_expires_at = ?, heartbeat_at = ? WHERE id = ?",
                     (now + lease.seconds, now, lease.run_id))
        return row["stop_requested"]

    def heartbeat(self, lease: Lease) -> str | None:
        with self.write() as conn:
            return self.renew(conn, lease)

    def add_epoch(self, conn: sqlite3.Connection, lease: Lease, metrics: dict[str, Any]) -> None:
        conn.execute("INSERT OR REPLACE INTO history (run_id, epoch, attempt, metrics) VALUES (?, ?, ?, ?)",
                     (lease.run_id, metrics["epoch"], lease.attempt, json.dumps(metrics)))

    def fill_history(self, conn: sqlite3.Connection, lease: Lease, history: list[dict[str, Any]]) -> None:
        """Add epochs the run finished but never reported (killed between checkpoint and report)."""
        conn.executemany("INSERT OR IGNORE INTO history (run_id, epoch, attempt, metrics) VALUES (?, ?, ?, ?)",
                         [(lease.run_id, h["epoch"], lease.attempt, json.dumps(h)) for h in history])

    def end_attempt(self, conn: sqlite3.Connection, lease: Lease, state: RunState, *, detail: str | None = None,
                    summary: dict[str, Any] | None = None, failed: bool = False) -> None:
        """Release the lease, set the run's state, and close the attempt with its outcome.

        `failed` attempts count towards the run's retry limit and set its `failure`;
        a finished run's `failure` is cleared (earlier attempts keep theirs).
        """
        now = time.time()
        if failed:
            failure_sql, failure_args = "failure = ?, failures = failures + 1,", [detail]
        elif state == "finished":
            failure_sql, failure_args = "failure = NULL,", []
        else:
            failure_sql, failure_args = "", []
        finished_at = now if state in ("finished", "failed", "killed") else None
        conn.execute(f"UPDATE runs SET state = ?, {failure_sql} summary = COALESCE(?, summary), finished_at = ?, "
                     "owner = NULL, lease_token = NULL, lease_expires_at = NULL WHERE id = ?",
                     [state, *failure_args, json.dumps(summary) if summary is not None else None, finished_at,
                      lease.run_id])
        conn.execute("UPDATE attempts SET ended_at = ?, outcome = ?, detail = ? WHERE run_id = ? AND attempt = ?",
                     (now, state, detail, lease.run_id, lease.attempt))

    def request_stop(self, conn: sqlite3.Connection, run_id: str, reason: str) -> None:
        conn.execute("UPDATE runs SET stop_requested = ? WHERE id = ? AND state = 'running' "
                     "AND stop_requested IS NULL", (reason, run_id))

    def reap(self, sweep_id: str) -> list[str]:
        """`reap_expired` in its own transaction, so a status read shows dead agents' runs as crashed."""
        with self.write() as conn:
            return self.reap_expired(conn, sweep_id)

    def reap_expired(self, conn: sqlite3.Connection, sweep_id: str, now: float | None = None) -> list[str]:
        """Runs whose agent stopped heartbeating become crashed (and count as a failure)."""
        now = time.time() if now is None else now
        rows = conn.execute("SELECT id, owner, attempts, heartbeat_at FROM runs WHERE sweep_id = ? "
                            "AND state = 'running' AND lease_expires_at < ?", (sweep_id, now)).fetchall()
        for row in rows:
            silent = now - (row["heartbeat_at"] or now)
            reason = f"lease expired: agent {row['owner']} sent no heartbeat for {silent:.0f}s"
            conn.execute("UPDATE runs SET state = 'crashed', failure = ?, failures = failures + 1, "
                         "finished_at = ?, owner = NULL, lease_token = NULL, lease_expires_at = NULL WHERE id = ?",
                         (reason, now, row["id"]))
            conn.execute("UPDATE attempts SET ended_at = ?, outcome = 'crashed', detail = ? "
                         "WHERE run_id = ? AND attempt = ?", (now, reason, row["id"], row["attempts"]))
        return [row["id"] for row in rows]


def _sweep_record(row: sqlite3.Row) -> SweepRecord:
    return SweepRecord(id=row["id"], backend=row["backend"], state=row["state"], config=json.loads(row["config"]),
                       created_at=row["created_at"])


def _run_record(row: sqlite3.Row, history: list[dict[str, Any]]) -> RunRecord:
    return RunRecord(id=row["id"], sweep_id=row["sweep_id"], state=row["state"], config=json.loads(row["config"]),
                     history=history, summary=json.loads(row["summary"]), failure=row["failure"],
                     attempts=row["attempts"], created_at=row["created_at"], started_at=row["started_at"],
                     finished_at=row["finished_at"], run_dir=row["run_dir"])
