"""`sweep report ID`: summarize a sweep and regenerate its figures from stored runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from cli.common import HomeOption, StoreOption
from report.errors import ReportError

console = Console()
errors = Console(stderr=True)


def report(
    sweep_id: Annotated[str, typer.Argument(
        metavar="ID", help="Sweep id from `sweep create`; entity/project/id reads the sweep from W&B.")],
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Folder for the figures, report.html and report.md (default: reports/ID).")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print {best_run, files, over_seeds} as JSON for scripts.")] = False,
    home: HomeOption = None,
    store_url: StoreOption = None,
) -> None:
    """Best run, runs by state, top runs; the paper's figures and the sweep's panels as PNG, HTML and Markdown."""
    from report.build import build_report, written_files
    from report.sources import open_source
    from report.terminal import report_view

    out_dir = out if out is not None else Path("reports") / sweep_id.replace("/", "_")
    try:
        report = build_report(open_source(sweep_id, home, store_url), sweep_id, out_dir)
    except ReportError as error:
        errors.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    files = [str(path) for path in written_files(report, out_dir)]
    if as_json:
        over_seeds = [row.model_dump(mode="json") for row in report.over_seeds]  # [] unless seed is swept
        print(json.dumps({"best_run": report.best.id, "files": files, "over_seeds": over_seeds}, indent=2))
        return
    console.print(report_view(report, out_dir))
