"""What every command shares in its surface: `-h`, `--version`, flags shown as flags, plurals."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path
from typing import Annotated

import typer
import typer.core

# `sweep -h` as well as `sweep --help`, on the app and every command (click passes it down).
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}
DISTRIBUTION = "cifar-sweep"
CHECKOUT = Path(__file__).resolve().parents[1]


def plural(count: int, word: str, many: str | None = None) -> str:
    """'1 run', '2 runs', '0 runs'."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def version_text() -> str:
    """'sweep 0.1.0 (git 46ed1f0)': the installed version, and the commit when run from a git checkout."""
    try:
        version = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        version = "unknown (not installed)"
    commit = _git_commit()
    return f"sweep {version}" + (f" (git {commit})" if commit else "")


def _git_commit() -> str | None:
    if not (CHECKOUT / ".git").exists():  # an installed copy outside a checkout has no commit to show
        return None
    try:
        done = subprocess.run(["git", "-C", str(CHECKOUT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip() if done.returncode == 0 else ""
    return commit or None


def version_callback(value: bool) -> None:
    if value:
        print(version_text())
        raise typer.Exit()


VersionOption = Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True,
                                             help="Print the version (and git commit) and exit.")]


def show_flags_as_flags() -> None:
    """typer 0.29's rich help prints a type after every option, flags included (`--json <bool>`), though a
    flag takes no value; its plain help does not. Show flags the plain way: no type."""
    original = typer.core.TyperOption.display_type_rich
    if getattr(original, "flags_fixed", False):
        return

    def display_type_rich(self: typer.core.TyperOption, ctx: typer.core._click.Context) -> str | None:
        return None if self.is_flag else original(self, ctx)

    display_type_rich.flags_fixed = True  # type: ignore[attr-defined]
    typer.core.TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
