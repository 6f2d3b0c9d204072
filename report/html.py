"""report.html: one self-contained page (images inlined as data: URIs, no scripts, no network)."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from report import format as fmt
from report.model import FigureEntry, RunRow, SweepReport

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0;
       background: #f5f6f8; color: #1d2330; }
main { max-width: 1320px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 28px 0 10px; border-bottom: 1px solid #d5d9e0; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 0 0 6px; }
.subtitle { color: #566074; margin: 0 0 14px; }
.notice { background: #fff6dd; border: 1px solid #e9c96a; border-radius: 6px; padding: 10px 14px; margin: 12px 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: 16px; }
.card { background: white; border: 1px solid #dde1e8; border-radius: 8px; padding: 14px 16px; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eceef2; vertical-align: top; }
th { background: #f0f2f5; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { background: #fdecec; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 16px; }
figure { margin: 0; background: white; border: 1px solid #dde1e8; border-radius: 8px; padding: 12px; }
figure.wide { grid-column: 1 / -1; }
figure img { display: block; max-width: 100%; height: auto; margin: 8px auto; }
figcaption { color: #566074; font-size: 13px; }
.skipped { color: #8a5a00; font-style: italic; }
details summary { cursor: pointer; color: #335; margin-top: 8px; }
code { font-size: 12.5px; }
"""
# Curves pair up side by side; the rest need the full width to stay legible.
PAIRED_FIGURES = {"accuracy", "loss"}


def render_html(report: SweepReport, figure_folder: Path) -> str:
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>Sweep {escape(report.sweep_id)} report</title>", f"<style>{STYLE}</style>", "</head>",
        "<body><main>",
        f"<h1>Sweep {escape(report.sweep_id)}</h1>",
        f'<p class="subtitle">{escape(_subtitle(report))}</p>',
        *_notices(report),
        '<div class="cards">',
        _card("Best run", _best_table(report)),
        _card("Best configuration", _config_table(report)),
        _card("Runs by state", _states_table(report)),
        "</div>",
        "<h2>Top runs</h2>", _runs_table(report.top_runs, report),
        *_over_seeds_section(report),
        *_importance_section(report),
        "<h2>Figures</h2>", '<div class="figures">',
        *(_figure(entry, figure_folder) for entry in report.figures),
        "</div>", "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _subtitle(report: SweepReport) -> str:
    return (f"{report.backend} sweep, {report.method} search, {report.metric.goal} {report.metric.name}; "
            f"sweep state: {report.sweep_state}; {report.run_count} runs")


def _notices(report: SweepReport) -> list[str]:
    notices = []
    if report.unfinished:
        listed = ", ".join(f"{r.id} ({r.state}, {r.epochs} epochs)" for r in report.unfinished)
        notices.append(f"The sweep is still running: {fmt.plural(len(report.unfinished), 'unfinished run')}: {listed}. "
                       "Figures and tables show the runs as stored now.")
    elif report.sweep_state == "running":
        notices.append("The sweep is still running: more runs may follow.")
    if report.leader_unfinished:
        leader = report.leader_unfinished
        notices.append(f"Run {leader.id} ({leader.state}) currently ranks first with {report.metric.name} "
                       f"{fmt.score(leader.score, report.metric.name)}, but has not finished; "
                       f"the best finished run is {report.best.id}.")
    return [f'<div class="notice">{escape(text)}</div>' for text in notices]


def _card(title: str, body: str) -> str:
    return f'<section class="card"><h3>{escape(title)}</h3>{body}</section>'


def _key_values(rows: list[tuple[str, str]]) -> str:
    cells = "".join(f'<tr><th>{escape(k)}</th><td class="num">{escape(v)}</td></tr>' for k, v in rows)
    return f"<table>{cells}</table>"


def _best_table(report: SweepReport) -> str:
    best = report.best
    return _key_values([
        ("run", best.id), ("model", report.best_model or fmt.MISSING),
        (f"{report.metric.name} (best epoch)", fmt.score(best.score, report.metric.name)),
        ("validation accuracy (last epoch)", fmt.percent(best.val_acc)),
        ("test accuracy", fmt.percent(best.test_acc)),
        ("test accuracy with TTA", fmt.percent(best.test_acc_tta)),
        ("parameters", fmt.count(best.params)), ("epochs", str(best.epochs)),
        ("wall time", fmt.seconds(best.wall_seconds)),
    ])


