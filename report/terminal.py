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

    parts.append(Text(f"Sweep {report.sweep_id} ({report.backend}, {report.method}, {report.metric.goal} {metric}, "
                      f"{report.sweep_state}): best run {best.id}", style="bold"))
    summary = Table(show_header=False)
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

    states = Table(title="Runs by state", title_justify="left")
    states.add_column("state")
    states.add_column("runs", justify="right")
    for state, n in report.states.items():
        states.add_row(state, str(n))
    states.add_row("total", str(report.run_count), style="bold")
    parts.append(states)

    # One wrapped config column keeps the table readable in an 80-column terminal.
    top = Table(title=f"Top runs by {metric}", title_justify="left")
    for column in ("#", "run", "state", metric, "test acc", "epochs", "config"):
        top.add_column(column, justify="left" if column in ("run", "state", "config") else "right",
                       no_wrap=column != "config")
    for rank, row in enumerate(report.top_runs, start=1):
        top.add_row(str(rank), row.id, row.state, fmt.score(row.score, metric), fmt.percent(row.test_acc),
                    str(row.epochs), fmt.compact_config(row.config),
                    style="bold red" if row.id == best.id else None)
    parts.append(top)
    if report.over_seeds:
        parts.append(_over_seeds_table(report))

    written = sum(1 for f in report.figures if f.path)
    parts.append(Text(f"{written} figures, report.html and report.md written to {out_dir}"))
    for entry in report.figures:
        if entry.skipped:
            parts.append(Text(f"not drawn: {entry.title}: {entry.skipped}", style="yellow"))
    return Group(*parts)


def _over_seeds_table(report: SweepReport) -> Table:
    metric = report.metric.name
    table = Table(title=f"Settings over seeds: mean {metric} of their finished runs", title_justify="left")
    for column in ("#", "setting", "seeds", f"mean {metric}", "range", "mean test TTA"):
        # 16 characters hold one `key=value` of the usual switches; longer settings wrap at their commas.
        table.add_column(column, justify="left" if column in ("setting", "seeds") else "right",
                         no_wrap=column not in ("setting", "seeds"), min_width=16 if column == "setting" else None,
                         overflow="fold")
    for rank, row in enumerate(report.over_seeds, start=1):
        table.add_row(str(rank), fmt.setting_label(row.setting), fmt.seed_list(row.seeds),
                      fmt.score(row.score_mean, metric), fmt.score_range(row.score_min, row.score_max, metric),
                      fmt.percent(row.test_acc_tta_mean))
    return table
