"""The rich tables `sweep report` prints."""

from __future__ import annotations

from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text

from report import format as fmt
from report.model import SweepReport


def report_view(report: SweepReport, out_dir: Path) -> Group:
    metric = report.metric.name
    best = report.best
    parts: list = []
    if report.unfinished:
        listed = ", ".join(f"{r.id} ({r.state}, {r.epochs} epochs)" for r in report.unfinished)
        parts.append(Text(f"sweep still running: {fmt.plural(len(report.unfinished), 'unfinished run')}: {listed}", style="yellow"))
    elif report.sweep_state == "running":
        parts.append(Text("sweep still running: more runs may follow", style="yellow"))
    if report.leader_unfinished:
        leader = report.leader_unfinished
        parts.append(Text(f"run {leader.id} ({leader.state}) ranks first with {metric} "
                          f"{fmt.score(leader.score, metric)} but has not finished", style="yellow"))

    summary = Table(title=f"Sweep {report.sweep_id}: best run {best.id} by {metric} ({report.metric.goal})",
                    show_header=False, title_justify="left")
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    for label, value in [
        ("model", report.best_model or fmt.MISSING),
        (f"{metric} (best epoch)", fmt.score(best.score, metric)),
        ("validation accuracy (last epoch)", fmt.percent(best.val_acc)),
        ("test accuracy", fmt.percent(best.test_acc)), ("test accuracy (TTA)", fmt.percent(best.test_acc_tta)),
        ("parameters", fmt.count(best.params)), ("epochs", str(best.epochs)),
        ("wall time", fmt.seconds(best.wall_seconds)),
    ] + [(f"config: {k}", fmt.setting(v)) for k, v in best.config.items()]:
        summary.add_row(label, value)
    parts.append(summary)

    states = Table(title=f"Runs by state ({report.run_count} in all; sweep {report.sweep_state})",
                   title_justify="left")
    for state in report.states:
        states.add_column(state, justify="right")
    states.add_row(*(str(n) for n in report.states.values()))
    parts.append(states)

    top = Table(title=f"Top runs by {metric}", title_justify="left")
    for column in ("#", "run", "state", metric, "test acc", "epochs", "wall time"):
        top.add_column(column, justify="right" if column not in ("run", "state") else "left")
    for name in report.parameters:
        top.add_column(name)
    for rank, row in enumerate(report.top_runs, start=1):
        top.add_row(str(rank), row.id, row.state, fmt.score(row.score, metric), fmt.percent(row.test_acc),
                    str(row.epochs), fmt.seconds(row.wall_seconds),
                    *(fmt.setting(row.config.get(n)) for n in report.parameters),
                    style="bold red" if row.id == best.id else None)
    parts.append(top)

    written = sum(1 for f in report.figures if f.path)
    parts.append(Text(f"{written} figures, report.html and report.md written to {out_dir}"))
    for entry in report.figures:
        if entry.skipped:
            parts.append(Text(f"not drawn: {entry.title}: {entry.skipped}", style="yellow"))
    return Group(*parts)
