"""The agent loop: claim a run, train it under a heartbeat-renewed lease, record the outcome, repeat.

A run that raises is marked failed with its reason and the agent moves on; after
`max_consecutive_failures` faults of the box in a row the agent stops itself (a broken box must
not drain the queue, W&B #5088). A diverging loss is the configuration's result, not a fault: it
is recorded once and never retried. SIGTERM/SIGINT set `StopFlag`: the training function saves a
checkpoint at the next step, the run is marked preempted, and any agent resumes it.

Store faults: a transient one is retried inside the controller; a store that stays unreachable,
vanishes or refuses writes (full disk, read-only) stops the run at its next step with a checkpoint
and ends the agent with `AgentStopped`, one line, non-zero exit. Nothing is reported as done that isn't.
"""

from __future__ import annotations

import errno
import importlib
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TextIO

from pydantic import BaseModel, Field

from agent import decisions
from agent.controller import CANCELLED, Claim, Controller, Idle
from agent.defaults import DEFAULT_LEASE_S, DEFAULT_MAX_CONSECUTIVE_FAILURES, TRAIN_FN_ENV
from agent.wandb_run import WandbRun
from store.errors import LeaseLost, StoreError, StoreUnavailable
from store.protocol import Lease

MAX_REASON_CHARS = 500
LOST = "the lease expired; another agent owns this run now"
LOG_NAME, TRACEBACK_NAME = "log.txt", "traceback.txt"


class AgentStopped(Exception):
    """The agent gave up: too many consecutive runs failed on this box, or the store failed it."""


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
    """What one agent did; the load benchmarks aggregate these."""

    agent_id: str
    outcomes: dict[str, int] = {}
    claim_seconds: list[float] = []  # wall time of each claim transaction, waits for the lock included
    idle_seconds: list[float] = []  # from one run's last write to the next run's first training step
    drain_wait_seconds: float = 0.0  # waiting at the end for other agents' runs
    stopped_because: str | None = None
    complete: bool = True  # False when the sweep ended with runs that have no result


class RunBudget:
    """When an agent stops taking runs: after a signal, after `count` runs, or after N faults in a row.
    Shared by the local agent and the W&B agent loop."""

    def __init__(self, count: int | None, max_consecutive_failures: int, stop: StopFlag) -> None:
        self.count, self.limit, self.stop = count, max_consecutive_failures, stop
        self.trained = self.consecutive_faults = 0

    def more(self) -> bool:
        return not self.stop.is_set() and (self.count is None or self.trained < self.count)

    def record(self, fault: bool, detail: str | None) -> str | None:
        """Count one run; returns why the agent must stop itself, if it must."""
        self.trained += 1
        self.consecutive_faults = self.consecutive_faults + 1 if fault else 0
        if self.consecutive_faults >= self.limit:
            return f"{self.consecutive_faults} consecutive runs failed on this agent (last: {detail})"
        return None


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
    """Renews the lease while the run trains; notices a lost lease, a controller's stop request, or a
    store that stayed unreachable past the deadline."""

    def __init__(self, controller: Controller, lease: Lease) -> None:
        super().__init__(daemon=True, name=f"lease-{lease.run_id}")
        self.controller, self.lease = controller, lease
        self.interval = lease.seconds / 4  # three missed beats before the lease can expire
        self.finished = threading.Event()
        self.lost = False
        self.stop_requested: str | None = None
        self.fatal: StoreError | None = None  # the store failed this agent: stop the run and exit

    def run(self) -> None:
        last_beat = time.monotonic()
        try:
            while not self.finished.wait(self.interval):
                try:
                    self.stop_requested = self.controller.store.heartbeat(self.lease) or self.stop_requested
                    last_beat = time.monotonic()
                except LeaseLost:
                    self.lost = True
                    return
                except StoreUnavailable as error:  # the next beat tries again, well inside the lease
                    if time.monotonic() - last_beat > self.controller.deadline:
                        self.fatal = error
                        return
                except StoreError as error:
                    self.fatal = error
                    return
        finally:
            self.controller.store.close()

    def end(self) -> None:
        self.finished.set()
        self.join()


