"""`sweep report` end to end: a real sweep created and drained by `sweep agent` on tiny data, then reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from conftest import write_tiny_cifar
from sweep_cli import require_command

TINY_SWEEP = """\
method: grid
metric: {name: val_acc, goal: maximize}
parameters:
  model: {value: fast}
  lr: {values: [0.05, 0.3]}
  epochs: {value: 2}
  batch_size: {value: 32}
  train_size: {value: 32}
  val_size: {value: 20}
  tta: {value: 1}
  precision: {value: fp32}
"""
FIGURES = ["accuracy", "loss", "confusion_matrix", "class_distribution", "augmented_samples",
           "parallel_coordinates", "parameter_importance", "metric_vs_parameters"]


def sweep(env: dict[str, str], *args: str, ok: bool = True):
    result = CliRunner().invoke(app, list(args), env=env)
    if ok:
        assert result.exit_code == 0, f"sweep {' '.join(args)}: {result.output}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def drained(tmp_path_factory):
    """A two-run grid: reported once after one run (sweep still running), then drained and reported again."""
    for name in ("create", "agent", "status"):
        require_command(name)
    root = tmp_path_factory.mktemp("cli")
    env = {"SWEEP_HOME": str(root / "home"), "SWEEP_DATA_DIR": str(write_tiny_cifar(root / "data")),
           "WANDB_MODE": "disabled"}
    (root / "tiny.yaml").write_text(TINY_SWEEP)
    sweep_id = json.loads(sweep(env, "create", str(root / "tiny.yaml"), "--json").stdout)["id"]
    before_any_run = sweep(env, "report", sweep_id, "--out", str(root / "empty"), ok=False)

    sweep(env, "agent", sweep_id, "--count", "1", "--plain")
    partial = sweep(env, "report", sweep_id, "--out", str(root / "partial"))
    sweep(env, "agent", sweep_id, "--plain")
    status = json.loads(sweep(env, "status", sweep_id, "--json").stdout)
    final = json.loads(sweep(env, "report", sweep_id, "--out", str(root / "final"), "--json").stdout)
    table = sweep(env, "report", sweep_id, "--out", str(root / "again"))
    return dict(root=root, env=env, id=sweep_id, before_any_run=before_any_run, partial=partial, status=status,
                final=final, table=table)


def test_best_run_is_the_one_with_the_highest_validation_accuracy_in_status(drained):
    status, final = drained["status"], drained["final"]
    assert status["counts"] == {"finished": 2}
    best = max(status["runs"], key=lambda run: run["best_metric"])
    assert final["best_run"] == status["best_run"] == best["id"]


def test_json_lists_every_figure_and_both_documents_all_written(drained):
    out = drained["root"] / "final"
    assert drained["final"]["files"] == [str(out / f"{key}.png") for key in FIGURES] + [
        str(out / "report.html"), str(out / "report.md")]
    assert all(Path(path).stat().st_size > 0 for path in drained["final"]["files"])


def test_terminal_output_shows_best_run_states_and_top_runs(drained):
    text = drained["table"].stdout
    best = drained["final"]["best_run"]
    assert f"best run {best}" in text
    for label in ("test accuracy", "test accuracy (TTA)", "parameters", "wall time", "Runs by state",
                  "Top runs by val_acc", "report.html and report.md written to"):
        assert label in text


def test_figures_from_two_reports_of_one_store_are_identical(drained):
    root = drained["root"]
    for key in FIGURES:
        assert (root / "final" / f"{key}.png").read_bytes() == (root / "again" / f"{key}.png").read_bytes(), key


def test_a_sweep_still_running_is_reported_and_says_so(drained):
    text = drained["partial"].stdout
    assert "sweep still running" in text
    assert (drained["root"] / "partial" / "report.html").is_file()
    assert "still running" in (drained["root"] / "partial" / "report.html").read_text()


def test_no_finished_run_is_one_line_exit_2_and_nothing_written(drained):
    result = drained["before_any_run"]
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error:") and len(result.stderr.strip().splitlines()) == 1
    assert f"sweep {drained['id']} has no finished run" in result.stderr
    assert not (drained["root"] / "empty").exists()


def test_unknown_sweep_is_one_line_exit_2(drained, tmp_path):
    result = sweep(drained["env"], "report", "nosuchid", "--out", str(tmp_path / "r"), ok=False)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "no sweep 'nosuchid'" in result.stderr
    assert not (tmp_path / "r").exists()


def test_an_empty_store_is_a_clear_error(tmp_path):
    result = sweep({"SWEEP_HOME": str(tmp_path / "nowhere")}, "report", "abc", "--out", str(tmp_path / "r"),
                   ok=False)
    assert result.exit_code == 2
    assert "error:" in result.stderr and "does not exist" in result.stderr
