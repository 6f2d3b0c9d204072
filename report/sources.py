"""Which RunSource a sweep id names: W&B paths (entity/project/id) go to W&B, the rest to the local store."""

from __future__ import annotations

from pathlib import Path

from store.errors import StoreError
from store.open import open_store
from store.protocol import Store
from store.records import RunRecord, RunSource, SweepRecord
from report.errors import ReportError
from report.wandb_source import WandbSource

WANDB_RUNS_FOLDER = "wandb-runs"  # where `sweep agent` keeps W&B runs' artifact folders inside the store


class StoreSource:
    """The local store, with its errors turned into the report's."""

    def __init__(self, store: Store):
        self.store = store

    def get_sweep(self, sweep_id: str) -> SweepRecord:
        try:
            return self.store.get_sweep(sweep_id)
        except StoreError as error:
            raise ReportError(str(error)) from None

    def list_runs(self, sweep_id: str) -> list[RunRecord]:
        try:
            return self.store.list_runs(sweep_id)
        except StoreError as error:
            raise ReportError(str(error)) from None


def open_source(sweep_id: str, home: Path | None = None, store_url: str | None = None) -> RunSource:
    store = open_store(store_url, home)
    if "/" in sweep_id:  # the same rule `sweep agent` uses
        return WandbSource(local_runs_root=store.home / WANDB_RUNS_FOLDER)
    return StoreSource(store)