class Hooks:
    """What `train()` calls back: progress, each epoch's end, and whether to stop now."""

    def __init__(self, agent: Agent, claim: Claim, keeper: LeaseKeeper, wandb_run: WandbRun | None) -> None:
        self.agent, self.claim, self.keeper, self.wandb_run = agent, claim, keeper, wandb_run
        self.stop_reason: str | None = None  # the controller's reason to stop this run at an epoch's end
        self.last_checkpoint: Path | None = None

    def on_step(self, step: int, total: int) -> None:
        pass

    def on_epoch(self, event: Any) -> None:
        event.metrics.check_finite()  # also for a custom --train-fn that does not check itself
        metrics = event.metrics.model_dump()
        checkpoint = getattr(event, "checkpoint", None)
        lease = self.claim.lease
        try:
            reason = self.agent.controller.report_epoch(lease, metrics, checkpoint)
        except LeaseLost:
            self.keeper.lost = True
            raise
        except StoreError as error:  # unreachable past the deadline, gone, full, read-only
            self.keeper.fatal = error
            event.stop(f"store failed: {error}")
            return
        if checkpoint is not None:  # only now that the store points at the newer one
            keep = {Path(checkpoint)} | ({self.last_checkpoint} if self.last_checkpoint else set())
            keep |= {Path(p) for p in self.claim.resume_from[:1]} if self.last_checkpoint is None else set()
            prune_checkpoints(Path(self.claim.run_dir), keep)
            self.last_checkpoint = Path(checkpoint)
        if self.wandb_run is not None:
            self.wandb_run.log_epoch(metrics)
        self.agent.events.epoch(lease.run_id, metrics, event.epochs)
        reason = reason or self.keeper.stop_requested
        if self.agent.stop.is_set():
            reason = self.agent.stop.reason
        if reason:
            self.stop_reason = self.stop_reason or reason
            event.stop(reason)

    def should_stop(self) -> bool:
        if self.keeper.lost:  # raise rather than stop: nothing this attempt writes counts now
            raise LeaseLost(LOST)
        return (self.agent.stop.is_set() or self.keeper.stop_requested == CANCELLED
                or self.keeper.fatal is not None)


class Agent:
    def __init__(self, controller: Controller, options: AgentOptions, train_fn: TrainFn, events: Events,
                 stop: StopFlag, data: Any = None) -> None:
        self.controller, self.options, self.train_fn = controller, options, train_fn
        self.events, self.stop, self.data = events, stop, data
        self.report = AgentReport(agent_id=options.agent_id)

    def run(self) -> AgentReport:
        """Train runs until the sweep has none left, `count` is reached, a signal arrives, or too many fail."""
        budget = RunBudget(self.options.count, self.options.max_consecutive_failures, self.stop)
        last_run_ended: float | None = None
        sweep = self.controller.store.get_sweep(self.options.sweep_id)
        decisions.prepare(sweep)  # so that the first claim's latency is the transaction's
        while budget.more():
            started = time.perf_counter()
            claim = self.controller.claim(self.options.sweep_id, self.options.agent_id, self.options.lease_seconds)
            self.report.claim_seconds.append(time.perf_counter() - started)
            if isinstance(claim, Idle):
                self.events.idle(claim)
                if claim.done:
                    self.report.stopped_because, self.report.complete = claim.reason, claim.complete
                    break
                self.stop.wait(claim.retry_after)
                self.report.drain_wait_seconds += time.perf_counter() - started
                continue
            state, detail, fault, fatal = self._train(claim, sweep.config, last_run_ended)
            last_run_ended = time.perf_counter()
            self.report.outcomes[state] = self.report.outcomes.get(state, 0) + 1
            self.events.ended(claim.lease.run_id, state, detail)
            if fatal is not None:
                self.report.stopped_because = str(fatal)
                raise AgentStopped(f"agent {self.options.agent_id} stopped: {fatal}")
            give_up = budget.record(fault, detail)
            if give_up:
                self.report.stopped_because = give_up
                raise AgentStopped(f"agent {self.options.agent_id} stopped itself: {give_up}")
        if self.stop.is_set():
            self.report.stopped_because = self.stop.reason
        return self.report

    def _train(self, claim: Claim, sweep_config: dict[str, Any],
               last_run_ended: float | None) -> tuple[str, str | None, bool, Exception | None]:
        """One attempt at one run: (state it was left in, why, a fault of the box?, what stops the agent)."""
        from train import TrainConfig

        lease = claim.lease
        attempt_dir = Path(claim.attempt_dir)
        self.events.claimed(claim)
        keeper = LeaseKeeper(self.controller, lease)
        keeper.start()
        wandb_run: WandbRun | None = None
        hooks: Hooks | None = None
        error: Exception | None = None
        result: Any = None
        with attempt_log(attempt_dir):
            try:
                config = TrainConfig.resolve(claim.config)
                wandb_run = self._start_wandb(claim, sweep_config)
                hooks = Hooks(self, claim, keeper, wandb_run)
                if last_run_ended is not None:
                    self.report.idle_seconds.append(time.perf_counter() - last_run_ended)
                result = self.train_fn(config, hooks, data=self.data, run_dir=attempt_dir,
                                       resume_from=[Path(p) for p in claim.resume_from], device=self.options.device)
            except Exception as raised:  # any failure of one run is that run's, not the agent's
                error = raised
                if not isinstance(raised, LeaseLost):
                    write_traceback(attempt_dir / TRACEBACK_NAME)
        keeper.end()
        if keeper.lost or isinstance(error, LeaseLost):  # nothing to write: the run is another agent's now
            return self._end(lambda: None, wandb_run, "lost", None, LOST) + (False, None)
        if keeper.fatal is not None:
            return self._release(lease, wandb_run, keeper.fatal, result)
        if error is not None:
            return self._failed(lease, wandb_run, error)
        result_dict = result.model_dump(mode="json")
        for note in getattr(result, "resume_notes", None) or []:
            self._quietly(lambda n=note: self.controller.note(lease, n))
        checkpoint = Path(result.checkpoint) if getattr(result, "checkpoint", None) else None
        if result.status == "stopped" and self.stop.is_set():
            reason = f"preempted: {self.stop.reason}"
            return self._end(lambda: self.controller.preempt(lease, reason, checkpoint), wandb_run, "preempted",
                             None, reason) + (False, None)
        if result.status == "stopped" and keeper.stop_requested == CANCELLED:
            return self._end(lambda: self.controller.kill(lease, CANCELLED, result_dict), wandb_run, "killed",
                             result_dict, CANCELLED) + (False, None)
        reason = hooks.stop_reason if hooks is not None and result.status == "stopped" else None
        return self._end(lambda: self.controller.finish(lease, result_dict), wandb_run, "finished", result_dict,
                         reason) + (False, None)

    def _failed(self, lease: Lease, wandb_run: WandbRun | None,
                error: Exception) -> tuple[str, str | None, bool, Exception | None]:
        from train.config import ConfigError

        reason = one_line_reason(error)
        if isinstance(error, ConfigError):  # a draw outside the key's range (a normal's tail): the draw's result
            reason = f"invalid draw: {error}"[:MAX_REASON_CHARS]
        if isinstance(error, (FloatingPointError, ConfigError)):  # a retry repeats it: a result, not a fault
            return self._end(lambda: self.controller.fail(lease, reason, retryable=False), wandb_run, "failed",
                             None, reason) + (False, None)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            # Not the run's fault: it resumes from its last good checkpoint once there is room.
            stopped = f"stopped: no space left on device ({reason})"
            state = self._end(lambda: self.controller.preempt(lease, stopped), wandb_run, "preempted", None, stopped)
            return state + (False, StoreError(f"{stopped}; free some space, then run `sweep agent` again"))
        return self._end(lambda: self.controller.fail(lease, reason), wandb_run, "failed", None, reason) + (True, None)

    def _release(self, lease: Lease, wandb_run: WandbRun | None, fatal: StoreError,
                 result: Any) -> tuple[str, str | None, bool, Exception | None]:
        """The store failed this agent mid-run: hand the run back if the store still listens, then stop."""
        checkpoint = Path(result.checkpoint) if getattr(result, "checkpoint", None) else None
        reason = f"preempted: the store failed this agent ({fatal})"
        self.controller.deadline = min(self.controller.deadline, 5.0)
        self._quietly(lambda: self.controller.preempt(lease, reason, checkpoint))
        if wandb_run is not None:
            wandb_run.finish("preempted", None, reason)
        return "preempted", reason, False, fatal

    @staticmethod
    def _quietly(write: Callable[[], None]) -> None:
        try:
            write()
        except StoreError:
            pass  # the lease expires and the run is offered again: nothing is lost

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


