"""A sweep that lists `seed` among its parameters: its report pools each setting over its seeds."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from report.html import render_html
from report.markdown import render_markdown
from report.summary import summarize
from report.terminal import report_view
from store.records import RunRecord, SweepRecord

GRID = {"method": "grid", "metric": {"name": "val_acc", "goal": "maximize"},
        "parameters": {"model": {"value": "fast"}, "activation": {"values": ["gelu", "silu"]},
                       "seed": {"values": [0, 1, 2]}}}


def run(run_id: str, activation: str | None, seed: int, val: list[float], state: str = "finished",
        tta: float | None = None, created: float = 0.0) -> RunRecord:
    config = {"model": "fast", "seed": seed} | ({"activation": activation} if activation else {})
    summary = {"test_acc_tta": tta} if tta is not None else {}
    history = [{"epoch": i + 1, "val_acc": v} for i, v in enumerate(val)]
    return RunRecord(id=run_id, sweep_id="s", state=state, config=config, history=history, summary=summary,
                     created_at=created)


def grid_runs() -> list[RunRecord]:
    return [
        # gelu: its luckiest seed is the sweep's best single run, but silu is better on average.
        run("g0", "gelu", 0, [0.95, 0.80], tta=0.93, created=1), run("g1", "gelu", 1, [0.85], tta=0.90, created=2),
        run("g2", "gelu", 2, [0.84], tta=0.89, created=3),
        run("s0", "silu", 0, [0.90], tta=0.92, created=4), run("s1", "silu", 1, [0.91], tta=0.93, created=5),
        # Neither counts: an unfinished run's setting is not complete, a failed one is no training.
        run("s2", "silu", 2, [0.99], state="running", created=6),
        run("s2x", "silu", 2, [0.99], state="failed", created=7),
    ]


def test_each_setting_is_the_mean_and_range_of_its_finished_seeds_best_mean_first():
    report = summarize(SweepRecord(id="s", config=GRID, created_at=0.0), grid_runs())
    assert report.best.id == "g0"  # a single run is still ranked as the engine ranks it
    silu, gelu = report.over_seeds
    assert silu.setting == {"activation": "silu"} and silu.seeds == [0, 1]
    assert silu.score_mean == pytest.approx(0.905)
    assert (silu.score_min, silu.score_max) == pytest.approx((0.90, 0.91))
    assert silu.test_acc_tta_mean == pytest.approx(0.925)
    assert gelu.setting == {"activation": "gelu"} and gelu.seeds == [0, 1, 2]
    # Each run counts with its best epoch, as the engine scores it: 0.95 for g0, not its last 0.80.
    assert gelu.score_mean == pytest.approx((0.95 + 0.85 + 0.84) / 3)
    assert gelu.test_acc_tta_mean == pytest.approx((0.93 + 0.90 + 0.89) / 3)


def test_a_mean_test_accuracy_is_given_only_when_every_pooled_run_has_one():
    runs = [run("a", "gelu", 0, [0.8], tta=0.9), run("b", "gelu", 1, [0.7])]
    (row,) = summarize(SweepRecord(id="s", config=GRID, created_at=0.0), runs).over_seeds
    assert row.score_mean == pytest.approx(0.75)
    assert row.test_acc_tta_mean is None


def test_minimize_puts_the_lowest_mean_first():
    config = GRID | {"metric": {"name": "val_acc", "goal": "minimize"}}
    report = summarize(SweepRecord(id="s", config=config, created_at=0.0), grid_runs())
    assert [row.setting["activation"] for row in report.over_seeds] == ["gelu", "silu"]
    assert report.over_seeds[0].score_mean == pytest.approx((0.80 + 0.85 + 0.84) / 3)


def test_seed_as_the_only_swept_parameter_gives_one_row_and_no_seed_gives_none():
    only_seed = {**GRID, "parameters": {"model": {"value": "fast"}, "seed": {"values": [0, 1]}}}
    runs = [run("a", None, 0, [0.8]), run("b", None, 1, [0.6])]
    report = summarize(SweepRecord(id="s", config=only_seed, created_at=0.0), runs)
    (row,) = report.over_seeds
    assert row.setting == {} and row.seeds == [0, 1] and row.score_mean == pytest.approx(0.7)
    assert "| 1 | (only the seed is swept) | 0, 1 | 70.00% |" in render_markdown(report)
    no_seed = {**GRID, "parameters": {"activation": {"values": ["gelu", "silu"]}}}
    assert summarize(SweepRecord(id="s", config=no_seed, created_at=0.0), runs).over_seeds == []


def test_terminal_markdown_and_html_show_the_pooled_rows(tmp_path):
    report = summarize(SweepRecord(id="s", config=GRID, created_at=0.0), grid_runs())
    markdown = render_markdown(report)
    assert "## Settings over seeds" in markdown
    assert "| 1 | activation=silu | 0, 1 | 90.50% | 90.00%–91.00% | 92.50% |" in markdown
    assert "| 2 | activation=gelu | 0, 1, 2 | 88.00% | 84.00%–95.00% | 90.67% |" in markdown
    html = render_html(report, tmp_path)
    assert "<h2>Settings over seeds</h2>" in html
    assert html.index("activation=silu</td>") < html.index("activation=gelu</td>")
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(report_view(report, tmp_path))
    text = console.file.getvalue()
    assert "Settings over seeds: mean val_acc of their finished runs" in text
    assert "activation=silu" in text and "90.00%–91.00%" in text
