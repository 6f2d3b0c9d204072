"""The agent loop: claim a run, train it under a heartbeat-renewed lease, record the outcome, repeat.

A run that raises is marked failed with its reason and the agent moves on; after
`max_consecutive_failures` failures in a row the agent stops itself (a broken
box must not drain the queue, W&B #5088). SIGTERM/SIGINT set `StopFlag`: the
training function saves a checkpoint at the next step, the run is marked
preempted, and any agent resumes it.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel, Field

from agent.controller import CANCELLED, Claim, Controller, Idle
from agent.defaults import DEFAULT_LEASE_S, DEFAULT_MAX_CONSECUTIVE_FAILURES, TRAIN_FN_ENV
from agent.engine import sweep_engine
from store.sqlite import Lease, LeaseLost
from agent.wandb_run import WandbRun

MAX_REASON_CHARS = 500
LOST = "the lease expired; another agent owns this run now"


class AgentStopped(Exception):
    """The agent gave up: too many consecutive runs failed on this box."""


class TrainFnError(ValueError):
    """--train-fn / $SWEEP_TRAIN_FN names nothing importable."""


class TrainFn(Protocol):
    """`train.train`'s signature; a replacement (tests, benchmarks) may set `needs_data = False`."""

    def __call__(self, config: Any, hooks: Any = None, *, data: Any = None, run_dir: Any = None,
                 resume_from: Any = None, device: Any = None) -> Any: ...


class AgentOptions(BaseModel):
    sweep_id: str
    agent_id: str = Field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    count: int | None = Field(None, ge=1, description="runs to train before exiting; None: until the sweep ends")
    lease_seconds: float = Field(DEFAULT_LEASE_S, gt=0)
    max_consecutive_failures: int = Field(DEFAULT_MAX_CONSECUTIVE_FAILURES, ge=1)
    device: str | None = None


class AgentReport(BaseModel):
    """What one agent did; the load benchmark aggregates these."""

    agent_id: str
    outcomes: dict[str, int] = {}
    claim_seconds: list[float] = []  # wall time of each claim transaction, waits for the lock included
    idle_seconds: list[float] = []  # from one run's last write to the next run's first training step
    drain_wait_seconds: float = 0.0  # waiting at the end for other agents' runs
    stopped_because: str | None = None


class StopFlag:
    """Set by a signal handler; read by the training loop between steps."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason: str | None = None

    def set(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    def wait(self, seconds: float) -> bool:
        return self.event.wait(seconds)


def install_signal_handlers(stop: StopFlag) -> Callable[[], None]:
    """SIGTERM and SIGINT set `stop`; returns a function putting the previous handlers back."""

    def handler(signum: int, _frame: Any) -> None:
        stop.set(f"agent received {signal.Signals(signum).name}")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for signum, old in previous.items():
            signal.signal(signum, old)

    return restore


def load_train_fn(spec: str | None = None) -> TrainFn:
    """`package.module:function`, else $SWEEP_TRAIN_FN, else the real `train.train`."""
    spec = spec or os.environ.get(TRAIN_FN_ENV)
    if not spec:
        from train import train

        return train
    module_name, _, attribute = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute or "train")
    except (ImportError, AttributeError) as error:
        raise TrainFnError(f"--train-fn {spec!r}: cannot be imported ({error})") from None


class Events(Protocol):
    """What the agent tells its display."""

    def claimed(self, claim: Claim) -> None: ...
    def epoch(self, run_id: str, metrics: dict[str, Any], epochs: int) -> None: ...
    def ended(self, run_id: str, state: str, detail: str | None) -> None: ...
    def idle(self, idle: Idle) -> None: ...


class LeaseKeeper(threading.Thread):
    """Renews the lease while the run trains; notices a lost lease or a controller's stop request."""

    def __init__(self, controller: Controller, lease: Lease) -> None:
        super().__init__(daemon=True, name=f"lease-{lease.run_id}")
        self.controller, self.lease = controller, lease
        self.interval = lease.seconds / 4  # three missed beats before the lease can expire
        self.finished = threading.Event()
        self.lost = False
        self.stop_requested: str | None = None

    def run(self) -> None:
        try:
            while not self.finished.wait(self.interval):
                try:
                    self.stop_requested = self.controller.heartbeat(self.lease) or self.stop_requested
                except LeaseLost:
                    self.lost = True
                    return
                except sqlite3.Error:
                    continue  # busy or briefly unavailable: the next beat tries again, well inside the lease
        finally:
            self.controller.store.close()

    def end(self) -> None:
        self.finished.set()
        self.join()