class _Tee:
    """A stream that also copies what is written to the attempt's log file."""

    def __init__(self, stream: TextIO, log: TextIO) -> None:
        self.stream, self.log = stream, log

    def write(self, text: str) -> int:
        try:
            self.log.write(text)
        except (OSError, ValueError):
            pass  # a full disk must not break the run's own output
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()
        try:
            self.log.flush()
        except (OSError, ValueError):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class attempt_log:
    """stdout and stderr of one attempt, also kept in `<attempt folder>/log.txt`."""

    def __init__(self, attempt_dir: Path) -> None:
        self.path = attempt_dir / LOG_NAME

    def __enter__(self) -> attempt_log:
        self.saved = sys.stdout, sys.stderr
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.log: TextIO | None = self.path.open("a", buffering=1)
        except OSError:
            self.log = None
            return self
        sys.stdout, sys.stderr = _Tee(sys.stdout, self.log), _Tee(sys.stderr, self.log)
        return self

    def __exit__(self, *exc: Any) -> None:
        sys.stdout, sys.stderr = self.saved
        if self.log is not None:
            try:
                self.log.close()
            except OSError:
                pass


def prune_checkpoints(run_dir: Path, keep: set[Path]) -> None:
    """Delete the run's checkpoints (any attempt's) except `keep`: the store's current one and its fallback."""
    kept = {path.resolve() for path in keep}
    for path in run_dir.glob("attempt-*/checkpoint-*"):
        if path.resolve() not in kept:
            path.unlink(missing_ok=True)


def write_traceback(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(traceback.format_exc())
    except OSError:
        pass


def one_line_reason(error: BaseException) -> str:
    text = " ".join(str(error).split()) or "no message"
    return f"{type(error).__name__}: {text}"[:MAX_REASON_CHARS]
