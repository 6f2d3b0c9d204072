"""The sweep controller: decides which run an agent trains next and when runs stop.

Same shape as W&B's engine, which it calls: read the sweep's runs, ask
`sweeps.next_run` / `sweeps.stop_runs`, write the decision, all in one store
transaction. Agents hold no state of their own beyond their current lease, so
run_cap, metric.target and hyperband are enforced here, once, for every agent.

Retries (documented in docs/orchestration.md):
- preempted (the agent was asked to stop): always resumed, first, from its checkpoint;
- crashed (the agent vanished; its lease expired) and failed (training raised):
  offered again, resuming from the checkpoint, until the run has failed
  `max_failures` times; crashed runs go before new configs, failed ones after
  them, so a box that breaks every run does not stall the queue (W&B #5088).
One row per configuration, retried in place: a grid point never gets a second row.
"""

from __future__ import annotations

import math
import sqlite3
import time
import warnings
from typing import Any

from pydantic import BaseModel

from agent.engine import sweep_engine
from store.records import RunRecord, SweepRecord
from store.sqlite import Lease, LocalStore, StoreError
from agent.sweep_config import run_values

DEFAULT_MAX_FAILURES = 3
CANCELLED = "cancelled by `sweep stop --cancel`"
MAX_WAIT_S = 2.0  # an idle agent asks again at least this often


class Claim(BaseModel):
    """A run handed to one agent: train `config`, writing artifacts to `run_dir`."""

    lease: Lease
    config: dict[str, Any]
    run_dir: str
    resumed_from_epoch: int = 0


class Idle(BaseModel):
    """No run now. `done`: none will come (the agent exits); else ask again after `retry_after` seconds."""

    done: bool
    reason: str
    retry_after: float = 0.0