class Agent:
    def __init__(self, controller: Controller, options: AgentOptions, train_fn: TrainFn, events: Events,
                 stop: StopFlag, data: Any = None) -> None:
        self.controller, self.options, self.train_fn = controller, options, train_fn
        self.events, self.stop, self.data = events, stop, data
        self.report = AgentReport(agent_id=options.agent_id)

    def run(self) -> AgentReport:
        """Train runs until the sweep has none left, `count` is reached, a signal arrives, or too many fail."""
        consecutive_failures, trained = 0, 0
        last_run_ended: float | None = None
        sweep = self.controller.store.get_sweep(self.options.sweep_id)
        sweep_engine()  # imported now, so the first claim's latency is the transaction's
        while not self.stop.is_set() and (self.options.count is None or trained < self.options.count):
            started = time.perf_counter()
            claim = self.controller.claim(self.options.sweep_id, self.options.agent_id, self.options.lease_seconds)
            self.report.claim_seconds.append(time.perf_counter() - started)
            if isinstance(claim, Idle):
                self.events.idle(claim)
                if claim.done:
                    self.report.stopped_because = claim.reason
                    break
                self.stop.wait(claim.retry_after)
                self.report.drain_wait_seconds += time.perf_counter() - started
                continue
            trained += 1
            state, detail = self._train(claim, sweep.config, last_run_ended)
            last_run_ended = time.perf_counter()
            self.report.outcomes[state] = self.report.outcomes.get(state, 0) + 1
            self.events.ended(claim.lease.run_id, state, detail)
            consecutive_failures = consecutive_failures + 1 if state == "failed" else 0
            if consecutive_failures >= self.options.max_consecutive_failures:
                self.report.stopped_because = (f"{consecutive_failures} consecutive runs failed on this agent "
                                               f"(last: {detail})")
                raise AgentStopped(f"agent {self.options.agent_id} stopped itself: {self.report.stopped_because}")
        if self.stop.is_set():
            self.report.stopped_because = self.stop.reason
        return self.report

    def _train(self, claim: Claim, sweep_config: dict[str, Any],
               last_run_ended: float | None) -> tuple[str, str | None]:
        """One attempt at one run; returns the state it was left in and why."""
        from train import TrainConfig, TrainHooks, list_checkpoints, prune_checkpoints

        lease = claim.lease
        self.events.claimed(claim)
        keeper = LeaseKeeper(self.controller, lease)
        keeper.start()
        wandb_run: WandbRun | None = None
        epoch_stop: list[str] = []  # the controller's reason to stop this run at an epoch's end

        def report_epoch(event: Any) -> None:
            event.metrics.check_finite()  # also for a custom --train-fn that does not check itself
            metrics = event.metrics.model_dump()
            try:
                reason = self.controller.report_epoch(lease, metrics)
                if event.checkpoint is not None:  # the store took the epoch: only the newest two are needed
                    prune_checkpoints(event.checkpoint.parent, keep=list_checkpoints(event.checkpoint.parent)[:2])
            except LeaseLost:
                keeper.lost = True
                reason = "lease lost"
            if wandb_run is not None:
                wandb_run.log_epoch(metrics)
            self.events.epoch(lease.run_id, metrics, event.epochs)
            reason = reason or keeper.stop_requested
            if self.stop.is_set():
                reason = self.stop.reason
            if reason:
                epoch_stop.append(reason)
                event.stop(reason)

        def should_stop() -> bool:
            if keeper.lost:  # raise rather than stop: a stopping run checkpoints, and the folder is not ours now
                raise LeaseLost(LOST)
            return self.stop.is_set() or keeper.stop_requested == CANCELLED

        class Hooks(TrainHooks):
            def on_epoch(self, event: Any) -> None:
                report_epoch(event)

            def should_stop(self) -> bool:
                return should_stop()

        error: Exception | None = None
        try:
            config = TrainConfig.resolve(claim.config)
            wandb_run = self._start_wandb(claim, sweep_config)
            if last_run_ended is not None:
                self.report.idle_seconds.append(time.perf_counter() - last_run_ended)
            result = self.train_fn(config, Hooks(), data=self.data, run_dir=claim.run_dir,
                                   device=self.options.device)
        except Exception as raised:  # any failure of one run is that run's, not the agent's
            error = raised
        keeper.end()
        if keeper.lost:  # nothing to write: the run is another agent's now
            return self._end(lambda: None, wandb_run, "lost", None, LOST)
        if error is not None:
            reason = one_line_reason(error)
            return self._end(lambda: self.controller.fail(lease, reason), wandb_run, "failed", None, reason)
        result_dict = result.model_dump(mode="json")
        if result.status == "stopped" and self.stop.is_set():
            reason = f"preempted: {self.stop.reason}"
            return self._end(lambda: self.controller.preempt(lease, reason), wandb_run, "preempted", None, reason)
        if result.status == "stopped" and keeper.stop_requested == CANCELLED:
            return self._end(lambda: self.controller.kill(lease, CANCELLED), wandb_run, "killed", result_dict,
                             CANCELLED)
        reason = epoch_stop[0] if result.status == "stopped" and epoch_stop else None
        return self._end(lambda: self.controller.finish(lease, result_dict), wandb_run, "finished", result_dict,
                         reason)

    def _end(self, write: Callable[[], None], wandb_run: WandbRun | None, state: str,
             result: dict[str, Any] | None, reason: str | None) -> tuple[str, str | None]:
        try:
            write()
        except LeaseLost:
            state, reason = "lost", LOST
        if wandb_run is not None:
            wandb_run.finish(state, result, reason)
        return state, reason

    def _start_wandb(self, claim: Claim, sweep_config: dict[str, Any]) -> WandbRun | None:
        if os.environ.get("WANDB_MODE") == "disabled":
            return None
        return WandbRun.start(run_id=claim.lease.run_id, sweep_id=claim.lease.sweep_id, config=claim.config,
                              run_dir=claim.run_dir, project=sweep_config.get("project"),
                              entity=sweep_config.get("entity"))


def one_line_reason(error: BaseException) -> str:
    text = " ".join(str(error).split()) or "no message"
    return f"{type(error).__name__}: {text}"[:MAX_REASON_CHARS]
