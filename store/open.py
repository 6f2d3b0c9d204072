"""A store from a URL: `--store URL`, else $SWEEP_STORE, else the embedded SQLite file under --home.

    (nothing)                         ./.sweep/sweep.db, or $SWEEP_HOME/sweep.db
    path/to/folder  or  x.db          that folder's sweep.db, or that file
    sqlite:///path/sweep.db           the same, as a URL (sqlite:////abs/path for an absolute path)
    postgresql://user@host:port/db    a PostgreSQL server (postgres:// too)

Artifacts (checkpoints, predictions, logs) go under $SWEEP_ARTIFACTS, default $SWEEP_HOME/runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from store.errors import StoreError
from store.protocol import Store
from store.sqlite import DB_NAME, SQLiteStore, default_artifacts, default_home

STORE_ENV = "SWEEP_STORE"


def open_store(url: str | None = None, home: Path | None = None, create: bool = False) -> Store:
    url = url or os.environ.get(STORE_ENV) or None
    home = Path(home) if home is not None else default_home()
    if url is None:
        return SQLiteStore(home, create=create)
    if url.startswith(("postgresql://", "postgres://")):
        from store.postgres import postgres_store

        return postgres_store(url, default_artifacts(home))
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:")
        if not path.startswith("///"):
            raise StoreError(f"--store {url!r}: write sqlite:///relative/sweep.db or sqlite:////absolute/sweep.db")
        return _sqlite_at(Path(path[3:]), home, create)
    if "://" in url:
        raise StoreError(f"--store {url!r}: unknown kind of store; use a path, sqlite:///path or "
                         "postgresql://user@host:port/db")
    return _sqlite_at(Path(url), home, create)


def _sqlite_at(path: Path, home: Path, create: bool) -> SQLiteStore:
    """A path naming a .db file is that file; any other path is a folder holding sweep.db."""
    db_path = path if path.suffix in (".db", ".sqlite", ".sqlite3") else path / DB_NAME
    folder = db_path.parent
    artifacts = Path(os.environ["SWEEP_ARTIFACTS"]) if os.environ.get("SWEEP_ARTIFACTS") else folder / "runs"
    return SQLiteStore(folder, create=create, db_path=db_path, artifacts=artifacts)
