"""`sweep models`, `sweep data`, `sweep train`: the networks, the data and one run outside any sweep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from cli.common import DataDirOption, HomeOption, StoreOption, cli_errors, console, open_store_for

if TYPE_CHECKING:  # imported lazily at run time: `sweep --help` should not wait for torch
    from train import TrainConfig, TrainResult


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



def train_command(
    model: Annotated[Optional[str], typer.Option(help="Network from `sweep models` (default: fast).")] = None,
    epochs: Annotated[Optional[float], typer.Option(help="Epochs (default: the model's recipe).")] = None,
    data_dir: DataDirOption = None,
    overrides: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Any training setting as KEY=VALUE, repeatable (e.g. --set lr=0.05 --set val_size=0).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json-out", help="Write the full result as JSON here.")] = None,
    run_dir: Annotated[Optional[Path], typer.Option(
        help="Keep the newest two checkpoints here (one per epoch) and resume from the newest usable one; "
             "the result goes here too, as result.json.")] = None,
    show_config: Annotated[bool, typer.Option(
        "--show-config", help="Print every setting this run would use (recipe + overrides) and exit.")] = False,
    from_id: Annotated[Optional[str], typer.Option(
        "--from", metavar="SWEEP_ID|RUN_ID", help="Start from that run's whole config (a sweep: its best finished "
                                                  "run); --set, --model, --epochs override it.")] = None,
    store: StoreOption = None,
    home: HomeOption = None,
) -> None:
    """Train one network outside any sweep, then print a summary.

    Settings not given come from the model's recipe (`--show-config` lists them all), or with
    `--from` from a sweep's run; `sweep train --from SWEEP_ID --set val_size=0` retrains the winner
    on all the training images.
    """
    from cli.training_hooks import ProgressHooks, keep_newest
    from train import TrainConfig, train
    from train.overrides import parse_overrides

    with cli_errors():
        values = parse_overrides(overrides or [])
        if model is not None:
            values["model"] = model
        if epochs is not None:
            values["epochs"] = epochs
        derived_from = None
        if from_id is not None:
            from winner.retrain import derive_config

            derived = derive_config(from_id, values, lambda: open_store_for(store, home))
            derived_from = derived.derived_from.model_dump()
            changes = ", ".join(f"{k}={v!r}" for k, v in derived.overridden.items()) or "no changes"
            console.print(Text(f"config of run {derived_from['run']} (sweep {derived_from['sweep']}), {changes}"))
            values = derived.values
        config = TrainConfig.resolve(values)
        if show_config:
            console.print(config_table(config))
            return
        from data.cifar import load_cifar10

        data = load_cifar10(data_dir)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task(f"training {config.model} (steps)", total=None, status="")
            result = train(config, ProgressHooks(progress, task, run_dir), data=data, run_dir=run_dir)
        if run_dir is not None:  # also after a stop part-way through an epoch
            keep_newest(run_dir)
    for note in result.resume_notes:
        console.print(Text(f"note: {note}"), soft_wrap=True)
    if result.resumed_from:
        console.print(Text(f"resumed from {result.resumed_from}"), soft_wrap=True)

    written = result.model_dump(mode="json")
    if derived_from is not None:
        written["derived_from"] = derived_from
    if run_dir is not None:  # beside the checkpoints, where `sweep export DIR` reads the measured accuracy
        from winner.source import write_result

        with cli_errors():
            write_result(run_dir, written)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(written, indent=2))
    console.print(summary_table(result, derived_from))


def config_table(config: TrainConfig) -> Table:
    table = Table(title=f"Settings for {config.model}")
    table.add_column("key")
    table.add_column("value")
    table.add_column("meaning")
    for name, field in type(config).model_fields.items():
        table.add_row(name, repr(getattr(config, name)), field.description or "")
    return table


def summary_table(result: TrainResult, derived_from: dict | None = None) -> Table:
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
    if derived_from is not None:
        rows.append(("derived from", f"run {derived_from['run']} of sweep {derived_from['sweep']}"))
    for label, value in rows:
        table.add_row(label, Text(value))
    return table

