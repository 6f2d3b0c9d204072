"""The report folder from runs that really trained: every figure, HTML, Markdown; deterministic; atomic."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import MemorySource, report_records
from report.artifacts import confusion_counts
from report.build import build_report, written_files
from report.errors import ReportError

FIGURES = ["accuracy", "loss", "confusion_matrix", "class_distribution", "augmented_samples",
           "parallel_coordinates", "parameter_importance", "metric_vs_parameters"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def best_by_validation(runs) -> str:
    finished = [r for r in runs if r.state == "finished"]
    return max(finished, key=lambda r: max(h["val_acc"] for h in r.history)).id


@pytest.fixture(scope="module")
def built(trained_report_runs, tmp_path_factory):
    """The same store reported twice, into two folders, plus once more in place over the first."""
    source = MemorySource(*report_records(trained_report_runs))
    root = tmp_path_factory.mktemp("built")
    first = build_report(source, "swp1", root / "one")
    second = build_report(source, "swp1", root / "two")
    before_rebuild = {p.name: p.read_bytes() for p in (root / "one").iterdir()}
    build_report(source, "swp1", root / "one")
    return source, first, second, root, before_rebuild


def test_every_figure_html_and_markdown_are_written(built):
    source, report, _, root, _ = built
    out = root / "one"
    assert report.best.id == best_by_validation(source.runs)
    assert [f.key for f in report.figures] == FIGURES
    assert all(f.path and not f.skipped for f in report.figures)
    for key in FIGURES:
        assert (out / f"{key}.png").read_bytes().startswith(PNG_SIGNATURE)
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{k}.png" for k in FIGURES] + ["report.html",
                                                                                             "report.md"])
    assert written_files(report, out) == [out / f"{k}.png" for k in FIGURES] + [out / "report.html",
                                                                               out / "report.md"]
    assert not list(root.glob(".*partial*")), "scratch folder left behind"

    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == len(FIGURES)
    assert "http://" not in html and "https://" not in html and "<script" not in html
    markdown = (out / "report.md").read_text()
    assert all(f"]({key}.png)" in markdown for key in FIGURES)


def test_a_running_sweep_names_its_unfinished_runs_and_ignores_failed_ones(built):
    _, report, _, root, _ = built
    assert [r.id for r in report.unfinished] == ["running1"]
    assert report.leader_unfinished is not None and report.leader_unfinished.id == "running1"
    assert report.states == {"finished": 3, "running": 1, "failed": 1}
    assert "failed1" not in [r.id for r in report.top_runs]
    assert report.best.id != "failed1"  # its perfect score must not win
    html = (root / "one" / "report.html").read_text()
    assert "still running" in html and "running1 (running, 1 epochs)" in html
    assert "still running" in (root / "one" / "report.md").read_text().lower()


def test_figures_regenerated_from_the_same_store_are_byte_identical(built):
    _, first, second, root, _ = built
    assert first.model_dump() == second.model_dump()
    for entry in first.figures:
        assert (root / "one" / entry.path).read_bytes() == (root / "two" / entry.path).read_bytes(), entry.key
    assert (root / "one" / "report.html").read_bytes() == (root / "two" / "report.html").read_bytes()
    assert (root / "one" / "report.md").read_bytes() == (root / "two" / "report.md").read_bytes()


def test_rebuilding_in_place_gives_the_same_files(built):
    _, _, _, root, before_rebuild = built
    assert {p.name: p.read_bytes() for p in (root / "one").iterdir()} == before_rebuild


def test_missing_artifacts_skip_only_their_figure_and_say_why(trained_report_runs, tmp_path):
    sweep, runs = report_records(trained_report_runs, extra_states=False)
    runs = [r.model_copy(update={"run_dir": None}) for r in runs]
    report = build_report(MemorySource(sweep, runs), "swp1", tmp_path / "r")
    skipped = {f.key: f.skipped for f in report.figures if f.skipped}
    assert list(skipped) == ["augmented_samples"]
    assert "stored no augmented_samples.npz" in skipped["augmented_samples"]
    assert not (tmp_path / "r" / "augmented_samples.png").exists()
    assert "Not drawn: run" in (tmp_path / "r" / "report.html").read_text()


def test_confusion_matrix_falls_back_to_saved_predictions(trained_report_runs):
    _, runs = report_records(trained_report_runs, extra_states=False)
    for record in runs:
        without = record.model_copy(update={"summary": {k: v for k, v in record.summary.items()
                                                        if k != "confusion_matrix"}})
        rebuilt = confusion_counts(without)
        assert rebuilt.counts == record.summary["confusion_matrix"]
        assert rebuilt.classes == record.summary["classes"]


def test_a_corrupt_artifact_fails_with_one_message_and_leaves_the_old_report_untouched(built, trained_report_runs,
                                                                                        tmp_path):
    out = tmp_path / "r"
    shutil.copytree(built[3] / "two", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    sweep, runs = report_records(trained_report_runs, extra_states=False)
    broken = []
    for record in runs:
        copy = tmp_path / f"copy-{record.id}"
        shutil.copytree(record.run_dir, copy)
        (copy / "augmented_samples.npz").write_bytes(b"not a zip file")
        broken.append(record.model_copy(update={"run_dir": str(copy)}))
    with pytest.raises(ReportError, match="augmented_samples.npz: unreadable"):
        build_report(MemorySource(sweep, broken), "swp1", out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not list(tmp_path.glob(".*partial*"))


def test_a_sweep_with_no_finished_run_writes_nothing(trained_report_runs, tmp_path):
    sweep, runs = report_records(trained_report_runs)
    unfinished = [r for r in runs if r.state != "finished"]
    with pytest.raises(ReportError, match="no finished run"):
        build_report(MemorySource(sweep, unfinished), "swp1", tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_a_single_finished_run_still_gives_every_sweep_figure_or_a_reason(trained_report_runs, tmp_path):
    sweep, runs = report_records(trained_report_runs[:1], extra_states=False)
    report = build_report(MemorySource(sweep, runs), "swp1", tmp_path / "r")
    skipped = {f.key: f.skipped for f in report.figures if f.skipped}
    assert list(skipped) == ["parameter_importance"]
    assert "at least two runs" in skipped["parameter_importance"]
    assert Path(tmp_path / "r" / "parallel_coordinates.png").is_file()
