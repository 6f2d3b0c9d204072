"""`--backend wandb`: the same validated YAML and training function on W&B's hosted controller.

`sweep create FILE --backend wandb` registers the sweep with `wandb.sweep`;
`sweep agent entity/project/id` calls `wandb.agent` once per run (count=1), so
between runs this agent applies its own rules, as the local backend does: stop
after a signal, after `--count` runs, or after N consecutive failures.
W&B's servers decide which configuration comes next and when hyperband stops.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent.sweep_config import SweepSpec
from agent.wandb_run import WandbRun, quiet_settings
from agent.worker import AgentReport, AgentStopped, RunBudget, StopFlag, TrainFn, one_line_reason


class WandbBackendError(Exception):
    """W&B refused or could not be reached; the message says which call."""


class SweepPath(BaseModel):
    entity: str | None
    project: str | None
    sweep_id: str

    @classmethod
    def parse(cls, text: str) -> SweepPath:
        parts = text.strip("/").split("/")
        if not 1 <= len(parts) <= 3 or not all(parts):
            raise WandbBackendError(f"sweep id {text!r}: expected entity/project/sweep_id")
        padded = [None] * (3 - len(parts)) + parts
        return cls(entity=padded[0], project=padded[1], sweep_id=padded[2])

    def __str__(self) -> str:
        return "/".join(part for part in (self.entity, self.project, self.sweep_id) if part)


def create_wandb_sweep(spec: SweepSpec, project: str | None, entity: str | None) -> SweepPath:
    """Register the validated sweep with W&B; returns where it lives."""
    import wandb

    project = project or spec.config.get("project") or os.environ.get("WANDB_PROJECT")
    entity = entity or spec.config.get("entity") or os.environ.get("WANDB_ENTITY")
    try:
        sweep_id = wandb.sweep(sweep=spec.config, project=project, entity=entity)
    except Exception as error:  # the SDK raises CommError, UsageError, requests errors...
        raise WandbBackendError(f"wandb.sweep failed for {spec.source}: {one_line_reason(error)}") from None
    return SweepPath(entity=entity, project=project, sweep_id=sweep_id)


class Trial:
    """The function `wandb.agent` calls: one W&B run, trained by the same training function."""

    def __init__(self, train_fn: TrainFn, data: Any, runs_root: Path, stop: StopFlag, device: str | None,
                 events: Any) -> None:
        self.train_fn, self.data, self.runs_root, self.stop = train_fn, data, runs_root, stop
        self.device, self.events = device, events
        self.outcome: str | None = None
        self.detail: str | None = None
        self.run_id: str | None = None
        self.diverged = False

    def __call__(self) -> None:
        import wandb

        from train import TrainConfig
        from agent.wandb_hooks import TrialHooks

        self.outcome, self.detail, self.diverged = None, None, False
        run = wandb.init(settings=quiet_settings())  # project, run id and config come from W&B's agent
        logger = WandbRun(run)
        self.run_id = run.id
        values = {k: v for k, v in dict(run.config).items() if not k.startswith("_")}
        run_dir = self.runs_root / (run.sweep_id or "no-sweep") / run.id

        try:
            config = TrainConfig.resolve(values)
            hooks = TrialHooks(logger, self.events, run.id, run_dir, self.stop)
            result = self.train_fn(config, hooks, data=self.data, run_dir=run_dir, device=self.device)
        except Exception as error:
            self.outcome, self.detail = "failed", one_line_reason(error)
            self.diverged = isinstance(error, FloatingPointError)  # the configuration's result, not a fault
            logger.write_summary("failed", None, self.detail)
            raise  # W&B's agent marks the run failed and counts it
        preempted = result.status == "stopped" and self.stop.is_set()
        self.outcome = "preempted" if preempted else "finished"
        self.detail = f"preempted: {self.stop.reason}" if preempted else result.stop_reason
        logger.write_summary(self.outcome, result.model_dump(mode="json"), self.detail)


def run_wandb_agent(path: SweepPath, trial: Trial, count: int | None, max_consecutive_failures: int,
                    events: Any) -> AgentReport:
    """Call `wandb.agent(count=1)` until W&B has no run left, `count` runs are done, a signal arrives,
    or runs keep failing."""
    import wandb

    report = AgentReport(agent_id=f"wandb:{os.getpid()}")
    budget = RunBudget(count, max_consecutive_failures, trial.stop)
    while budget.more():
        trial.outcome = None
        try:
            wandb.agent(str(path), function=trial, entity=path.entity, project=path.project, count=1,
                        max_consecutive_failed_runs=max_consecutive_failures)
        except Exception as error:
            raise WandbBackendError(f"wandb.agent failed for {path}: {one_line_reason(error)}") from None
        if trial.outcome is None:  # W&B handed out no run: the sweep is finished, stopped or capped
            report.stopped_because = "W&B's controller has no more runs"
            break
        report.outcomes[trial.outcome] = report.outcomes.get(trial.outcome, 0) + 1
        events.ended(trial.run_id or "?", trial.outcome, trial.detail)
        give_up = budget.record(trial.outcome == "failed" and not trial.diverged, trial.detail)
        if give_up:
            report.stopped_because = give_up
            raise AgentStopped(f"W&B agent stopped itself: {give_up}")
    if trial.stop.is_set():
        report.stopped_because = trial.stop.reason
    return report
