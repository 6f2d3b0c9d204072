"""The sweep controller: runs agent/decisions.py's verdicts inside the store's per-sweep transaction.

Agents hold no state of their own beyond their current lease, so run_cap, metric.target and
hyperband are enforced here, once, for every agent on every machine. Each operation is one
transaction, retried as a whole while the store is briefly unavailable (store/retry.py), and
given up with `StoreUnreachable` after `deadline` seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from agent import decisions
from store.errors import StoreError
from store.protocol import Lease, Store
from store.records import BROKEN_STATES, RunRecord, SweepRecord
from store.retry import retrying
from store.sql import Transaction

DEFAULT_MAX_FAILURES = 3
DEFAULT_STORE_DEADLINE_S = 300.0  # a store unreachable this long makes the agent checkpoint and exit
CANCELLED = "cancelled by `sweep stop --cancel`"
T = TypeVar("T")


class Claim(BaseModel):
    """A run handed to one agent: train `config`, writing this attempt's artifacts to `attempt_dir`."""

    lease: Lease
    config: dict[str, Any]
    run_dir: str  # the run's folder on this machine
    attempt_dir: str  # this attempt's own folder inside it: checkpoints, log, traceback
    resume_from: list[str] = []  # checkpoints to resume from, newest first (the store's, never a file found on disk)
    resumed_from_epoch: int = 0


class Idle(BaseModel):
    """No run now. `done`: none will come (the agent exits); else ask again after `retry_after` seconds."""

    done: bool
    reason: str
    retry_after: float = 0.0
    complete: bool = True  # with done: False when runs lack a result after every retry


