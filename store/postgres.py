"""The PostgreSQL store: one sweep across many machines, with no account and no internet.

Every agent on every node names the same `postgresql://user@host:port/db`. A transaction locks its
sweep's row (the `UPDATE ... RETURNING` in `Transaction.open` holds the row lock until commit), so
under PostgreSQL's default READ COMMITTED isolation the claims of one sweep are served one at a
time and each sees the one before it. Lease times come from the server's `clock_timestamp()`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from store.errors import StoreError, StoreUnavailable

CONNECT_TIMEOUT_S = 5
LOCK_TIMEOUT = "15s"  # a transaction waiting longer for a sweep's lock gives up and is retried
SCHEMA_LOCK_KEY = 0x5EE9  # pg_advisory_xact_lock key serialising schema creation across agents
# SQLSTATE classes that no retry will cure: authentication, a missing database, insufficient privilege.
PERMANENT_SQLSTATES = ("28", "3D", "42501")


class PostgresDialect:
    name = "postgresql"
    now_sql = "EXTRACT(EPOCH FROM clock_timestamp())::double precision"
    up_since_sql = "EXTRACT(EPOCH FROM pg_postmaster_start_time())::double precision"
    read_only = False

    def __init__(self, url: str) -> None:
        self.url = url

    def connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT_S,
                               application_name="sweep")
        conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        return conn

    def before_write(self) -> None:
        pass

    def begin_write(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("BEGIN")

    def begin_read(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")  # one snapshot for several queries

    def schema_lock(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))

    def translate(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def has_table(self, conn: psycopg.Connection[Any], name: str) -> bool:
        return conn.execute("SELECT to_regclass(%s) AS t", (name,)).fetchone()["t"] is not None

    def classify(self, error: Exception) -> StoreError | None:
        if not isinstance(error, psycopg.Error):
            return None
        where = redact(self.url)
        message = " ".join(str(error).split()) or type(error).__name__
        state = error.sqlstate or ""
        if state.startswith(PERMANENT_SQLSTATES) or "authentication failed" in message \
                or ("database" in message and "does not exist" in message):
            return StoreError(f"{where}: {message}")
        if isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError)) or state.startswith(("40", "55", "57", "08")):
            return StoreUnavailable(f"{where}: {message}")  # refused, dropped, restarting, lock timeout, serialization
        return StoreError(f"{where}: {message}")


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}@{host}"


def postgres_store(url: str, artifacts: Path) -> Any:
    from store.sql import SqlStore

    store = SqlStore(PostgresDialect(url), redact(url), artifacts)
    store.home = artifacts.parent  # W&B offline runs of `--backend wandb` live beside the artifacts
    return store
