"""`sweep create`, `agent`, `ls`, `status`, `stop`: sweeps in the store."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from agent.controller import DEFAULT_STORE_DEADLINE_S
from agent.defaults import DEFAULT_LEASE_S, DEFAULT_MAX_CONSECUTIVE_FAILURES, TRAIN_FN_ENV
from cli.common import DataDirOption, HomeOption, JsonOption, StoreOption, cli_errors, console, errors, open_store_for
from cli.hints import next_step_lines
from cli.polish import plural
from report.format import setting

if TYPE_CHECKING:
    from agent.status import SweepStatus


class Backend(str, Enum):
    local = "local"
    wandb = "wandb"


def create(
    file: Annotated[Path, typer.Argument(help="A W&B sweep YAML, e.g. sweeps/grid.yaml.")],
    backend: Annotated[Backend, typer.Option(help="local: the embedded store; wandb: W&B's hosted controller.")]
    = Backend.local,
    project: Annotated[Optional[str], typer.Option(
        help="W&B project: the hosted sweep's (--backend wandb), else where runs' offline W&B runs sync to.")] = None,
    entity: Annotated[Optional[str], typer.Option(help="W&B entity, as --project.")] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    store_url: StoreOption = None,
) -> None:
    """Validate a sweep file and register it; prints the sweep id and the agent command."""
    from agent.sweep_config import load_sweep_file
    from agent.sweep_file_keys import check_runnable, with_wandb_names

    with cli_errors():
        spec = load_sweep_file(file)  # before the store is opened (or imported): a bad file costs little
        check_runnable(spec.config, str(file))
        for warning in spec.warnings:
            errors.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)
        if backend is Backend.wandb:
            from agent.wandb_backend import create_wandb_sweep

            path = create_wandb_sweep(spec, project, entity)
            record = open_store_for(store_url, home, create=True).create_sweep(spec.config, backend="wandb",
                                                                                sweep_id=str(path))
        else:
            record = open_store_for(store_url, home, create=True).create_sweep(
                with_wandb_names(spec.config, project, entity))
    if as_json:
        print(json.dumps({"id": record.id, "backend": record.backend, "method": spec.method,
                          "total_configs": spec.grid_size, "warnings": spec.warnings}))
        return
    size = plural(spec.grid_size, "run") if spec.grid_size is not None else (
        f"up to {plural(spec.config['run_cap'], 'run')}" if "run_cap" in spec.config else "runs until stopped")
    metric = f", {spec.metric_goal} {spec.metric_name}" if spec.metric_name else ""
    console.print(f"Created {record.backend} sweep [bold]{record.id}[/bold] ({spec.method}, {size}{metric})",
                  highlight=False)
    console.print("Next:", highlight=False)
    for line in next_step_lines(record.id, home, store_url):
        console.print(escape(line), highlight=False, soft_wrap=True)


def agent(
    sweep_id: Annotated[str, typer.Argument(help="Sweep id from `sweep create` (entity/project/id for W&B).")],
    count: Annotated[Optional[int], typer.Option(min=1, help="Runs each worker trains before exiting.")] = None,
    gpus: Annotated[Optional[str], typer.Option(
        help="GPUs to use, e.g. 0,1: one worker each. Default: every visible GPU, else the CPU.")] = None,
    max_failures: Annotated[int, typer.Option(
        min=1, help="Stop this agent after this many consecutive failed runs.")] = DEFAULT_MAX_CONSECUTIVE_FAILURES,
    data_dir: DataDirOption = None,
    home: HomeOption = None,
    store_url: StoreOption = None,
    store_timeout: Annotated[float, typer.Option(
        min=1.0, help="Give up (checkpoint, hand the run back, exit 1) when the store stays unreachable this "
                      "long; shorter outages are waited out.")] = DEFAULT_STORE_DEADLINE_S,
    lease_seconds: Annotated[float, typer.Option(
        min=1.0, help="A run whose agent sends no heartbeat for this long is offered again.")] = DEFAULT_LEASE_S,
    train_fn: Annotated[Optional[str], typer.Option(envvar=TRAIN_FN_ENV, hidden=True,
                                                     help="module:function replacing train.train")] = None,
    label: Annotated[str, typer.Option(hidden=True, help="Prefix for this worker's lines.")] = "",
    plain: Annotated[bool, typer.Option("--plain", help="Plain lines instead of a progress bar (for logs).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Events as JSON lines for scripts: claimed, epoch, "
                                                         "ended, idle, done.")] = False,
    stats_out: Annotated[Optional[Path], typer.Option(hidden=True, help="Write claim/idle timings here.")] = None,
) -> None:
    """Train the sweep's runs until none are left; SIGTERM/Ctrl-C checkpoints and marks the run preempted."""
    from agent.launch import AgentRequest, backend_of, run_agent, spawn_workers, worker_gpus
    from agent.worker import AgentStopped

    with cli_errors():
        request = AgentRequest(sweep_id=sweep_id, count=count, gpus=gpus, max_failures=max_failures,
                               data_dir=data_dir, home=home, lease_seconds=lease_seconds, train_fn=train_fn,
                               label=label, plain=plain, json_lines=as_json, store_url=store_url,
                               store_timeout=store_timeout)
        store = open_store_for(store_url, home)
        backend_of(sweep_id, store)  # an unknown sweep stops here, before any worker starts
        workers = worker_gpus(request)
        if workers:
            if as_json:
                print(json.dumps({"event": "workers", "gpus": workers, "sweep": sweep_id}), flush=True)
            else:
                console.print(f"starting {len(workers)} workers on GPUs {', '.join(workers)} for sweep {sweep_id}",
                              highlight=False)
            raise typer.Exit(spawn_workers(workers, request.worker_args(), home, store_url))
        try:
            report = run_agent(request, store, console)
        except AgentStopped as error:
            errors.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
    if stats_out is not None:
        stats_out.write_text(report.model_dump_json())
    if not report.complete:  # the sweep ended with runs that have no result: a script must notice
        errors.print(f"[yellow]incomplete:[/yellow] {escape(report.stopped_because or '')}", highlight=False,
                     soft_wrap=True)
        raise typer.Exit(3)


