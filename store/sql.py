"""The storage interface in SQL that SQLite and PostgreSQL both speak: one implementation, two dialects.

The statements keep to the common subset (`INSERT ... ON CONFLICT`, `UPDATE ... RETURNING`,
`DOUBLE PRECISION`, `?` placeholders that the PostgreSQL dialect turns into `%s`), so the rules
that make claims, leases and fencing correct are written once. A dialect supplies what differs:
how to connect, the database's clock, how a transaction takes the sweep's lock, and which driver
errors are transient. See store/protocol.py for the contract.
"""

from __future__ import annotations

import json
import secrets
import string
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from store.errors import (LeaseLost, RunNotFound, SchemaMismatch, StoreError, StoreUnavailable,
                          SweepNotFound)
from store.protocol import Lease
from store.records import Attempt, EpochRow, RunRecord, RunState, SweepChanges, SweepRecord, SweepState

SCHEMA_VERSION = 2  # 1: the unversioned store of 0.1 (migrated in place on first open)
ID_ALPHABET = string.ascii_lowercase + string.digits
READ_DEADLINE_S = 15.0  # a read retries transient errors this long before giving up
T = TypeVar("T")

TABLES = [
    """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sweeps (
        id TEXT PRIMARY KEY, backend TEXT NOT NULL, state TEXT NOT NULL, state_reason TEXT,
        config TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION,
        change_seq INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY, sweep_id TEXT NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL, state TEXT NOT NULL, config TEXT NOT NULL, summary TEXT NOT NULL DEFAULT '{}',
        failure TEXT, attempts INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL, started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION,
        run_dir TEXT NOT NULL, owner TEXT, lease_token TEXT, lease_expires_at DOUBLE PRECISION,
        heartbeat_at DOUBLE PRECISION, stop_requested TEXT, checkpoint TEXT, previous_checkpoint TEXT,
        retryable INTEGER NOT NULL DEFAULT 1, notes TEXT, changed INTEGER NOT NULL DEFAULT 0,
        UNIQUE (sweep_id, seq))""",
    """CREATE INDEX IF NOT EXISTS runs_by_sweep_state ON runs (sweep_id, state)""",
    """CREATE INDEX IF NOT EXISTS runs_by_sweep_changed ON runs (sweep_id, changed)""",
    """CREATE TABLE IF NOT EXISTS history (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, epoch INTEGER NOT NULL,
        attempt INTEGER NOT NULL, metrics TEXT NOT NULL, changed INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, epoch))""",
    """CREATE INDEX IF NOT EXISTS history_by_changed ON history (changed)""",
    """CREATE TABLE IF NOT EXISTS attempts (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, attempt INTEGER NOT NULL,
        agent TEXT NOT NULL, started_at DOUBLE PRECISION NOT NULL, resumed_from_epoch INTEGER NOT NULL DEFAULT 0,
        ended_at DOUBLE PRECISION, outcome TEXT, detail TEXT, PRIMARY KEY (run_id, attempt))""",
]
# Version 1 had the same tables without these columns.
MIGRATE_FROM_V1 = [
    "ALTER TABLE sweeps ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN checkpoint TEXT",
    "ALTER TABLE runs ADD COLUMN previous_checkpoint TEXT",
    "ALTER TABLE runs ADD COLUMN retryable INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE runs ADD COLUMN notes TEXT",
    "ALTER TABLE runs ADD COLUMN changed INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE history ADD COLUMN changed INTEGER NOT NULL DEFAULT 0",
    # Everything already there counts as one change, so `changes(id, 0)` returns it.
    "UPDATE sweeps SET change_seq = 1",
    "UPDATE runs SET changed = 1",
    "UPDATE history SET changed = 1",
]


class Connection(Protocol):
    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any: ...
    def close(self) -> None: ...


