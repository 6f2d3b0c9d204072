"""`sweep agent --json`: the agent's events as JSON lines on stdout, one object per line, for scripts.

Each line has `event` (claimed, epoch, ended, idle, done, message), `time` (seconds since the epoch)
and, from a GPU worker, `worker` (its label). Non-finite numbers (a diverged loss) are written as
null, so every line is standard JSON.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import IO, Any

from rich.console import Console

from agent.controller import Claim, Idle
from agent.display import AgentDisplay


class JsonEvents:
    """The same events as `AgentDisplay`, written as JSON lines."""

    def __init__(self, metric: str | None, goal: str | None, label: str = "", out: IO[str] | None = None) -> None:
        self.metric, self.goal, self.label = metric, goal, label
        self.out = out
        self.best: float | None = None
        self.last_idle: str | None = None

    def __enter__(self) -> JsonEvents:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def emit(self, event: str, **fields: Any) -> None:
        line = {"event": event, "time": round(time.time(), 3), **({"worker": self.label} if self.label else {}),
                **fields}
        out = self.out or sys.stdout
        out.write(json.dumps(_finite(line), allow_nan=False) + "\n")
        out.flush()

    def say(self, text: str) -> None:
        self.emit("message", text=text)

    def claimed(self, claim: Claim) -> None:
        self.last_idle = None
        self.emit("claimed", run=claim.lease.run_id, sweep=claim.lease.sweep_id, attempt=claim.lease.attempt,
                  resumed_after_epoch=claim.resumed_from_epoch, config=claim.config)

    def epoch(self, run_id: str, metrics: dict[str, Any], epochs: int) -> None:
        value = metrics.get(self.metric) if self.metric else None
        if isinstance(value, (int, float)) and math.isfinite(value) and (
                self.best is None or (value < self.best if self.goal == "minimize" else value > self.best)):
            self.best = value
        self.emit("epoch", run=run_id, epoch=metrics.get("epoch"), epochs=epochs, metrics=metrics)

    def ended(self, run_id: str, state: str, detail: str | None) -> None:
        self.emit("ended", run=run_id, state=state, detail=detail)

    def idle(self, idle: Idle) -> None:
        if idle.done:
            self.emit("done", reason=idle.reason, metric=self.metric, best=self.best)
        elif idle.reason != self.last_idle:  # once per reason, not once per poll
            self.last_idle = idle.reason
            self.emit("idle", reason=idle.reason, retry_after=idle.retry_after)


def make_display(console: Console, metric: str | None, goal: str | None, *, label: str = "", plain: bool = False,
                 json_lines: bool = False) -> AgentDisplay | JsonEvents:
    """The agent's display: JSON lines for `--json`, else rich (plain lines with `--plain` or off a terminal)."""
    if json_lines:
        return JsonEvents(metric, goal, label=label)
    return AgentDisplay(console, metric, goal, label=label, live=False if plain else None)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
