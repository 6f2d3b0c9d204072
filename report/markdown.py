"""report.md: the same report as Markdown, images referenced next to it."""

from __future__ import annotations

from report import format as fmt
from report.model import SweepReport


def render_markdown(report: SweepReport) -> str:
    metric = report.metric.name
    best = report.best
    lines = [
        f"# Sweep {report.sweep_id}", "",
        f"{report.backend} sweep, {report.method} search, {report.metric.goal} `{metric}`; "
        f"sweep state: {report.sweep_state}; {report.run_count} runs.", "",
    ]
    if report.unfinished:
        listed = ", ".join(f"{r.id} ({r.state}, {r.epochs} epochs)" for r in report.unfinished)
        lines += [f"> **Still running:** {fmt.plural(len(report.unfinished), 'unfinished run')}: {listed}.", ""]
    if report.leader_unfinished:
        leader = report.leader_unfinished
        lines += [f"> Run {leader.id} ({leader.state}) currently ranks first with {metric} "
                  f"{fmt.score(leader.score, metric)} but has not finished.", ""]
    lines += ["## Best run", "", "| | |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in [
        ("run", best.id), ("model", report.best_model or fmt.MISSING),
        (f"{metric} (best epoch)", fmt.score(best.score, metric)),
        ("validation accuracy (last epoch)", fmt.percent(best.val_acc)),
        ("test accuracy", fmt.percent(best.test_acc)), ("test accuracy with TTA", fmt.percent(best.test_acc_tta)),
        ("parameters", fmt.count(best.params)), ("epochs", str(best.epochs)),
        ("wall time", fmt.seconds(best.wall_seconds)),
    ]]
    lines += ["", "Configuration: " + (fmt.compact_config(best.config) or fmt.MISSING), ""]
    lines += ["## Runs by state", "", "| state | runs |", "|---|---:|"]
    lines += [f"| {state} | {n} |" for state, n in report.states.items()]
    lines += ["", "## Top runs", "", f"| # | run | state | {metric} | test acc | epochs | configuration |",
              "|---:|---|---|---:|---:|---:|---|"]
    lines += [f"| {i} | {r.id} | {r.state} | {fmt.score(r.score, metric)} | {fmt.percent(r.test_acc)} | "
              f"{r.epochs} | {fmt.compact_config(r.config)} |" for i, r in enumerate(report.top_runs, start=1)]
    if report.over_seeds:
        lines += ["", "## Settings over seeds", "",
                  f"Each setting of the other swept parameters, its finished runs pooled over their seeds; "
                  f"best mean `{metric}` first. Test accuracy is reported only.", "",
                  f"| # | setting | seeds | mean {metric} | range | mean test acc TTA |", "|---:|---|---|---:|---:|---:|"]
        lines += [f"| {i} | {fmt.setting_label(r.setting)} | {fmt.seed_list(r.seeds)} | "
                  f"{fmt.score(r.score_mean, metric)} | {fmt.score_range(r.score_min, r.score_max, metric)} | "
                  f"{fmt.percent(r.test_acc_tta_mean)} |" for i, r in enumerate(report.over_seeds, start=1)]
    if report.influence:
        lines += ["", f"## Parameter importance for {metric}", "", "| parameter | importance | correlation |",
                  "|---|---:|---:|"]
        lines += [f"| {r.name} | {r.importance:.3f} | {r.correlation:+.3f} |" for r in report.influence]
    lines += ["", "## Figures", ""]
    for entry in report.figures:
        lines += [f"### {entry.title}", ""]
        lines += [f"![{entry.title}]({entry.path})" if entry.path else f"*Not drawn: {entry.skipped}*", ""]
        lines += [entry.caption, ""]
    return "\n".join(lines)