class Dialect(Protocol):
    """What differs between the two databases."""

    name: str
    now_sql: str  # an SQL expression: the database's clock in seconds since the epoch
    up_since_sql: str  # an SQL expression: when the database server last started, on that clock

    def connect(self) -> Connection: ...

    def begin_write(self, conn: Connection) -> None:
        """Start a transaction that may write (SQLite takes its file lock here)."""

    def begin_read(self, conn: Connection) -> None: ...

    def schema_lock(self, conn: Connection) -> None:
        """Inside a write transaction: keep two processes from creating or migrating the schema at once."""

    def translate(self, sql: str) -> str: ...

    def classify(self, error: Exception) -> StoreError | None:
        """The store's error for a driver error (StoreUnavailable when transient); None if not a driver error."""

    def has_table(self, conn: Connection, name: str) -> bool: ...

    def before_write(self) -> None:
        """A check before each write (SQLite: is the file still the store at its path?)."""


EPOCHS_DONE = "(SELECT COUNT(*) FROM history h WHERE h.run_id = r.id) AS epochs_done"
RUNS_SQL = f"SELECT r.*, {EPOCHS_DONE} FROM runs r "  # a run row as run_record reads it; WHERE ... follows


def new_id(length: int = 8) -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(length))


class SqlStore:
    """The storage interface over one dialect; one connection per thread."""

    def __init__(self, dialect: Dialect, url: str, artifacts: Path) -> None:
        self.dialect, self.url, self.artifacts = dialect, url, Path(artifacts)
        self._local = threading.local()
        self._schema_ready = False
        self._records: dict[str, tuple[tuple[int, int], RunRecord]] = {}  # see _runs_cached

    # -- connections, errors, transactions -------------------------------------------------------

    def _conn(self) -> Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._guard(self.dialect.connect)
            self._local.conn = conn
            if not self._schema_ready:
                try:
                    self._ensure_schema(conn)
                except BaseException:
                    self.close()
                    raise
                self._schema_ready = True
        return conn

    def _guard(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except StoreError:
            raise
        except Exception as error:
            mapped = self.dialect.classify(error)
            if mapped is None:
                raise
            if isinstance(mapped, StoreUnavailable):
                self.close()  # the next try starts on a fresh connection
            raise mapped from None

    def _q(self, conn: Connection, sql: str, args: Sequence[Any] = ()) -> Any:
        sql = sql.replace("{now}", self.dialect.now_sql).replace("{up_since}", self.dialect.up_since_sql)
        return conn.execute(self.dialect.translate(sql), tuple(args))

    def _ensure_schema(self, conn: Connection) -> None:
        def current() -> bool:
            # Checked first, without DDL: PostgreSQL's CREATE INDEX IF NOT EXISTS still takes a share
            # lock on the table, which deadlocks with agents writing runs when a process starts.
            if not self.dialect.has_table(conn, "meta"):
                return False
            row = self._q(conn, "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            return row is not None and int(row["value"]) == SCHEMA_VERSION

        def setup() -> None:
            if current():
                return
            self.dialect.begin_write(conn)
            try:
                self.dialect.schema_lock(conn)
                legacy = self.dialect.has_table(conn, "sweeps") and not self.dialect.has_table(conn, "meta")
                for statement in TABLES if not legacy else TABLES[:1]:
                    self._q(conn, statement)
                row = self._q(conn, "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                version = int(row["value"]) if row else (1 if legacy else None)
                if version is None:
                    self._q(conn, "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                elif version == 1:
                    for statement in MIGRATE_FROM_V1:
                        self._q(conn, statement)
                    for statement in TABLES[1:]:
                        self._q(conn, statement)
                    self._q(conn, "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                                  "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))
                elif version != SCHEMA_VERSION:
                    raise SchemaMismatch(f"{self.url}: the store has schema version {version}, this program "
                                         f"uses {SCHEMA_VERSION}; run the matching version of `sweep`")
            except BaseException:
                self._q(conn, "ROLLBACK")
                raise
            self._q(conn, "COMMIT")

        self._guard(setup)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        conn = self._conn()
        self._guard(lambda: self.dialect.begin_read(conn))
        try:
            yield conn
        finally:
            self._guard(lambda: self._q(conn, "COMMIT"))

    def _reading(self, read: Callable[[Connection], T]) -> T:
        """A read in one snapshot, retried while the store is briefly unavailable."""
        from store.retry import retrying

        def attempt() -> T:
            with self._read() as conn:
                return self._guard(lambda: read(conn))

        return retrying(attempt, deadline=READ_DEADLINE_S, what=self.url)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        self.dialect.before_write()
        conn = self._conn()
        self._guard(lambda: self.dialect.begin_write(conn))
        try:
            yield conn
        except BaseException:
            try:
                self._q(conn, "ROLLBACK")
            except Exception:
                self.close()
            raise
        self._guard(lambda: self._q(conn, "COMMIT"))

    @contextmanager
    def transaction(self, sweep_id: str) -> Iterator[Transaction]:
        with self._write() as conn:
            tx = self._guard(lambda: Transaction.open(self, conn, sweep_id))
            yield tx

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def exists(self) -> bool:
        return True

    def check_alive(self) -> None:
        self.dialect.before_write()

    # -- sweeps -------------------------------------------------------------------------------------

    def create_sweep(self, config: dict[str, Any], backend: str = "local", sweep_id: str | None = None) -> SweepRecord:
        sweep_id = sweep_id or new_id()

        def insert() -> None:
            with self._write() as conn:
                def run() -> None:
                    if self._q(conn, "SELECT 1 FROM sweeps WHERE id = ?", (sweep_id,)).fetchone():
                        raise StoreError(f"sweep '{sweep_id}' already exists in {self.url}")
                    self._q(conn, "INSERT INTO sweeps (id, backend, state, config, created_at, change_seq) "
                                  "VALUES (?, ?, 'running', ?, {now}, 1)", (sweep_id, backend, dumps(config)))
                self._guard(run)

        insert()
        return self.get_sweep(sweep_id)

    def get_sweep(self, sweep_id: str) -> SweepRecord:
        return self._reading(lambda conn: self._sweep(conn, sweep_id))

    def _sweep(self, conn: Connection, sweep_id: str) -> SweepRecord:
        row = self._q(conn, "SELECT * FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        if row is None:
            raise SweepNotFound(f"no sweep '{sweep_id}' in {self.url}")
        return sweep_record(row)

    def list_sweeps(self) -> list[SweepRecord]:
        return self._reading(lambda conn: [sweep_record(row) for row in
                                           self._q(conn, "SELECT * FROM sweeps ORDER BY created_at").fetchall()])

    def delete_sweep(self, sweep_id: str) -> None:
        with self._write() as conn:
            def run() -> None:
                self._sweep(conn, sweep_id)
                runs = "SELECT id FROM runs WHERE sweep_id = ?"
                self._q(conn, f"DELETE FROM history WHERE run_id IN ({runs})", (sweep_id,))
                self._q(conn, f"DELETE FROM attempts WHERE run_id IN ({runs})", (sweep_id,))
                self._q(conn, "DELETE FROM runs WHERE sweep_id = ?", (sweep_id,))
                self._q(conn, "DELETE FROM sweeps WHERE id = ?", (sweep_id,))
            self._guard(run)

    # -- runs: reading ----------------------------------------------------------------------------

    def list_runs(self, sweep_id: str, with_history: bool = True) -> list[RunRecord]:
        def read(conn: Connection) -> list[RunRecord]:
            self._sweep(conn, sweep_id)
            return self._runs(conn, sweep_id, with_history)

        return self._reading(read)

    def _runs(self, conn: Connection, sweep_id: str, with_history: bool) -> list[RunRecord]:
        if not with_history:
            return self._runs_cached(conn, sweep_id)
        rows = self._q(conn, RUNS_SQL + "WHERE r.sweep_id = ? ORDER BY r.seq", (sweep_id,)).fetchall()
        histories: dict[str, list[dict[str, Any]]] = {}
        for row in self._q(conn, "SELECT h.run_id, h.metrics FROM history h JOIN runs r ON r.id = h.run_id "
                                 "WHERE r.sweep_id = ? ORDER BY h.run_id, h.epoch", (sweep_id,)):
            histories.setdefault(row["run_id"], []).append(json.loads(row["metrics"]))
        return [run_record(row, histories.get(row["id"], []), self.artifacts) for row in rows]

    def _runs_cached(self, conn: Connection, sweep_id: str) -> list[RunRecord]:
        """The sweep's runs without history, each row fetched and parsed once per version. A claim
        reads every run inside the sweep's lock, and most have not changed since the last claim:
        so first only each row's version, then the full rows of those that changed. A row's
        `changed` moves with every write but the heartbeat's, whose lease expiry is refreshed."""
        versions = self._q(conn, f"SELECT r.id, r.changed, r.lease_expires_at, {EPOCHS_DONE} FROM runs r "
                                 "WHERE r.sweep_id = ? ORDER BY r.seq", (sweep_id,)).fetchall()
        stale = [v["id"] for v in versions if self._records.get(v["id"], (None,))[0] != (v["changed"], v["epochs_done"])]
        if len(stale) > len(versions) // 2:
            fresh = self._q(conn, RUNS_SQL + "WHERE r.sweep_id = ?", (sweep_id,)).fetchall()
        else:
            fresh = [row for chunk in range(0, len(stale), 500) for row in self._q(
                conn, RUNS_SQL + f"WHERE r.id IN ({', '.join('?' * len(stale[chunk:chunk + 500]))})",
                stale[chunk:chunk + 500]).fetchall()]
        for row in fresh:
            self._records[row["id"]] = ((row["changed"], row["epochs_done"]), run_record(row, [], self.artifacts))
        records = []
        for version in versions:
            if version["id"] not in self._records:
                continue  # deleted between the two reads (outside a transaction)
            record = self._records[version["id"]][1]
            if record.lease_expires_at != version["lease_expires_at"]:
                record = record.model_copy(update={"lease_expires_at": version["lease_expires_at"]})
            records.append(record)
        return records

    def get_run(self, run_id: str) -> RunRecord:
        def read(conn: Connection) -> RunRecord:
            row = self._q(conn, RUNS_SQL + "WHERE r.id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFound(f"no run '{run_id}' in {self.url}")
            history = [json.loads(r["metrics"]) for r in
                       self._q(conn, "SELECT metrics FROM history WHERE run_id = ? ORDER BY epoch", (run_id,))]
            return run_record(row, history, self.artifacts)

        return self._reading(read)

    def list_attempts(self, sweep_id: str | None = None, run_id: str | None = None) -> list[Attempt]:
        where, args = ("a.run_id = ?", (run_id,)) if run_id is not None else ("r.sweep_id = ?", (sweep_id,))
        return self._reading(lambda conn: [Attempt(**{k: row[k] for k in Attempt.model_fields}) for row in self._q(
            conn, f"SELECT a.* FROM attempts a JOIN runs r ON r.id = a.run_id WHERE {where} "
                  "ORDER BY r.seq, a.attempt", args).fetchall()])

    def history_attempts(self, run_id: str) -> dict[int, int]:
        return self._reading(lambda conn: {row["epoch"]: row["attempt"] for row in self._q(
            conn, "SELECT epoch, attempt FROM history WHERE run_id = ? ORDER BY epoch", (run_id,))})

    def changes(self, sweep_id: str, since: int) -> SweepChanges:
        def read(conn: Connection) -> SweepChanges:
            sweep = self._sweep(conn, sweep_id)
            row = self._q(conn, "SELECT change_seq FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
            rows = self._q(conn, RUNS_SQL + "WHERE r.sweep_id = ? AND r.changed > ? ORDER BY r.seq",
                           (sweep_id, since)).fetchall()
            epochs = [EpochRow(run_id=e["run_id"], epoch=e["epoch"], attempt=e["attempt"],
                               metrics=json.loads(e["metrics"])) for e in self._q(
                conn, "SELECT h.* FROM history h WHERE h.changed > ? AND EXISTS (SELECT 1 FROM runs r "
                      "WHERE r.id = h.run_id AND r.sweep_id = ?) ORDER BY h.changed, h.run_id, h.epoch",
                (since, sweep_id)).fetchall()]  # led by the index on `changed`: cheap when little changed
            return SweepChanges(cursor=row["change_seq"], sweep=sweep, runs=[run_record(r, [], self.artifacts) for r in rows],
                                epochs=epochs)

        return self._reading(read)

    def run_path(self, run: RunRecord) -> Path:
        return Path(run.run_dir) if run.run_dir else self.artifacts / run.sweep_id / run.id

    def resolve(self, relative: str) -> Path:
        """An artifact path recorded in the store, on this machine."""
        return self.artifacts / relative

    # -- a lease's own write ------------------------------------------------------------------------

    def heartbeat(self, lease: Lease) -> str | None:
        with self._write() as conn:
            def run() -> str | None:
                row = self._q(conn, "UPDATE runs SET lease_expires_at = {now} + ?, heartbeat_at = {now} "
                                    "WHERE id = ? AND lease_token = ? AND state = 'running' RETURNING stop_requested",
                              (lease.seconds, lease.run_id, lease.token)).fetchone()
                if row is None:
                    raise LeaseLost(f"run '{lease.run_id}' is no longer held by {lease.owner}")
                return row["stop_requested"]
            return self._guard(run)


class Transaction:
    """One sweep under its lock (store/protocol.py's SweepTransaction)."""

    def __init__(self, store: SqlStore, conn: Connection, sweep: SweepRecord, change: int, now: float) -> None:
        self.store, self.conn, self.sweep, self.change, self.now = store, conn, sweep, change, now

    @classmethod
    def open(cls, store: SqlStore, conn: Connection, sweep_id: str) -> Transaction:
        # Advancing the change counter takes the sweep row's lock (PostgreSQL) for the whole transaction.
        row = store._q(conn, "UPDATE sweeps SET change_seq = change_seq + 1 WHERE id = ? "
                             "RETURNING change_seq, {now} AS now", (sweep_id,)).fetchone()
        if row is None:
            raise SweepNotFound(f"no sweep '{sweep_id}' in {store.url}")
        return cls(store, conn, store._sweep(conn, sweep_id), row["change_seq"], float(row["now"]))

    def _q(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.store._q(self.conn, sql, args)

    def runs(self, with_history: bool) -> list[RunRecord]:
        return self.store._runs(self.conn, self.sweep.id, with_history)

    def run(self, run_id: str) -> RunRecord:
        row = self._q(RUNS_SQL + "WHERE r.id = ? AND r.sweep_id = ?", (run_id, self.sweep.id)).fetchone()
        if row is None:
            raise RunNotFound(f"no run '{run_id}' in sweep '{self.sweep.id}'")
        return run_record(row, [], self.store.artifacts)

    def insert_run(self, config: dict[str, Any]) -> RunRecord:
        run_id = new_id()
        seq = self._q("SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM runs WHERE sweep_id = ?",
                      (self.sweep.id,)).fetchone()["next"]
        self._q("INSERT INTO runs (id, sweep_id, seq, state, config, created_at, run_dir, changed) "
                "VALUES (?, ?, ?, 'pending', ?, ?, ?, ?)",
                (run_id, self.sweep.id, seq, dumps(config), self.now, f"{self.sweep.id}/{run_id}", self.change))
        return self.run(run_id)

    def take_lease(self, run_id: str, owner: str, seconds: float) -> Lease:
        run = self.run(run_id)
        attempt, token = run.attempts + 1, secrets.token_hex(16)
        self._q("UPDATE runs SET state = 'running', owner = ?, lease_token = ?, lease_expires_at = ?, heartbeat_at = ?, "
                "attempts = ?, stop_requested = NULL, started_at = COALESCE(started_at, ?), finished_at = NULL, "
                "changed = ? WHERE id = ?",
                (owner, token, self.now + seconds, self.now, attempt, self.now, self.change, run_id))
        self._q("INSERT INTO attempts (run_id, attempt, agent, started_at, resumed_from_epoch) VALUES (?, ?, ?, ?, ?)",
                (run_id, attempt, owner, self.now, run.epochs_done))
        return Lease(run_id=run_id, sweep_id=self.sweep.id, token=token, owner=owner, attempt=attempt,
                     seconds=seconds)

    def check_lease(self, lease: Lease) -> RunRecord:
        row = self._q("SELECT state, lease_token FROM runs WHERE id = ?", (lease.run_id,)).fetchone()
        if row is None or row["state"] != "running" or row["lease_token"] != lease.token:
            raise LeaseLost(f"run '{lease.run_id}' is no longer held by {lease.owner} "
                            f"(now {row['state'] if row else 'gone'})")
        return self.run(lease.run_id)

    def renew(self, lease: Lease) -> None:
        self._q("UPDATE runs SET lease_expires_at = ?, heartbeat_at = ? WHERE id = ?",
                (self.now + lease.seconds, self.now, lease.run_id))

    def add_epoch(self, lease: Lease, metrics: dict[str, Any], checkpoint: str | None) -> None:
        self.check_lease(lease)
        self.renew(lease)
        self._q("INSERT INTO history (run_id, epoch, attempt, metrics, changed) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id, epoch) DO UPDATE SET attempt = excluded.attempt, metrics = excluded.metrics, "
                "changed = excluded.changed",
                (lease.run_id, int(metrics["epoch"]), lease.attempt, dumps(metrics), self.change))
        if checkpoint is not None:
            self._q("UPDATE runs SET previous_checkpoint = CASE WHEN checkpoint = ? THEN previous_checkpoint "
                    "ELSE checkpoint END, checkpoint = ?, changed = ? WHERE id = ?",
                    (checkpoint, checkpoint, self.change, lease.run_id))
        else:
            self._q("UPDATE runs SET changed = ? WHERE id = ?", (self.change, lease.run_id))

    def end_attempt(self, lease: Lease, state: RunState, *, detail: str | None = None,
                    summary: dict[str, Any] | None = None, failed: bool = False, retryable: bool = True,
                    history: list[dict[str, Any]] | None = None, checkpoint: str | None = None) -> None:
        try:
            self.check_lease(lease)
        except LeaseLost:
            ended = self._q("SELECT outcome FROM attempts WHERE run_id = ? AND attempt = ?",
                            (lease.run_id, lease.attempt)).fetchone()
            if ended is not None and ended["outcome"] == state:
                return  # this very attempt already ended so: a commit whose answer was lost, retried
            raise
        for metrics in history or []:  # epochs the run finished but never reported (killed in between)
            self._q("INSERT INTO history (run_id, epoch, attempt, metrics, changed) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (run_id, epoch) DO NOTHING",
                    (lease.run_id, int(metrics["epoch"]), lease.attempt, dumps(metrics), self.change))
        failure_sql = ("failure = ?, failures = failures + 1, retryable = ?," if failed else
                       "failure = NULL," if state == "finished" else "")
        failure_args: list[Any] = [detail, int(retryable)] if failed else []
        finished_at = self.now if state in ("finished", "failed", "killed") else None
        self._q(f"UPDATE runs SET state = ?, {failure_sql} summary = COALESCE(?, summary), finished_at = ?, "
                "checkpoint = COALESCE(?, checkpoint), owner = NULL, lease_token = NULL, lease_expires_at = NULL, "
                "changed = ? WHERE id = ?",
                [state, *failure_args, dumps(summary) if summary is not None else None, finished_at, checkpoint,
                 self.change, lease.run_id])
        self._q("UPDATE attempts SET ended_at = ?, outcome = ?, detail = ? WHERE run_id = ? AND attempt = ?",
                (self.now, state, detail, lease.run_id, lease.attempt))

    def request_stop(self, run_id: str, reason: str) -> None:
        self._q("UPDATE runs SET stop_requested = ?, changed = ? WHERE id = ? AND state = 'running' "
                "AND stop_requested IS NULL", (reason, self.change, run_id))

    def reap_expired(self) -> list[str]:
        """Crashed, by the database's clock. A crash counts towards the retry limit only when its attempt
        reported no epoch: a run that keeps making progress is not a run that kills its agent."""
        # A lease also lasts one full term after the server (re)started: while it was down no agent
        # could renew, and its restart must not crash every live run (PostgreSQL; SQLite has no server).
        rows = self._q("SELECT id, owner, attempts, heartbeat_at FROM runs WHERE sweep_id = ? AND state = 'running' "
                       "AND lease_expires_at < ? AND {up_since} + (lease_expires_at - COALESCE(heartbeat_at, "
                       "lease_expires_at)) < ?", (self.sweep.id, self.now, self.now)).fetchall()
        for row in rows:
            silent = self.now - (row["heartbeat_at"] or self.now)
            reason = f"lease expired: agent {row['owner']} sent no heartbeat for {silent:.0f}s"
            progressed = self._q("SELECT COUNT(*) AS n FROM history WHERE run_id = ? AND attempt = ?",
                                 (row["id"], row["attempts"])).fetchone()["n"] > 0
            self._q("UPDATE runs SET state = 'crashed', failure = ?, failures = failures + ?, finished_at = ?, "
                    "owner = NULL, lease_token = NULL, lease_expires_at = NULL, changed = ? "
                    "WHERE id = ? AND state = 'running'",
                    (reason, 0 if progressed else 1, self.now, self.change, row["id"]))
            self._q("UPDATE attempts SET ended_at = ?, outcome = 'crashed', detail = ? WHERE run_id = ? AND attempt = ?",
                    (self.now, reason, row["id"], row["attempts"]))
        return [row["id"] for row in rows]

    def set_state(self, state: SweepState, reason: str | None) -> None:
        self._q("UPDATE sweeps SET state = ?, state_reason = ?, finished_at = ? WHERE id = ?",
                (state, reason, self.now if state != "running" else None, self.sweep.id))
        self.sweep = self.store._sweep(self.conn, self.sweep.id)

    def offer_again(self, run_ids: list[str], note: str) -> None:
        for run_id in run_ids:
            self._q("UPDATE runs SET state = 'preempted', failures = 0, retryable = 1, changed = ? "
                    "WHERE id = ? AND state IN ('failed', 'crashed')", (self.change, run_id))
            self.note(run_id, note)

    def note(self, run_id: str, text: str) -> None:
        row = self._q("SELECT notes FROM runs WHERE id = ?", (run_id,)).fetchone()
        notes = json.loads(row["notes"]) if row and row["notes"] else []
        self._q("UPDATE runs SET notes = ?, changed = ? WHERE id = ?",
                (dumps([*notes, text][-20:]), self.change, run_id))


def dumps(value: Any) -> str:
    """Standard JSON only: a non-finite number is refused here rather than stored as `Infinity`."""
    return json.dumps(value, allow_nan=False, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def sweep_record(row: Any) -> SweepRecord:
    return SweepRecord(id=row["id"], backend=row["backend"], state=row["state"], state_reason=row["state_reason"],
                       config=json.loads(row["config"]), created_at=row["created_at"],
                       finished_at=row["finished_at"])


def run_record(row: Any, history: list[dict[str, Any]], artifacts: Path) -> RunRecord:
    """A run as readers see it: its folder resolved on this machine (the row keeps it relative to the root)."""
    keys = row.keys()
    return RunRecord(
        id=row["id"], sweep_id=row["sweep_id"], seq=row["seq"], state=row["state"], config=json.loads(row["config"]),
        history=history, summary=json.loads(row["summary"]), failure=row["failure"], attempts=row["attempts"],
        failures=row["failures"], created_at=row["created_at"], started_at=row["started_at"],
        finished_at=row["finished_at"], run_dir=str(artifacts / row["run_dir"]), owner=row["owner"],
        lease_expires_at=row["lease_expires_at"], stop_requested=row["stop_requested"],
        checkpoint=row["checkpoint"], previous_checkpoint=row["previous_checkpoint"],
        retryable=bool(row["retryable"]), notes=json.loads(row["notes"]) if row["notes"] else [],
        epochs_done=row["epochs_done"] if "epochs_done" in keys else len(history), changed=row["changed"])

