"""What every command shares: the consoles, the one-line error rule and the common options."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
errors = Console(stderr=True)

DataDirOption = Annotated[Optional[Path], typer.Option(
    "--data-dir", envvar="SWEEP_DATA_DIR",
    help="Folder holding cifar-10-batches-py/ (or that folder itself); downloaded there if absent.")]

HomeOption = Annotated[Optional[Path], typer.Option(
    "--home", envvar="SWEEP_HOME", help="Local folder: the embedded store (sweep.db) and, unless "
                                        "SWEEP_ARTIFACTS says otherwise, run artifacts (default ./.sweep).")]
StoreOption = Annotated[Optional[str], typer.Option(
    "--store", envvar="SWEEP_STORE", help="Store URL: a path or sqlite:///path/sweep.db (the embedded "
                                          "default, under --home), or postgresql://user@host:port/db.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@contextmanager
def cli_errors() -> Iterator[None]:
    """Known failures become one line on stderr and exit code 2, never a traceback."""
    from data.cifar import DataError
    from model.registry import BudgetError, UnknownModelError
    from train.config import ConfigError
    from train.checkpoint import CheckpointError

    from agent.launch import GpuListError
    from store.sqlite import StoreError
    from agent.sweep_config import SweepConfigError
    from agent.wandb_backend import WandbBackendError
    from agent.worker import TrainFnError

    try:
        yield
    except (DataError, ConfigError, BudgetError, UnknownModelError, CheckpointError, SweepConfigError,
            StoreError, WandbBackendError, GpuListError, TrainFnError, FloatingPointError) as error:
        errors.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None



def open_store_for(store_url: str | None, home: Path | None, create: bool = False):
    """The store a command's --store/--home name; every command opens it through here."""
    from store.open import open_store

    return open_store(store_url, home=home, create=create)
