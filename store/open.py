"""A store from a URL: `--store URL`, else $SWEEP_STORE, else the embedded SQLite file under --home."""

from __future__ import annotations

from pathlib import Path

from store.protocol import Store


def open_store(url: str | None = None, home: Path | None = None, create: bool = False) -> Store:
    from store.sqlite import LocalStore  # replaced by the URL dispatch when the SQL backends land

    return LocalStore(home)
