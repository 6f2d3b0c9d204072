"""The `sweep` command line."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

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

    try:
        yield
    except (DataError, ConfigError, BudgetError, UnknownModelError, CheckpointMismatch) as error:
        errors.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
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
) -> None:
    """Train one network outside any sweep, then print a summary."""
    from train import TrainConfig, train
    from train.overrides import parse_overrides

    with cli_errors():
        values = parse_overrides(overrides or [])
        if model is not None:
            values["model"] = model
        if epochs is not None:
            values["epochs"] = epochs
        config = TrainConfig.resolve(values)
        from data.cifar import load_cifar10

        data = load_cifar10(data_dir)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task(f"training {config.model}", total=None, status="")

            def show(event) -> None:
                m = event.metrics
                val = f"val {m.val_acc:.2%}" if m.val_acc is not None else "no validation"
                progress.update(task, total=event.epochs, completed=m.epoch,
                                status=f"loss {m.train_loss:.3f}  {val}  {m.images_per_second:,.0f} img/s")

            result = train(config, [show], data=data, run_dir=run_dir)

    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(result.model_dump_json(indent=2))
    console.print(summary_table(result))


def summary_table(result) -> Table:
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
