"""Start agents: one in this process, or one worker process per GPU pinned with CUDA_VISIBLE_DEVICES.

Workers share nothing but the store, which hands each a distinct run (W&B #597:
agents started together on one box must not get the same parameters).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console

from agent.controller import DEFAULT_STORE_DEADLINE_S, Controller
from agent.defaults import DEFAULT_LEASE_S, DEFAULT_MAX_CONSECUTIVE_FAILURES
from agent.json_events import make_display
from store.protocol import Store
from agent.worker import Agent, AgentOptions, AgentReport, StopFlag, TrainFn, install_signal_handlers, load_train_fn


class GpuListError(ValueError):
    pass


class AgentRequest(BaseModel):
    """What `sweep agent` was asked to do; workers started for GPUs get the same, minus the GPUs."""

    sweep_id: str
    count: int | None = None
    gpus: str | None = None
    max_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES
    data_dir: Path | None = None
    home: Path | None = None
    lease_seconds: float = DEFAULT_LEASE_S
    train_fn: str | None = None
    label: str = ""  # set on workers: names their lines and their agent id
    plain: bool = False
    json_lines: bool = False  # `--json`: events as JSON lines (agent/json_events.py)
    store_url: str | None = None
    store_timeout: float = DEFAULT_STORE_DEADLINE_S

    def worker_args(self) -> list[str]:
        args = [self.sweep_id, "--max-failures", str(self.max_failures), "--lease-seconds", str(self.lease_seconds),
                "--store-timeout", str(self.store_timeout)]
        args += ["--count", str(self.count)] if self.count else []
        args += ["--data-dir", str(self.data_dir)] if self.data_dir else []
        args += ["--train-fn", self.train_fn] if self.train_fn else []
        args += ["--json"] if self.json_lines else []
        return args


def parse_gpus(text: str | None) -> list[str] | None:
    """'0,1,3' -> ['0', '1', '3']; None when not given."""
    if text is None:
        return None
    gpus = [part.strip() for part in text.split(",") if part.strip()]
    if not gpus or not all(g.isdigit() for g in gpus):
        raise GpuListError(f"--gpus {text!r}: expected GPU indices separated by commas, e.g. 0,1")
    if len(set(gpus)) != len(gpus):
        raise GpuListError(f"--gpus {text!r}: a GPU is listed twice; each GPU gets one worker")
    return gpus


def visible_gpus() -> list[str]:
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def worker_gpus(request: AgentRequest) -> list[str] | None:
    """GPUs to start one worker process each on; None: train in this process (one GPU, or the CPU)."""
    chosen = parse_gpus(request.gpus)
    if chosen is None and not request.label:
        visible = visible_gpus()
        chosen = visible if len(visible) > 1 else None
    return chosen


def run_agent(request: AgentRequest, store: Store, console: Console) -> AgentReport:
    """One agent in this process, on either backend. Loads the data first: a missing dataset stops it
    before it claims anything."""
    backend = backend_of(request.sweep_id, store)
    train_fn = load_train_fn(request.train_fn)
    data = load_data_once(train_fn, request.data_dir)
    stop = StopFlag()
    restore = install_signal_handlers(stop)
    try:
        if backend == "wandb":
            return _run_wandb(request, store, console, train_fn, data, stop)
        return _run_local(request, store, console, train_fn, data, stop)
    finally:
        restore()
        if "wandb" in sys.modules:
            # As W&B's own agent does at its end: every run's records are on disk when we return.
            sys.modules["wandb"].teardown()


def backend_of(sweep_id: str, store: Store) -> str:
    """entity/project/id is on W&B; anything else must be a sweep in the store (else SweepNotFound)."""
    return "wandb" if "/" in sweep_id else store.get_sweep(sweep_id).backend


def load_data_once(train_fn: TrainFn, data_dir: Path | None) -> Any:
    """Each agent loads CIFAR-10 once and hands it to every run."""
    if not getattr(train_fn, "needs_data", True):
        return None
    from data.cifar import load_cifar10

    return load_cifar10(data_dir)


def _run_local(request: AgentRequest, store: Store, console: Console, train_fn: TrainFn, data: Any,
               stop: StopFlag) -> AgentReport:
    from agent.status import sweep_status

    status = sweep_status(store, request.sweep_id)
    metric = status.metric or {}
    display = make_display(console, metric.get("name"), metric.get("goal"), label=request.label,
                           plain=request.plain, json_lines=request.json_lines)
    display.best = status.best_metric
    host_pid = f"{socket.gethostname()}:{os.getpid()}"
    options = AgentOptions(sweep_id=request.sweep_id, count=request.count, lease_seconds=request.lease_seconds,
                           max_consecutive_failures=request.max_failures,
                           agent_id=f"{request.label}@{host_pid}" if request.label else host_pid)
    agent = Agent(Controller(store, deadline=request.store_timeout), options, train_fn, display, stop, data=data)
    with display:
        return agent.run()


def _run_wandb(request: AgentRequest, store: Store, console: Console, train_fn: TrainFn, data: Any,
               stop: StopFlag) -> AgentReport:
    from agent.wandb_backend import SweepPath, Trial, run_wandb_agent

    display = make_display(console, None, None, label=request.label, plain=request.plain,
                           json_lines=request.json_lines)
    trial = Trial(train_fn, data, store.home / "wandb-runs", stop, None, display)
    with display:
        report = run_wandb_agent(SweepPath.parse(request.sweep_id), trial, request.count, request.max_failures,
                                 display)
        display.say(f"no more runs: {report.stopped_because}")
    return report


def spawn_workers(gpus: Sequence[str], worker_args: Sequence[str], home: Path | None, store_url: str | None) -> int:
    """Run `sweep agent` once per GPU in child processes; signals are passed on; returns the worst exit code."""
    children = []
    for gpu in gpus:
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpu)
        if home is not None:
            env["SWEEP_HOME"] = str(home)
        if store_url is not None:
            env["SWEEP_STORE"] = store_url
        args = [sys.executable, "-m", "cli.main", "agent", *worker_args, "--label", f"gpu{gpu}", "--plain"]
        children.append(subprocess.Popen(args, env=env))

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        codes = [child.wait() for child in children]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return max(codes, key=abs) if codes else 0