def list_command(as_json: JsonOption = False, home: HomeOption = None, store_url: StoreOption = None) -> None:
    """List the sweeps in the store."""
    from agent.status import list_sweeps

    with cli_errors():
        listings = list_sweeps(open_store_for(store_url, home))
    if as_json:
        print(json.dumps([item.model_dump() for item in listings], indent=2))
        return
    table = Table(title=f"Sweeps ({len(listings)})")
    for column in ("id", "name", "backend", "method", "state", "runs", "finished", "best"):
        table.add_column(column, justify="right" if column in ("runs", "finished", "best") else "left")
    for item in listings:
        best = f"{item.metric} {item.best_metric:.4f}" if item.best_metric is not None else "-"
        table.add_row(*(Text(str(cell)) for cell in (item.id, item.name or "-", item.backend, item.method,
                                                      item.state, item.runs, item.finished, best)))
    console.print(table)


def status(sweep_id: str, as_json: JsonOption = False, home: HomeOption = None,
           store_url: StoreOption = None) -> None:
    """Runs by state, with config, epochs done and best metric; runs that ended without a result."""
    from agent.status import sweep_status

    with cli_errors():
        result = sweep_status(open_store_for(store_url, home), sweep_id)
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    console.print(status_table(result))


def stop(
    sweep_id: str,
    cancel: Annotated[bool, typer.Option("--cancel", help="Also stop running runs (they end as killed).")] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
    store_url: StoreOption = None,
) -> None:
    """Stop handing out new runs; running runs finish unless --cancel. `sweep resume` undoes it."""
    from agent.controller import Controller

    with cli_errors():
        record = Controller(open_store_for(store_url, home)).stop_sweep(sweep_id, cancel=cancel)
    if as_json:
        print(json.dumps({"id": record.id, "state": record.state, "state_reason": record.state_reason,
                          "cancel": cancel}))
        return
    tail = "running runs will be stopped at their next step" if cancel else "running runs will finish"
    console.print(Text(f"sweep {record.id} is {record.state}: no new runs; {tail}"))


def retry(sweep_id: str, as_json: JsonOption = False, home: HomeOption = None,
          store_url: StoreOption = None) -> None:
    """Offer every crashed and failed run again (resuming from its checkpoint); then run `sweep agent`."""
    from agent.controller import Controller

    with cli_errors():
        offered = Controller(open_store_for(store_url, home)).retry(sweep_id)
    if as_json:
        print(json.dumps({"id": sweep_id, "offered": offered}))
        return
    noun = "run" if len(offered) == 1 else "runs"
    console.print(Text(f"sweep {sweep_id}: {len(offered)} {noun} offered again" +
                       (f" ({' '.join(offered)}); start `sweep agent {sweep_id}`" if offered else "")))


def status_table(result: SweepStatus) -> Table:
    from agent.status import STATE_ORDER

    metric = result.metric or {}
    name = metric.get("name", "metric")
    size = f"/{result.total_configs}" if result.total_configs else ""
    counts = ", ".join(f"{n} {s}" for s, n in result.counts.items()) or "no runs yet"
    named = f" {result.name}" if result.name else ""  # the title is a Text: shown as written
    runs_word = "run" if (result.total_configs or len(result.runs)) == 1 else "runs"  # '1/1 run', '2/108 runs'
    title = (f"sweep {result.id}{named}: {result.state}" + (f" ({result.state_reason})" if result.state_reason else "")
             + f"\n{result.method}, {len(result.runs)}{size} {runs_word}: {counts}")
    if result.best_run:
        title += f"\nbest {name} {result.best_metric:.4f} (run {result.best_run})"
    if result.without_result:
        title += (f"\n{len(result.without_result)} without a result (crashed or failed): "
                  f"`sweep retry {result.id}` offers them again")
    fixed = sorted({(k, str(v)) for run in result.runs for k, v in run.config.items() if k not in result.searched})
    caption = "fixed: " + " ".join(f"{k}={v}" for k, v in fixed) if fixed else None
    table = Table(title=Text(title), caption=Text(caption) if caption else None)
    for column in ("run", "state", "epochs", f"best {name}", "test acc", "searched"):
        table.add_column(column, justify="left" if column in ("run", "state", "searched") else "right",
                         overflow="fold")
    order = {state: i for i, state in enumerate(STATE_ORDER)}
    for run in sorted(result.runs, key=lambda r: order.get(r.state, 99)):
        colour = {"finished": "green", "failed": "red", "crashed": "red", "running": "cyan"}.get(run.state, "yellow")
        state = Text(run.state, style=colour) + (f" x{run.attempts}" if run.attempts > 1 else "")
        config = Text(" ".join(f"{k}={setting(v)}" for k, v in sorted(run.config.items()) if k in result.searched))
        if run.failure and run.state in ("failed", "crashed"):
            config.append(f"\n{run.failure}", style="red")
        best = f"{run.best_metric:.4f}" if run.best_metric is not None else "-"
        test = f"{run.test_acc:.4f}" if run.test_acc is not None else "-"
        table.add_row(Text(run.id), state, str(run.epochs_done), best, test, config)
    return table

