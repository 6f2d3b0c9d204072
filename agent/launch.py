"""Start agents: one in this process, or one worker process per GPU pinned with CUDA_VISIBLE_DEVICES.

Workers share nothing but the store, which hands each a distinct run (W&B #597:
agents started together on one box must not get the same parameters).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.controller import Controller
from agent.display import AgentDisplay
from agent.store import LocalStore
from agent.worker import Agent, AgentOptions, AgentReport, StopFlag, TrainFn, install_signal_handlers


class GpuListError(ValueError):
    pass


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
    """Indices of the GPUs this process can use: one worker each when there are several."""
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def run_in_process(store: LocalStore, options: AgentOptions, train_fn: TrainFn, display: AgentDisplay,
                   data: Any, max_failures: int) -> AgentReport:
    stop = StopFlag()
    restore = install_signal_handlers(stop)
    agent = Agent(Controller(store, max_failures=max_failures), options, train_fn, display, stop, data=data)
    try:
        with display:
            return agent.run()
    finally:
        restore()
        if "wandb" in sys.modules:
            sys.modules["wandb"].teardown()  # flush every run's records before the agent returns


def spawn_workers(gpus: Sequence[str], worker_args: Sequence[str], home: Path | None) -> int:
    """Run `sweep agent` once per GPU in child processes; signals are passed on; returns the worst exit code."""
    children = []
    for gpu in gpus:
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpu)
        if home is not None:
            env["SWEEP_HOME"] = str(home)
        args = [sys.executable, "-m", "agent.cli", "agent", *worker_args, "--label", f"gpu{gpu}", "--plain"]
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
