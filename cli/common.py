"""What every command shares: the consoles, the one-line error rule and the common options."""

from __future__ import annotations

import sys
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


# Every error type that is the user's input or the box, not a bug: (module, class). Looked up only among
# modules already imported (an error can only come from one), so catching them imports nothing: a bad
# sweep file is refused before torch or W&B's engine load.
KNOWN_ERRORS = (("data.cifar", "DataError"), ("model.registry", "BudgetError"),
                ("model.registry", "UnknownModelError"), ("train.config", "ConfigError"),
                ("train.checkpoint", "CheckpointError"), ("agent.launch", "GpuListError"),
                ("store.errors", "StoreError"), ("agent.sweep_file", "SweepConfigError"),
                ("agent.wandb_backend", "WandbBackendError"), ("agent.worker", "TrainFnError"),
                ("dashboard.errors", "DashboardError"), ("builtins", "FloatingPointError"),
                ("winner.errors", "WinnerError"))


def known_error(error: BaseException) -> bool:
    return any(isinstance(error, cls) for module, name in KNOWN_ERRORS
               if (cls := getattr(sys.modules.get(module), name, None)) is not None)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Known failures become one line on stderr and exit code 2, never a traceback."""
    try:
        yield
    except Exception as error:
        if not known_error(error):
            raise
        errors.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def open_store_for(store_url: str | None, home: Path | None, create: bool = False):
    """The store a command's --store/--home name; every command opens it through here."""
    from store.open import open_store

    return open_store(store_url, home=home, create=create)
