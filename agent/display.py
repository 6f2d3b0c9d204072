"""What an agent shows while it works: a rich progress bar on a terminal, plain lines otherwise.

Plain lines are for logs and for worker processes sharing one terminal (`--gpus`).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from agent.controller import Claim, Idle


class AgentDisplay:
    def __init__(self, console: Console, metric: str | None, goal: str | None, label: str = "",
                 live: bool | None = None) -> None:
        self.console, self.metric, self.goal = console, metric, goal
        self.prefix = escape(f"[{label}] ") if label else ""
        self.live = console.is_terminal if live is None else live
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        self.best: float | None = None
        self.waiting_said = False

    def __enter__(self) -> AgentDisplay:
        if self.live:
            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=self.console)
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()

    def say(self, text: str) -> None:
        self.console.print(f"{self.prefix}{text}", highlight=False, soft_wrap=True)

    def claimed(self, claim: Claim) -> None:
        run_id = claim.lease.run_id
        settings = " ".join(f"{k}={v}" for k, v in sorted(claim.config.items()))
        resumed = (f", resuming after epoch {claim.resumed_from_epoch}" if claim.resumed_from_epoch
                   else ", resuming" if claim.lease.attempt > 1 else "")
        self.say(f"run {run_id} (attempt {claim.lease.attempt}{resumed}): {settings}")
        self.waiting_said = False
        if self.progress is not None:
            self.tasks[run_id] = self.progress.add_task(f"run {run_id}", total=None, status="starting")

    def epoch(self, run_id: str, metrics: dict[str, Any], epochs: int) -> None:
        value = metrics.get(self.metric) if self.metric else None
        if value is not None and (self.best is None or (value > self.best if self.goal != "minimize"
                                                         else value < self.best)):
            self.best = value
        status = f"{self.metric} {_fmt(value)}  best {_fmt(self.best)}" if self.metric else \
            f"train_loss {metrics['train_loss']:.3f}"
        if self.progress is not None and run_id in self.tasks:
            self.progress.update(self.tasks[run_id], total=epochs, completed=metrics["epoch"], status=status)
        else:
            self.say(f"run {run_id} epoch {metrics['epoch']}/{epochs}: {status}")

    def ended(self, run_id: str, state: str, detail: str | None) -> None:
        if self.progress is not None and run_id in self.tasks:
            self.progress.remove_task(self.tasks.pop(run_id))
        colour = {"finished": "green", "failed": "red", "preempted": "yellow"}.get(state, "magenta")
        detail = detail.removeprefix(f"{state}: ") if detail else None
        self.say(f"run {run_id} [{colour}]{state}[/{colour}]" + (f": {escape(detail)}" if detail else ""))

    def idle(self, idle: Idle) -> None:
        if idle.done:
            self.say(f"no more runs: {idle.reason}" + (f"; best {self.metric} {_fmt(self.best)}" if self.best
                                                       is not None else ""))
        elif not self.waiting_said:
            self.say(idle.reason)
            self.waiting_said = True


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
