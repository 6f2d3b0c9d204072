"""The `sweep` command line."""

from __future__ import annotations

import json
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agent.defaults import DEFAULT_LEASE_S, DEFAULT_MAX_CONSECUTIVE_FAILURES, TRAIN_FN_ENV

if TYPE_CHECKING:  # imported lazily at run time: `sweep --help` should not wait for torch
    from agent.status import SweepStatus
    from train import TrainConfig, TrainResult

app = typer.Typer(help="Find the best CIFAR-10 classifier under a 5M-parameter budget, with W&B-style sweeps.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
console = Console()
errors = Console(stderr=True)

DataDirOption = Annotated[Optional[Path], typer.Option(
    "--data-dir", envvar="SWEEP_DATA_DIR",
    help="Folder holding cifar-10-batches-py/ (or that folder itself); downloaded there if absent.")]


@contextmanager
def cli_errors() -> Iterator[None]:
    """Known failures become one line on stderr and exit code 2, never a traceback."""
    from data.cifar import DataError
    from model.registry import BudgetError, UnknownModelError
    from train.config import ConfigError
    from train.loop import CheckpointMismatch

    from agent.launch import GpuListError
    from agent.store import StoreError
    from agent.sweep_config import SweepConfigError
    from agent.wandb_backend import WandbBackendError
    from agent.worker import TrainFnError

    try:
        yield
    except (DataError, ConfigError, BudgetError, UnknownModelError, CheckpointMismatch, SweepConfigError,
            StoreError, WandbBackendError, GpuListError, TrainFnError, FloatingPointError) as error:
        errors.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@app.command()
def models(as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False) -> None:
    """List the registered networks with their trainable-parameter counts."""
    from model.registry import PARAMETER_CAP, REGISTRY, parameter_count

    rows = [{"name": s.name, "params": parameter_count(s.name), "description": s.description}
            for s in REGISTRY.values()]
    if as_json:
        print(json.dumps({"max_params": PARAMETER_CAP, "models": rows}, indent=2))
        return
    table = Table(title=f"Networks (budget {PARAMETER_CAP:,} trainable parameters)")
    table.add_column("model")
    table.add_column("parameters", justify="right")
    table.add_column("of budget", justify="right")
    table.add_column("description")
    for row in rows:
        table.add_row(row["name"], f"{row['params']:,}", f"{row['params'] / PARAMETER_CAP:.1%}", row["description"])
    console.print(table)


@app.command()
def data(data_dir: DataDirOption = None,
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False) -> None:
    """Check CIFAR-10 (downloading it when absent) and say where it is; agents can then start at once."""
    from data.cifar import load_cifar10

    with cli_errors():
        dataset = load_cifar10(data_dir)
    facts = {"source": str(dataset.source), "train_images": len(dataset.train_labels),
             "test_images": len(dataset.test_labels), "classes": list(dataset.classes)}
    if as_json:
        print(json.dumps(facts))
        return
    console.print(f"CIFAR-10 at {facts['source']}: {facts['train_images']:,} training and "
                  f"{facts['test_images']:,} test images, {len(facts['classes'])} classes", highlight=False,
                  soft_wrap=True)


HomeOption = Annotated[Optional[Path], typer.Option(
    "--home", envvar="SWEEP_HOME", help="Store folder: sweep.db and run artifacts (default ./.sweep).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


class Backend(str, Enum):
    local = "local"
    wandb = "wandb"


@app.command()
def create(
    file: Annotated[Path, typer.Argument(help="A W&B sweep YAML, e.g. sweeps/grid.yaml.")],
    backend: Annotated[Backend, typer.Option(help="local: the embedded store; wandb: W&B's hosted controller.")]
    = Backend.local,
    project: Annotated[Optional[str], typer.Option(help="W&B project (--backend wandb).")] = None,
    entity: Annotated[Optional[str], typer.Option(help="W&B entity (--backend wandb).")] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Validate a sweep file and register it; prints the sweep id and the agent command."""
    from agent.store import LocalStore
    from agent.sweep_config import load_sweep_file

    with cli_errors():
        spec = load_sweep_file(file)  # before the store is opened: a bad file leaves it untouched
        if backend is Backend.wandb:
            from agent.wandb_backend import create_wandb_sweep

            path = create_wandb_sweep(spec, project, entity)
            record = LocalStore(home).create_sweep(spec.config, backend="wandb", sweep_id=str(path))
        else:
            record = LocalStore(home).create_sweep(spec.config)
    if as_json:
        print(json.dumps({"id": record.id, "backend": record.backend, "method": spec.method,
                          "total_configs": spec.grid_size}))
        return
    size = f"{spec.grid_size} runs" if spec.grid_size is not None else (
        f"up to {spec.config['run_cap']} runs" if "run_cap" in spec.config else "runs until stopped")
    metric = f", {spec.metric_goal} {spec.metric_name}" if spec.metric_name else ""
    console.print(f"Created {record.backend} sweep [bold]{record.id}[/bold] ({spec.method}, {size}{metric})",
                  highlight=False)
    console.print(f"Start an agent:  sweep agent {record.id}", highlight=False)


@app.command()
def agent(
    sweep_id: Annotated[str, typer.Argument(help="Sweep id from `sweep create` (entity/project/id for W&B).")],
    count: Annotated[Optional[int], typer.Option(min=1, help="Runs each worker trains before exiting.")] = None,
    gpus: Annotated[Optional[str], typer.Option(
        help="GPUs to use, e.g. 0,1: one worker each. Default: every visible GPU, else the CPU.")] = None,
    max_failures: Annotated[int, typer.Option(
        min=1, help="Stop this agent after this many consecutive failed runs.")] = DEFAULT_MAX_CONSECUTIVE_FAILURES,
    data_dir: DataDirOption = None,
    home: HomeOption = None,
    lease_seconds: Annotated[float, typer.Option(
        min=1.0, help="A run whose agent sends no heartbeat for this long is offered again.")] = DEFAULT_LEASE_S,
    train_fn: Annotated[Optional[str], typer.Option(envvar=TRAIN_FN_ENV, hidden=True,
                                                     help="module:function replacing train.train")] = None,
    label: Annotated[str, typer.Option(hidden=True, help="Prefix for this worker's lines.")] = "",
    plain: Annotated[bool, typer.Option(hidden=True, help="Plain lines instead of a progress bar.")] = False,
    stats_out: Annotated[Optional[Path], typer.Option(hidden=True, help="Write claim/idle timings here.")] = None,
) -> None:
    """Train the sweep's runs until none are left; SIGTERM/Ctrl-C checkpoints and marks the run preempted."""
    from agent.launch import AgentRequest, backend_of, run_agent, spawn_workers, worker_gpus
    from agent.store import LocalStore
    from agent.worker import AgentStopped

    with cli_errors():
        request = AgentRequest(sweep_id=sweep_id, count=count, gpus=gpus, max_failures=max_failures,
                               data_dir=data_dir, home=home, lease_seconds=lease_seconds, train_fn=train_fn,
                               label=label, plain=plain)
        store = LocalStore(home)
        backend_of(sweep_id, store)  # an unknown sweep stops here, before any worker starts
        workers = worker_gpus(request)
        if workers:
            console.print(f"starting {len(workers)} workers on GPUs {', '.join(workers)} for sweep {sweep_id}",
                          highlight=False)
            raise typer.Exit(spawn_workers(workers, request.worker_args(), home))
        try:
            report = run_agent(request, store, console)
        except AgentStopped as error:
            errors.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
    if stats_out is not None:
        stats_out.write_text(report.model_dump_json())


@app.command("ls")
def list_command(as_json: JsonOption = False, home: HomeOption = None) -> None:
    """List the sweeps in the store."""
    from agent.status import list_sweeps
    from agent.store import LocalStore

    with cli_errors():
        listings = list_sweeps(LocalStore(home))
    if as_json:
        print(json.dumps([item.model_dump() for item in listings], indent=2))
        return
    table = Table(title=f"Sweeps ({len(listings)})")
    for column in ("id", "name", "backend", "method", "state", "runs", "finished", "best"):
        table.add_column(column, justify="right" if column in ("runs", "finished", "best") else "left")
    for item in listings:
        best = f"{item.metric} {item.best_metric:.4f}" if item.best_metric is not None else "-"
        table.add_row(item.id, item.name or "-", item.backend, item.method, item.state, str(item.runs),
                      str(item.finished), best)
    console.print(table)


@app.command()
def status(sweep_id: str, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Runs by state, with config, epochs done and best metric."""
    from agent.status import sweep_status
    from agent.store import LocalStore

    with cli_errors():
        result = sweep_status(LocalStore(home), sweep_id)
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    console.print(status_table(result))


@app.command()
def stop(
    sweep_id: str,
    cancel: Annotated[bool, typer.Option(help="Also stop running runs (they end as killed).")] = False,
    home: HomeOption = None,
) -> None:
    """Stop handing out new runs; running runs finish unless --cancel."""
    from agent.controller import Controller
    from agent.store import LocalStore

    with cli_errors():
        record = Controller(LocalStore(home)).stop_sweep(sweep_id, cancel=cancel)
    tail = "running runs will be stopped at their next step" if cancel else "running runs will finish"
    console.print(f"sweep {record.id} is {record.state}: no new runs; {tail}", highlight=False)


def status_table(result: SweepStatus) -> Table:
    from agent.status import STATE_ORDER

    metric = result.metric or {}
    name = metric.get("name", "metric")
    size = f"/{result.total_configs}" if result.total_configs else ""
    counts = ", ".join(f"{n} {s}" for s, n in result.counts.items()) or "no runs yet"
    title = (f"sweep {result.id}: {result.state}" + (f" ({result.state_reason})" if result.state_reason else "")
             + f"\n{result.method}, {len(result.runs)}{size} runs: {counts}")
    if result.best_run:
        title += f"\nbest {name} {result.best_metric:.4f} (run {result.best_run})"
    fixed = sorted({(k, str(v)) for run in result.runs for k, v in run.config.items() if k not in result.searched})
    caption = "fixed: " + " ".join(f"{k}={v}" for k, v in fixed) if fixed else None
    table = Table(title=title, caption=caption)
    for column in ("run", "state", "epochs", f"best {name}", "test acc", "searched"):
        table.add_column(column, justify="left" if column in ("run", "state", "searched") else "right",
                         overflow="fold")
    order = {state: i for i, state in enumerate(STATE_ORDER)}
    for run in sorted(result.runs, key=lambda r: order.get(r.state, 99)):
        colour = {"finished": "green", "failed": "red", "crashed": "red", "running": "cyan"}.get(run.state, "yellow")
        state = f"[{colour}]{run.state}[/{colour}]" + (f" x{run.attempts}" if run.attempts > 1 else "")
        config = " ".join(f"{k}={v}" for k, v in sorted(run.config.items()) if k in result.searched)
        if run.failure and run.state in ("failed", "crashed"):
            config += f"\n[red]{escape(run.failure)}[/red]"
        best = f"{run.best_metric:.4f}" if run.best_metric is not None else "-"
        test = f"{run.test_acc:.4f}" if run.test_acc is not None else "-"
        table.add_row(run.id, state, str(run.epochs_done), best, test, config)
    return table


@app.command("train")
def train_command(
    model: Annotated[Optional[str], typer.Option(help="Network from `sweep models` (default: fast).")] = None,
    epochs: Annotated[Optional[float], typer.Option(help="Epochs (default: the model's recipe).")] = None,
    data_dir: DataDirOption = None,
    overrides: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Any training setting as KEY=VALUE, repeatable (e.g. --set lr=0.05 --set val_size=0).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json-out", help="Write the full result as JSON here.")] = None,
    run_dir: Annotated[Optional[Path], typer.Option(
        help="Keep a checkpoint here after every epoch and resume from it if present.")] = None,
    show_config: Annotated[bool, typer.Option(
        "--show-config", help="Print every setting this run would use (recipe + overrides) and exit.")] = False,
) -> None:
    """Train one network outside any sweep, then print a summary.

    Settings not given come from the model's recipe (`--show-config` lists them all).
    """
    from train import TrainConfig, train
    from train.overrides import parse_overrides

    with cli_errors():
        values = parse_overrides(overrides or [])
        if model is not None:
            values["model"] = model
        if epochs is not None:
            values["epochs"] = epochs
        config = TrainConfig.resolve(values)
        if show_config:
            console.print(config_table(config))
            return
        from data.cifar import load_cifar10

        data = load_cifar10(data_dir)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task(f"training {config.model} (steps)", total=None, status="")

            def show_step(step: int, total: int) -> None:
                progress.update(task, total=total, completed=step)

            def show_epoch(event) -> None:
                m = event.metrics
                val = f"val {m.val_acc:.2%}" if m.val_acc is not None else "no validation"
                progress.update(task, status=f"epoch {m.epoch}/{event.epochs}  loss {m.train_loss:.3f}  {val}  "
                                             f"{m.images_per_second:,.0f} img/s")

            result = train(config, [show_epoch], data=data, run_dir=run_dir, on_step=show_step)

    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(result.model_dump_json(indent=2))
    console.print(summary_table(result))


def config_table(config: TrainConfig) -> Table:
    table = Table(title=f"Settings for {config.model}")
    table.add_column("key")
    table.add_column("value")
    table.add_column("meaning")
    for name, field in type(config).model_fields.items():
        table.add_row(name, repr(getattr(config, name)), field.description or "")
    return table


def summary_table(result: TrainResult) -> Table:
    final = result.final
    table = Table(title=f"{result.model}: {result.status}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("parameters", f"{result.params:,}"),
        ("epochs", f"{len(result.history)}"),
        ("device / precision", f"{result.device} / {result.precision}"),
        ("train time", f"{result.train_seconds:.1f} s"),
        ("wall time", f"{result.total_seconds:.1f} s"),
        ("images/s", f"{final.images_per_second:,.0f}" if final else "-"),
        ("val accuracy", f"{final.val_acc:.2%}" if final and final.val_acc is not None else "-"),
        ("test accuracy", f"{result.test_acc:.2%}" if result.test_acc is not None else "-"),
        ("test accuracy (TTA)", f"{result.test_acc_tta:.2%}" if result.test_acc_tta is not None else "-"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return table


from report.cli import report_command  # noqa: E402
app.command("report")(report_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
