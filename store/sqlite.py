"""The embedded store: one SQLite file in WAL mode, for the agents of one machine.

    $SWEEP_HOME/sweep.db                  sweeps, runs, per-epoch history, attempts
    $SWEEP_ARTIFACTS (default $SWEEP_HOME/runs)/<sweep>/<run>/   checkpoints, predictions, logs

Every write is one `BEGIN IMMEDIATE` transaction: it locks the whole file, which is the sweep lock
of store/protocol.py (and more). WAL needs every process on one host (SQLite's own documentation:
it does not work over a network filesystem), so for many machines use the PostgreSQL store.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

from store.errors import StoreError, StoreGone, StoreUnavailable, SweepNotFound
from store.records import SweepRecord
from store.sql import SqlStore

HOME_ENV = "SWEEP_HOME"
ARTIFACTS_ENV = "SWEEP_ARTIFACTS"
DEFAULT_HOME = ".sweep"
DB_NAME = "sweep.db"
BUSY_TIMEOUT_S = 10.0  # how long a writer waits for another's transaction; under a lease's quarter (a beat)


def default_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)


def default_artifacts(home: Path) -> Path:
    return Path(os.environ.get(ARTIFACTS_ENV) or home / "runs")


def _dict_row(cursor: sqlite3.Cursor, row: tuple) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row)}


class SQLiteDialect:
    name = "sqlite"
    now_sql = "((julianday('now') - 2440587.5) * 86400.0)"
    up_since_sql = "0.0"  # no server: the file is always up

    def __init__(self, path: Path, create: bool) -> None:
        self.path, self.create = path, create
        self.identity: tuple[int, int] | None = None  # (device, inode) of the file this process opened
        self.read_only = False

    def connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            if not self.create:
                raise SweepNotFound(f"no sweeps yet: {self.path} does not exist (set --home or ${HOME_ENV})")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(f"{self.path}: cannot create the store ({error.strerror})") from None
        self.read_only = self.path.is_file() and not (os.access(self.path, os.W_OK)
                                                      and os.access(self.path.parent, os.W_OK))
        if self.read_only:  # read commands still work; a write fails with one line (SQLITE_READONLY)
            conn = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True, timeout=BUSY_TIMEOUT_S,
                                   isolation_level=None, check_same_thread=False)
        else:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        conn.row_factory = _dict_row
        if not self.read_only:
            if conn.execute("PRAGMA journal_mode").fetchone()["journal_mode"] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, nor the writer them
            conn.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; WAL keeps it consistent
        conn.execute("PRAGMA foreign_keys=ON")
        stat = os.stat(self.path)
        self.identity = (stat.st_dev, stat.st_ino)
        return conn

    def before_write(self) -> None:
        if self.identity is None:
            return
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise StoreGone(f"{self.path}: the store was deleted while this agent ran; stopping, nothing more "
                            "is written") from None
        if (stat.st_dev, stat.st_ino) != self.identity:
            raise StoreGone(f"{self.path}: the store was replaced by another file while this agent ran; "
                            "stopping, nothing more is written")

    def begin_write(self, conn: sqlite3.Connection) -> None:
        """Take the write lock up front (concurrent claims serialise instead of deadlocking).

        Polled here rather than by SQLite's busy handler, which sleeps ever longer (up to 100 ms a
        time) and so, with eight agents, keeps missing a lock that is free for milliseconds at a
        time: that was the tail of the claim latency."""
        give_up = time.monotonic() + BUSY_TIMEOUT_S
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as error:
                    if not str(getattr(error, "sqlite_errorname", "")).startswith("SQLITE_BUSY") or \
                            time.monotonic() > give_up:
                        raise
                time.sleep(random.uniform(0.0005, 0.002))
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")

    def begin_read(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN")

    def schema_lock(self, conn: sqlite3.Connection) -> None:
        pass  # BEGIN IMMEDIATE already excludes every other writer

    def translate(self, sql: str) -> str:
        return sql

    def has_table(self, conn: sqlite3.Connection, name: str) -> bool:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() \
            is not None

    def classify(self, error: Exception) -> StoreError | None:
        if not isinstance(error, sqlite3.Error):
            return None
        code = getattr(error, "sqlite_errorname", "") or ""
        where = str(self.path)
        if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(error):
            return StoreUnavailable(f"{where}: locked by another process past {BUSY_TIMEOUT_S:.0f}s ({error})")
        if code.startswith("SQLITE_FULL") or "full" in str(error):
            return StoreError(f"{where}: no space left on device; free some space, then run `sweep agent` again "
                              "(it resumes from the last checkpoint)")
        if code.startswith("SQLITE_READONLY"):
            return StoreError(f"{where}: the store is read-only; reading works, changing it needs write "
                              "permission on the file and its folder")
        if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            return StoreError(f"{where}: the store is damaged ({error}); move it aside and restore a backup "
                              "(`sqlite3 sweep.db .recover` may save what is left)")
        if code.startswith("SQLITE_IOERR"):
            return StoreError(f"{where}: disk I/O error writing the store ({error}); is the disk full or gone?")
        if code.startswith("SQLITE_CANTOPEN"):
            return StoreError(f"{where}: cannot open the store ({error})")
        return StoreError(f"{where}: {error}")


class SQLiteStore(SqlStore):
    """The embedded store under `home` (default ./.sweep or $SWEEP_HOME)."""

    def __init__(self, home: Path | None = None, create: bool = False, db_path: Path | None = None,
                 artifacts: Path | None = None) -> None:
        self.home = Path(home) if home is not None else default_home()
        self.db_path = Path(db_path) if db_path is not None else self.home / DB_NAME
        super().__init__(SQLiteDialect(self.db_path, create), f"sqlite:///{self.db_path}",
                         Path(artifacts) if artifacts is not None else default_artifacts(self.home))

    def exists(self) -> bool:
        return self.db_path.is_file()

    def list_sweeps(self) -> list[SweepRecord]:
        return super().list_sweeps() if self.exists() else []

    def create_sweep(self, config: dict[str, Any], backend: str = "local", sweep_id: str | None = None) -> SweepRecord:
        self.dialect.create = True  # only creating a sweep makes the file; reading a missing store makes nothing
        return super().create_sweep(config, backend, sweep_id)
