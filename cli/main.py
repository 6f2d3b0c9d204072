"""The `sweep` command line: one typer app; each command lives in the module named for its topic."""

from __future__ import annotations

import typer

from cli import dashboard, manage, report, runs, sweeps, training, winner
from cli.polish import CONTEXT_SETTINGS, VersionOption, show_flags_as_flags

show_flags_as_flags()
app = typer.Typer(help="Find the best CIFAR-10 classifier under a 5M-parameter budget, with W&B-style sweeps.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  context_settings=CONTEXT_SETTINGS)


@app.callback()
def _global(version: VersionOption = False) -> None:
    """Find the best CIFAR-10 classifier under a 5M-parameter budget, with W&B-style sweeps."""


app.command()(sweeps.create)
app.command()(sweeps.agent)
app.command("ls")(sweeps.list_command)
app.command()(sweeps.status)
app.command()(sweeps.stop)
app.command()(sweeps.retry)
app.command("runs")(runs.runs_command)
app.command("run")(runs.run_command)
app.command()(manage.delete)
app.command()(manage.resume)
app.command()(report.report)
app.command()(dashboard.dashboard)
app.command()(training.models)
app.command()(training.data)
app.command("train")(training.train_command)
app.command()(winner.export)
app.command()(winner.predict)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
