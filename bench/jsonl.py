"""Benchmark results as JSON lines: printed, and appended to a results file when one is named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def append_lines(out: Path | None, *lines: str) -> None:
    """Append each line to `out`, making its folder first; nothing when `out` is None."""
    if out is None or not lines:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as handle:
        handle.writelines(line + "\n" for line in lines)


def emit(row: dict[str, Any], out: Path | None) -> None:
    """Print `row` as one JSON line, and append it to `out`."""
    line = json.dumps(row)
    print(line, flush=True)
    append_lines(out, line)