class Controller:
    def __init__(self, store: LocalStore, max_failures: int = DEFAULT_MAX_FAILURES) -> None:
        self.store = store
        self.max_failures = max_failures

    # -- claiming ---------------------------------------------------------------------------------

    def claim(self, sweep_id: str, owner: str, lease_seconds: float) -> Claim | Idle:
        """Hand `owner` the next run, or say why there is none: one short write transaction."""
        with self.store.write() as conn:
            sweep = self.store.sweep_row(conn, sweep_id)
            if sweep.backend != "local":
                raise StoreError(f"sweep '{sweep_id}' runs on W&B's controller; use `sweep agent {sweep_id}`")
            self.store.reap_expired(conn, sweep_id)
            if sweep.state != "running":
                reason = self.store.state_reason(conn, sweep_id)
                return Idle(done=True, reason=f"sweep {sweep.state}" + (f": {reason}" if reason else ""))
            runs = self.store.runs_in(conn, sweep_id, with_history=self._needs_history(sweep))
            failures = self._failures(conn, sweep_id)

            resumable = [r for r in runs if r.state == "preempted" or
                         (r.state == "crashed" and failures[r.id] < self.max_failures)]
            if resumable:
                return self._lease(conn, resumable[0], owner, lease_seconds)

            config, exhausted = self._next_config(sweep, runs, failures)
            if config is not None:
                run_id = self.store.insert_run(conn, sweep_id, config)
                return self._lease(conn, self.store.run_in(conn, run_id), owner, lease_seconds)

            retries = [r for r in runs if r.state == "failed" and failures[r.id] < self.max_failures]
            if retries:
                return self._lease(conn, retries[0], owner, lease_seconds)

            running = [r for r in runs if r.state == "running"]
            if running:
                expiries = [row[0] for row in conn.execute(
                    "SELECT lease_expires_at FROM runs WHERE sweep_id = ? AND state = 'running'", (sweep_id,))]
                wait = min(max(min(expiries) - time.time(), 0.2), MAX_WAIT_S)
                return Idle(done=False, retry_after=wait,
                            reason=f"{exhausted}; waiting for {len(running)} running run(s) that may need a retry")
            self.store.set_sweep_state(conn, sweep_id, "finished", exhausted)
            return Idle(done=True, reason=f"sweep finished: {exhausted}")

    def _lease(self, conn: sqlite3.Connection, run: RunRecord, owner: str, seconds: float) -> Claim:
        lease = self.store.take_lease(conn, run.id, owner, seconds)
        done = conn.execute("SELECT COUNT(*) FROM history WHERE run_id = ?", (run.id,)).fetchone()[0]
        return Claim(lease=lease, config=run.config, run_dir=run.run_dir, resumed_from_epoch=done)

    def _next_config(self, sweep: SweepRecord, runs: list[RunRecord],
                     failures: dict[str, int]) -> tuple[dict[str, Any] | None, str]:
        """A new configuration from W&B's engine, or None and why there is none."""
        run_cap = sweep.config.get("run_cap")
        if run_cap is not None and len(runs) >= run_cap:
            return None, f"run_cap {run_cap} reached"
        engine_runs = [self._engine_run(r, failures[r.id]) for r in runs]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            suggestion = sweep_engine().next_run(sweep.config, engine_runs, validate=False)
        if suggestion is None:
            return None, f"grid exhausted: all {len(runs)} configurations have a run"
        return run_values(suggestion.config), ""

    def _engine_run(self, run: RunRecord, failures: int) -> Any:
        """A store run as W&B's engine sees it. Runs awaiting a retry look pending, not failed,
        so bayes neither imputes a bad score for them nor proposes them again."""
        state = run.state
        if state in ("failed", "crashed") and failures < self.max_failures:
            state = "pending"
        return sweep_engine().SweepRun(name=run.id, state=state, history=run.history,
                                       config={k: {"value": v} for k, v in run.config.items()})

    @staticmethod
    def _needs_history(sweep: SweepRecord) -> bool:
        return sweep.config.get("method") == "bayes" or "early_terminate" in sweep.config

    @staticmethod
    def _failures(conn: sqlite3.Connection, sweep_id: str) -> dict[str, int]:
        return {row[0]: row[1] for row in conn.execute("SELECT id, failures FROM runs WHERE sweep_id = ?",
                                                        (sweep_id,))}

    # -- while a run trains --------------------------------------------------------------------

    def heartbeat(self, lease: Lease) -> str | None:
        """Renew the lease; returns why the controller wants the run stopped, if it does."""
        return self.store.heartbeat(lease)

    def report_epoch(self, lease: Lease, metrics: dict[str, Any]) -> str | None:
        """Record one epoch, then apply metric.target and hyperband; returns a stop reason for this run."""
        with self.store.write() as conn:
            self.store.renew(conn, lease)
            self.store.add_epoch(conn, lease, metrics)
            sweep = self.store.sweep_row(conn, lease.sweep_id)
            self._check_target(conn, sweep, lease, metrics)
            if "early_terminate" in sweep.config:
                self._early_terminate(conn, sweep)
            return conn.execute("SELECT stop_requested FROM runs WHERE id = ?", (lease.run_id,)).fetchone()[0]

    def _check_target(self, conn: sqlite3.Connection, sweep: SweepRecord, lease: Lease,
                      metrics: dict[str, Any]) -> None:
        metric = sweep.config.get("metric") or {}
        target, value = metric.get("target"), metrics.get(metric.get("name", ""))
        if target is None or value is None or sweep.state != "running":
            return
        reached = value >= target if metric["goal"] == "maximize" else value <= target
        if reached:
            # W&B's semantics: no new runs; those in flight finish.
            self.store.set_sweep_state(conn, sweep.id, "finished",
                                       f"metric.target {metric['name']}={target} reached by run {lease.run_id}")

    def _early_terminate(self, conn: sqlite3.Connection, sweep: SweepRecord) -> None:
        runs = self.store.runs_in(conn, sweep.id, with_history=True)
        failures = self._failures(conn, sweep.id)
        engine_runs = [self._engine_run(r, failures[r.id]) for r in runs]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            to_stop = sweep_engine().stop_runs(sweep.config, engine_runs, validate=False)
        for run in to_stop:
            epochs = len(run.history)
            self.store.request_stop(conn, run.name, f"hyperband: {sweep.config['metric']['name']} below the "
                                                    f"band threshold after {epochs} epoch(s)")

    # -- the end of an attempt -----------------------------------------------------------------

    def finish(self, lease: Lease, result: dict[str, Any]) -> None:
        """Store a TrainResult (as JSON-ready dict): history fills any unreported epoch, the rest is the summary."""
        with self.store.write() as conn:
            self.store.check_lease(conn, lease)
            self.store.fill_history(conn, lease, result.get("history", []))
            summary = {k: v for k, v in result.items() if k != "history"}
            self.store.end_attempt(conn, lease, "finished", detail=result.get("stop_reason"), summary=summary)

    def fail(self, lease: Lease, reason: str) -> None:
        with self.store.write() as conn:
            self.store.check_lease(conn, lease)
            self.store.end_attempt(conn, lease, "failed", detail=reason, failed=True)

    def preempt(self, lease: Lease, reason: str) -> None:
        with self.store.write() as conn:
            self.store.check_lease(conn, lease)
            self.store.end_attempt(conn, lease, "preempted", detail=reason)

    def kill(self, lease: Lease, reason: str) -> None:
        with self.store.write() as conn:
            self.store.check_lease(conn, lease)
            self.store.end_attempt(conn, lease, "killed", detail=reason)

    # -- the whole sweep ----------------------------------------------------------------------------

    def stop_sweep(self, sweep_id: str, cancel: bool = False) -> SweepRecord:
        """No new runs; with `cancel`, running runs are also asked to stop (they end as killed)."""
        with self.store.write() as conn:
            sweep = self.store.sweep_row(conn, sweep_id)
            if sweep.backend != "local":
                raise StoreError(f"sweep '{sweep_id}' runs on W&B's controller; stop it there "
                                 f"(`wandb sweep --stop {sweep_id}`)")
            if sweep.state == "running":
                self.store.set_sweep_state(conn, sweep_id, "stopped", "stopped by `sweep stop`")
            if cancel:
                for (run_id,) in conn.execute("SELECT id FROM runs WHERE sweep_id = ? AND state = 'running'",
                                              (sweep_id,)).fetchall():
                    self.store.request_stop(conn, run_id, CANCELLED)
            return self.store.sweep_row(conn, sweep_id)


def best_value(history: list[dict[str, Any]], metric: str | None, goal: str | None) -> float | None:
    """A run's best value of the sweep metric so far (finite values only)."""
    if not metric:
        return None
    values = [h[metric] for h in history if isinstance(h.get(metric), (int, float)) and math.isfinite(h[metric])]
    if not values:
        return None
    return max(values) if goal != "minimize" else min(values)
