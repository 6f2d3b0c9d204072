"""`sweep runs ID` and `sweep run RUN_ID`: a sweep's runs, and everything about one of them."""

from __future__ import annotations

import time
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from cli.common import HomeOption, JsonOption, StoreOption, cli_errors, console, open_store_for
from cli.polish import plural
from report.format import setting
from store.records import RUN_STATES

if TYPE_CHECKING:
    from agent.run_view import AttemptView, RunDetails, RunList

StateChoice = Enum("StateChoice", {state: state for state in RUN_STATES}, type=str)  # type: ignore[misc]
STATE_COLOURS = {"finished": "green", "failed": "red", "crashed": "red", "running": "cyan", "killed": "magenta"}
HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds",
                   "images_per_second")
# Headers with spaces, so a narrow terminal wraps them instead of cutting them short.
HISTORY_HEADERS = {"train_loss": "train loss", "train_acc": "train acc", "val_loss": "val loss",
                   "val_acc": "val acc", "epoch_seconds": "seconds", "images_per_second": "img/s"}


def runs_command(
    sweep_id: Annotated[str, typer.Argument(metavar="ID", help="Sweep id from `sweep create`.")],
    state: Annotated[Optional[StateChoice], typer.Option(
        "--state", metavar="STATE", help=f"Only runs in this state: {', '.join(RUN_STATES)}.")] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    store_url: StoreOption = None,
) -> None:
    """List a sweep's runs: state, epochs, best metric, test accuracy, searched settings, failure."""
    from agent.run_view import list_runs

    with cli_errors():
        store = open_store_for(store_url, home)
        listing = list_runs(store, sweep_id, state.value if state is not None else None)
    if as_json:
        print(listing.model_dump_json(indent=2))
        return
    console.print(runs_view(listing, state.value if state is not None else None))


def run_command(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="Run id from `sweep runs` or `sweep status`.")],
    as_json: JsonOption = False,
    home: HomeOption = None,
    store_url: StoreOption = None,
) -> None:
    """One run: its config, per-epoch history, attempts (agent, host, resumed after, why each ended), log tail."""
    from agent.run_view import run_details

    with cli_errors():
        store = open_store_for(store_url, home)
        details = run_details(store, run_id)
    if as_json:
        print(details.model_dump_json(indent=2))
        return
    console.print(run_view(details))


# -- rendering: user-provided strings (configs, reasons, logs) go in as Text, never as markup -------------


def runs_view(listing: RunList, state: str | None) -> Group:
    """The table, then why each failed or crashed run stopped, one full line each (a table cell would fold it)."""
    why = [Text.assemble(f"{run.id} {run.state}: ", (run.failure, "red"))
           for run in listing.runs if run.failure and run.state in ("failed", "crashed")]
    return Group(runs_table(listing, state), *why)


def runs_table(listing: RunList, state: str | None) -> Table:
    which = f"{state} runs" if state else "runs"
    title = f"sweep {listing.sweep_id}: {plural(len(listing.runs), 'run')}" + (f" ({which})" if state else "")
    metric = listing.metric or "metric"
    table = Table(title=title)
    for column in ("run", "state", "epochs", f"best {metric}", "test acc", "attempts", "searched"):
        table.add_column(column, justify="right" if column in ("epochs", f"best {metric}", "test acc", "attempts")
                         else "left", overflow="fold")
    for run in listing.runs:
        searched = Text(" ".join(f"{k}={setting(run.config[k])}" for k in listing.searched if k in run.config))
        table.add_row(Text(run.id), Text(run.state, style=STATE_COLOURS.get(run.state, "yellow")),
                      str(run.epochs_done), _number(run.best_metric), _number(run.test_acc), str(run.attempts),
                      searched)
    return table


def run_view(run: RunDetails) -> Group:
    parts: list[Any] = [_header(run), _config_table(run.config)]
    if run.history:
        parts.append(_history_table(run))
    if run.attempts:
        parts.append(_attempts_table(run.attempts))
    for attempt in run.attempts:
        parts.extend(_logs(attempt))
    return Group(*parts)


def _header(run: RunDetails) -> Text:
    text = Text()
    text.append(f"run {run.id}", style="bold")
    text.append(f" (sweep {run.sweep_id}): ")
    text.append(run.state, style=STATE_COLOURS.get(run.state, "yellow"))
    text.append(f", {plural(run.attempts_count, 'attempt')}, {plural(len(run.history), 'epoch')}")
    if run.best_metric is not None:
        text.append(f", best {run.metric} {run.best_metric:.4f}")
    for key, label in (("test_acc", "test acc"), ("test_acc_tta", "test acc (TTA)")):
        if run.summary.get(key) is not None:
            text.append(f", {label} {run.summary[key]:.4f}")
    if run.failure:
        text.append("\nwhy it stopped: ")
        text.append(run.failure, style="red")
    if run.stop_requested:
        text.append(f"\nstop requested: {run.stop_requested}")
    text.append(f"\nfolder: {run.folder}")
    return text


def _config_table(config: dict[str, Any]) -> Table:
    table = Table(title="config", title_justify="left")
    table.add_column("setting")
    table.add_column("value", overflow="fold")
    for key, value in sorted(config.items()):
        table.add_row(Text(str(key)), Text(str(value)))
    return table


def _history_table(run: RunDetails) -> Table:
    by_attempt = {epoch: a.attempt for a in run.attempts for epoch in a.epochs}
    table = Table(title="history", title_justify="left")
    columns = [c for c in HISTORY_COLUMNS if any(c in row for row in run.history)]
    for column in columns:
        table.add_column(HISTORY_HEADERS.get(column, column), justify="right")
    if by_attempt:
        table.add_column("attempt", justify="right")
    for row in run.history:
        cells = [_cell(column, row.get(column)) for column in columns]
        if by_attempt:
            cells.append(str(by_attempt.get(row.get("epoch"), "-")))
        table.add_row(*cells)
    return table


def _attempts_table(attempts: list[AttemptView]) -> Table:
    table = Table(title="attempts", title_justify="left")
    for column in ("#", "agent", "host", "started", "resumed after epoch", "ran", "outcome", "why it ended"):
        table.add_column(column, justify="right" if column in ("#", "resumed after epoch", "ran") else "left",
                         overflow="fold")
    for a in attempts:
        ran = f"{a.ended_at - a.started_at:.1f} s" if a.ended_at is not None else "running"
        table.add_row(str(a.attempt), Text(a.agent), Text(a.host), _clock(a.started_at), str(a.resumed_after_epoch),
                      ran, Text(a.outcome or "running", style=STATE_COLOURS.get(a.outcome or "running", "yellow")),
                      Text(a.detail or "-"))
    return table


def _logs(attempt: AttemptView) -> list[Text]:
    shown = []
    for name, lines in (("traceback", attempt.traceback), ("log", attempt.log_tail)):
        if lines:
            text = Text(f"attempt {attempt.attempt} {name} (last {plural(len(lines), 'line')}, "
                        f"{attempt.folder}):\n", style="bold")
            text.append("\n".join(lines))
            shown.append(text)
    return shown


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if column == "epoch":
        return str(value)
    if column == "images_per_second":
        return f"{value:,.0f}"
    if column == "epoch_seconds":
        return f"{value:.1f}"
    if column == "lr":
        return f"{value:.4g}"
    return f"{value:.4f}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _clock(seconds: float) -> str:
    return time.strftime("%m-%d %H:%M:%S", time.localtime(seconds))
