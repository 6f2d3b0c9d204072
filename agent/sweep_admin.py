"""`sweep delete` and `sweep resume`: remove one sweep (rows and artifacts), or undo `sweep stop`."""

from __future__ import annotations

import os
import shutil
import uuid
from collections import Counter
from pathlib import Path

from pydantic import BaseModel

from store.errors import StoreError
from store.protocol import Store
from store.records import SweepRecord


class SweepActionError(StoreError):
    """A delete or resume that would do the wrong thing; the message says what to do instead."""


class DeletePlan(BaseModel):
    """What `sweep delete` will remove: shown before it asks, and returned by `--json`."""

    id: str
    name: str | None
    backend: str
    state: str
    runs: int
    runs_by_state: dict[str, int]
    artifacts: str | None  # the sweep's artifact folder, when it has one on this machine


class DeleteResult(BaseModel):
    id: str
    deleted_runs: int
    artifacts_removed: str | None
    leftover: str | None = None  # a folder that could not be removed (the rows are gone all the same)


class ResumeResult(BaseModel):
    id: str
    state: str
    was: str
    changed: bool


def plan_delete(store: Store, sweep_id: str) -> DeletePlan:
    """What deleting `sweep_id` removes; refuses while one of its runs is still being trained."""
    sweep = store.get_sweep(sweep_id)
    if sweep.backend == "local":
        with store.transaction(sweep_id) as tx:  # an agent that died long ago should not block the delete
            tx.reap_expired()
    runs = store.list_runs(sweep_id, with_history=False)
    counts = Counter(run.state for run in runs)
    if counts.get("running"):
        raise SweepActionError(
            f"sweep {sweep_id} has {counts['running']} running run{'s' if counts['running'] != 1 else ''} that "
            f"agents are training; stop them first "
            f"(`sweep stop {sweep_id} --cancel`, then wait for the agents to end them) and delete again")
    folder = artifact_folder(store, sweep_id)
    return DeletePlan(id=sweep.id, name=sweep.config.get("name"), backend=sweep.backend, state=sweep.state,
                      runs=len(runs), runs_by_state=dict(counts),
                      artifacts=str(folder) if folder is not None and folder.exists() else None)


def delete_sweep(store: Store, plan: DeletePlan) -> DeleteResult:
    """The sweep's rows, then its artifact folder; no other sweep's rows or files are touched.

    The folder is first renamed aside (one atomic step), so a failure to delete the rows leaves
    everything as it was, and a folder that cannot be removed afterwards is named in the result.
    """
    folder = Path(plan.artifacts) if plan.artifacts else None
    aside = folder.with_name(f".deleting-{folder.name}-{uuid.uuid4().hex[:8]}") if folder else None
    if folder is not None and aside is not None:
        try:
            os.replace(folder, aside)
        except OSError as error:
            raise SweepActionError(f"{folder}: cannot remove the sweep's artifacts ({error.strerror}); "
                                   f"nothing was deleted") from None
    try:
        store.delete_sweep(plan.id)
    except BaseException:
        if folder is not None and aside is not None:
            os.replace(aside, folder)
        raise
    leftover = None
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
        leftover = str(aside) if aside.exists() else None
    return DeleteResult(id=plan.id, deleted_runs=plan.runs, artifacts_removed=plan.artifacts, leftover=leftover)


def resume_sweep(store: Store, sweep_id: str) -> ResumeResult:
    """Undo `sweep stop`: agents are handed runs again. A finished sweep has none left to hand out."""
    with store.transaction(sweep_id) as tx:
        sweep: SweepRecord = tx.sweep
        if sweep.backend != "local":
            raise SweepActionError(f"sweep '{sweep_id}' runs on W&B's controller; resume it there "
                                   f"(`wandb sweep --resume {sweep_id}`)")
        if sweep.state == "finished":
            raise SweepActionError(f"sweep {sweep_id} is finished ({sweep.state_reason or 'no reason recorded'}), "
                                   f"not stopped: it has no runs left to hand out; `sweep resume` undoes "
                                   f"`sweep stop`. For more runs, create a new sweep")
        if sweep.state == "running":
            return ResumeResult(id=sweep.id, state="running", was="running", changed=False)
        tx.set_state("running", None)
        return ResumeResult(id=sweep.id, state="running", was=sweep.state, changed=True)


def artifact_folder(store: Store, sweep_id: str) -> Path | None:
    """`<artifact root>/<sweep id>`, or None when the id cannot be one folder there (a W&B path)."""
    root = Path(store.artifacts)
    folder = root / sweep_id
    if "/" in sweep_id or os.sep in sweep_id or sweep_id in ("", ".", "..") or folder.resolve().parent != root.resolve():
        return None
    return folder
