"""The store's own errors: every driver error becomes one of these at the backend's boundary.

Two kinds matter to a caller. `StoreUnavailable` is transient (a lock held too long, a dropped
connection, a server restarting): retry it, never fail a run for it. Every other `StoreError` is
permanent (wrong schema version, authentication, a damaged or read-only file, a full disk): one line
to the user, exit 2. Messages name the store and the cause.
"""

from __future__ import annotations


class StoreError(Exception):
    """A store problem a user can act on; the message is one line naming the store or the sweep."""


class SweepNotFound(StoreError):
    pass


class RunNotFound(StoreError):
    pass


class LeaseLost(StoreError):
    """The run is no longer this attempt's: its lease expired and the run was reaped or re-claimed."""


class SchemaMismatch(StoreError):
    """The database was made by another version of this program."""


class StoreUnavailable(StoreError):
    """Transient: the store could not be reached or was busy. Retried with backoff."""


class StoreUnreachable(StoreError):
    """The store stayed unavailable past the agent's deadline: checkpoint, release, exit non-zero."""


class StoreGone(StoreError):
    """The database file an agent writes to is no longer the store at its path (deleted or replaced)."""