def _config_table(report: SweepReport) -> str:
    chosen = _key_values([(k, fmt.setting(v)) for k, v in report.best.config.items()])
    everything = _key_values([(k, fmt.setting(v)) for k, v in report.best_full_config.items()])
    return f"{chosen}<details><summary>every training setting</summary>{everything}</details>"


def _states_table(report: SweepReport) -> str:
    return _key_values([(state, str(n)) for state, n in report.states.items()] + [("total", str(report.run_count))])


def _runs_table(rows: list[RunRow], report: SweepReport) -> str:
    names = report.parameters
    head = ("<tr><th class=num>#</th><th>run</th><th>state</th>"
            f"<th class=num>{escape(report.metric.name)}</th><th class=num>test acc</th>"
            "<th class=num>test acc TTA</th><th class=num>epochs</th><th class=num>wall time</th>"
            + "".join(f"<th>{escape(n)}</th>" for n in names) + "</tr>")
    body = []
    for rank, row in enumerate(rows, start=1):
        css = ' class="best"' if row.id == report.best.id else ""
        cells = [str(rank), row.id, row.state, fmt.score(row.score, report.metric.name), fmt.percent(row.test_acc),
                 fmt.percent(row.test_acc_tta), str(row.epochs), fmt.seconds(row.wall_seconds)]
        numeric = {0, 3, 4, 5, 6, 7}
        tds = "".join(f'<td class="num">{escape(c)}</td>' if i in numeric else f"<td>{escape(c)}</td>"
                      for i, c in enumerate(cells))
        tds += "".join(f"<td>{escape(fmt.setting(row.config.get(n)))}</td>" for n in names)
        body.append(f"<tr{css}>{tds}</tr>")
    return f'<div class="card"><table>{head}{"".join(body)}</table></div>'


def _over_seeds_section(report: SweepReport) -> list[str]:
    if not report.over_seeds:
        return []
    metric = report.metric.name
    head = (f"<tr><th class=num>#</th><th>setting</th><th>seeds</th><th class=num>mean {escape(metric)}</th>"
            "<th class=num>range</th><th class=num>mean test acc TTA</th></tr>")
    rows = "".join(
        f'<tr><td class="num">{rank}</td><td>{escape(fmt.setting_label(r.setting))}</td>'
        f"<td>{escape(fmt.seed_list(r.seeds))}</td><td class=\"num\">{escape(fmt.score(r.score_mean, metric))}</td>"
        f'<td class="num">{escape(fmt.score_range(r.score_min, r.score_max, metric))}</td>'
        f'<td class="num">{escape(fmt.percent(r.test_acc_tta_mean))}</td></tr>'
        for rank, r in enumerate(report.over_seeds, start=1))
    return ["<h2>Settings over seeds</h2>",
            f'<p class="subtitle">Each setting of the other swept parameters, its finished runs pooled over their '
            f"seeds; best mean {escape(metric)} first. Test accuracy is reported only.</p>",
            f'<div class="card"><table>{head}{rows}</table></div>']


def _importance_section(report: SweepReport) -> list[str]:
    if not report.influence:
        return []
    rows = "".join(f'<tr><td>{escape(r.name)}</td><td class="num">{r.importance:.3f}</td>'
                   f'<td class="num">{r.correlation:+.3f}</td></tr>' for r in report.influence)
    head = "<tr><th>parameter</th><th class=num>importance</th><th class=num>correlation</th></tr>"
    return [f"<h2>Parameter importance for {escape(report.metric.name)}</h2>",
            f'<div class="card"><table>{head}{rows}</table></div>']


def _figure(entry: FigureEntry, folder: Path) -> str:
    css = "" if entry.key in PAIRED_FIGURES else ' class="wide"'
    title = f"<h3>{escape(entry.title)}</h3>"
    if entry.path is None:
        return (f"<figure{css}>{title}<p class=\"skipped\">Not drawn: {escape(entry.skipped or '')}</p>"
                f"<figcaption>{escape(entry.caption)}</figcaption></figure>")
    data = base64.b64encode((folder / entry.path).read_bytes()).decode("ascii")
    return (f'<figure{css} id="{escape(entry.key)}">{title}'
            f'<img src="data:image/png;base64,{data}" alt="{escape(entry.title)}">'
            f"<figcaption>{escape(entry.caption)}</figcaption></figure>")