class Controller:
    def __init__(self, store: Store, max_failures: int = DEFAULT_MAX_FAILURES,
                 deadline: float = DEFAULT_STORE_DEADLINE_S) -> None:
        self.store, self.max_failures, self.deadline = store, max_failures, deadline

    def _locked(self, sweep_id: str, operation: Callable[[Transaction], T]) -> T:
        def attempt() -> T:
            with self.store.transaction(sweep_id) as tx:
                return operation(tx)

        return retrying(attempt, self.deadline, self.store.url)

    @staticmethod
    def _local(tx: Transaction, doing: str) -> None:
        if tx.sweep.backend != "local":
            raise StoreError(f"sweep '{tx.sweep.id}' runs on W&B's controller; {doing}")

    # -- claiming ---------------------------------------------------------------------------------

    def claim(self, sweep_id: str, owner: str, lease_seconds: float) -> Claim | Idle:
        """Hand `owner` the next run, or say why there is none."""

        def decide(tx: Transaction) -> Claim | Idle:
            self._local(tx, f"use `sweep agent {sweep_id}` with its W&B path")
            tx.reap_expired()
            runs = tx.runs(with_history=decisions.needs_history(tx.sweep))
            decision = decisions.next_claim(tx.sweep, runs, self.max_failures, tx.now)
            if isinstance(decision, decisions.Resume):
                return self._lease(tx, next(r for r in runs if r.id == decision.run_id), owner, lease_seconds)
            if isinstance(decision, decisions.New):
                return self._lease(tx, tx.insert_run(decision.config), owner, lease_seconds)
            if isinstance(decision, decisions.Wait):
                return Idle(done=False, retry_after=decision.seconds, reason=decision.reason)
            if decision.complete and tx.sweep.state == "running":
                tx.set_state("finished", decision.reason)
                return Idle(done=True, reason=f"sweep finished: {decision.reason}")
            return Idle(done=True, reason=decision.reason, complete=decision.complete)

        return self._locked(sweep_id, decide)

    def _lease(self, tx: Transaction, run: RunRecord, owner: str, seconds: float) -> Claim:
        lease = tx.take_lease(run.id, owner, seconds)
        run_dir = self.store.run_path(run)
        return Claim(lease=lease, config=run.config, run_dir=str(run_dir),
                     attempt_dir=str(run_dir / f"attempt-{lease.attempt}"),
                     resume_from=self.resume_candidates(run), resumed_from_epoch=run.epochs_done)

    def resume_candidates(self, run: RunRecord) -> list[str]:
        paths = [str(self.store.resolve(p)) for p in (run.checkpoint, run.previous_checkpoint) if p]
        legacy = self.store.run_path(run) / "checkpoint.pt"  # stores of version 1 kept one checkpoint per run
        return paths or ([str(legacy)] if legacy.is_file() else [])

    # -- while a run trains --------------------------------------------------------------------

    def heartbeat(self, lease: Lease) -> str | None:
        """Renew the lease; returns why the controller wants the run stopped, if it does."""
        return self.store.heartbeat(lease)

    def report_epoch(self, lease: Lease, metrics: dict[str, Any], checkpoint: Path | None = None) -> str | None:
        """Record one epoch (and the checkpoint it wrote), then apply metric.target and hyperband;
        returns a reason to stop this run, if there is one."""
        recorded = self.relative(checkpoint) if checkpoint is not None else None

        def record(tx: Transaction) -> str | None:
            tx.add_epoch(lease, metrics, recorded)
            reached = decisions.target_reached(tx.sweep, lease.run_id, metrics)
            if reached:
                tx.set_state("finished", reached)
            if "early_terminate" in tx.sweep.config:
                for run_id, reason in decisions.runs_to_stop(tx.sweep, tx.runs(with_history=True), self.max_failures):
                    tx.request_stop(run_id, reason)
            return tx.run(lease.run_id).stop_requested

        return self._locked(lease.sweep_id, record)

    def relative(self, path: Path) -> str:
        """A path under the artifact root as the store records it (machines may mount the root elsewhere)."""
        path = Path(path).resolve()
        root = self.store.artifacts.resolve()
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)

    def note(self, lease: Lease, text: str) -> None:
        self._locked(lease.sweep_id, lambda tx: (tx.check_lease(lease), tx.note(lease.run_id, text)))

    # -- the end of an attempt -----------------------------------------------------------------

    def finish(self, lease: Lease, result: dict[str, Any]) -> None:
        """Store a TrainResult (as a JSON-ready dict): history fills any unreported epoch, the rest is the summary."""
        summary = self._summary(result)
        self._locked(lease.sweep_id, lambda tx: tx.end_attempt(
            lease, "finished", detail=result.get("stop_reason"), summary=summary, history=result.get("history", [])))

    def fail(self, lease: Lease, reason: str, retryable: bool = True) -> None:
        """`retryable=False`: the failure is the configuration's result (it would repeat), not the box's fault."""
        self._locked(lease.sweep_id, lambda tx: tx.end_attempt(lease, "failed", detail=reason, failed=True,
                                                               retryable=retryable))

    def preempt(self, lease: Lease, reason: str, checkpoint: Path | None = None) -> None:
        recorded = self.relative(checkpoint) if checkpoint is not None else None
        self._locked(lease.sweep_id, lambda tx: tx.end_attempt(lease, "preempted", detail=reason,
                                                               checkpoint=recorded))

    def kill(self, lease: Lease, reason: str, result: dict[str, Any] | None = None) -> None:
        summary = self._summary(result) if result else None
        self._locked(lease.sweep_id, lambda tx: tx.end_attempt(lease, "killed", detail=reason, summary=summary))

    def _summary(self, result: dict[str, Any]) -> dict[str, Any]:
        """A result without its history, its checkpoint named the way the run's row names it."""
        summary = {k: v for k, v in result.items() if k != "history"}
        if summary.get("checkpoint"):
            summary["checkpoint"] = self.relative(Path(summary["checkpoint"]))
        return summary

    # -- the whole sweep ----------------------------------------------------------------------------

    def reap(self, sweep_id: str) -> list[str]:
        """Runs of dead agents become crashed now, so a status read shows them as they are."""
        return self._locked(sweep_id, lambda tx: tx.reap_expired() if tx.sweep.backend == "local" else [])

    def stop_sweep(self, sweep_id: str, cancel: bool = False) -> SweepRecord:
        """No new runs; with `cancel`, running runs are also asked to stop (they end as killed)."""

        def stop(tx: Transaction) -> SweepRecord:
            self._local(tx, f"stop it there (`wandb sweep --stop {sweep_id}`)")
            if tx.sweep.state == "running":
                tx.set_state("stopped", "stopped by `sweep stop`")
            if cancel:
                for run in tx.runs(with_history=False):
                    if run.state == "running":
                        tx.request_stop(run.id, CANCELLED)
            return tx.sweep

        return self._locked(sweep_id, stop)

    def resume_sweep(self, sweep_id: str) -> SweepRecord:
        """Undo `sweep stop`: agents claim runs again (preempted runs resume first)."""

        def resume(tx: Transaction) -> SweepRecord:
            self._local(tx, "resume it there")
            if tx.sweep.state == "stopped":
                tx.set_state("running", None)
            elif tx.sweep.state == "finished":
                raise StoreError(f"sweep '{sweep_id}' is finished ({tx.sweep.state_reason}), not stopped; "
                                 "`sweep retry` offers its failed and crashed runs again")
            return tx.sweep

        return self._locked(sweep_id, resume)

    def retry(self, sweep_id: str) -> list[str]:
        """Offer every crashed and failed run again, resuming from its checkpoint, with a fresh retry count."""

        def offer(tx: Transaction) -> list[str]:
            self._local(tx, "retry its runs there")
            broken = [r.id for r in tx.runs(with_history=False) if r.state in BROKEN_STATES]
            tx.offer_again(broken, "offered again by `sweep retry`")
            if broken and tx.sweep.state == "finished":
                tx.set_state("running", None)
            return broken

        return self._locked(sweep_id, offer)
