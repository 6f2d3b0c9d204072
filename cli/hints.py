"""The next commands `sweep create` suggests, repeating the store options it was given."""

from __future__ import annotations

import shlex
from pathlib import Path


def store_args(home: Path | None, store_url: str | None) -> str:
    """' --home X --store URL' for the options that were given, quoted for a shell; '' when none were."""
    parts = []
    if store_url:
        parts += ["--store", store_url]
    if home is not None:
        parts += ["--home", str(home)]
    return "".join(f" {shlex.quote(part)}" for part in parts)


def next_steps(sweep_id: str, home: Path | None, store_url: str | None) -> list[tuple[str, str]]:
    """(command, what it does) for the commands a user runs next on this sweep."""
    options = store_args(home, store_url)
    quoted = shlex.quote(sweep_id)
    return [(f"sweep agent {quoted}{options}", "train its runs; start more agents to train more at once"),
            (f"sweep status {quoted}{options}", "runs by state and the best so far"),
            (f"sweep report {quoted}{options}", "figures, report.html and report.md")]


def next_step_lines(sweep_id: str, home: Path | None, store_url: str | None) -> list[str]:
    """The hints as aligned lines: '  sweep agent ID --home X   # what it does'."""
    steps = next_steps(sweep_id, home, store_url)
    width = max(len(command) for command, _ in steps)
    return [f"  {command.ljust(width)}  # {what}" for command, what in steps]
