"""The W&B path, tested at the API boundary: fake `wandb.Api` objects shaped like wandb 0.31's public API."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import REPORT_SWEEP_CONFIG
from report.build import build_report
from report.errors import ReportError
from report.wandb_source import WandbSource

PATH = "team/cifar/abc123"
CONFUSION_KEY = "test/confusion_matrix_table"


class FakeFile:
    def __init__(self, name: str, source: Path):
        self.name, self._source = name, source

    def download(self, root: str = ".", replace: bool = False, exist_ok: bool = False):
        target = Path(root) / self.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._source, target)
        return target.open()


class FakeRun:
    """Like wandb.apis.public.Run: attributes, summary mapping, scan_history(), files(names), file(name)."""

    def __init__(self, run_id: str, state: str, config: dict, history: list[dict], summary: dict,
                 files: dict[str, Path], created_at: str):
        self.id, self.state, self.created_at = run_id, state, created_at
        self.path = ["team", "cifar", run_id]
        # W&B adds its own keys; the source must drop them.
        self.config = {**config, "_wandb": {"cli_version": "0.31"}}
        self.summary = {**summary, "_runtime": 12.5, "_step": len(history)}
        self._history = [{**row, "_step": i, "_runtime": float(i), "_timestamp": 1.7e9 + i}
                         for i, row in enumerate(history)]
        self._files = files
        self.scanned = 0

    def scan_history(self, keys=None, page_size=1000):
        self.scanned += 1
        # W&B also has rows without our metrics, e.g. the one holding the confusion chart.
        yield from self._history
        yield {"_step": len(self._history), CONFUSION_KEY: {"_type": "table-file"}}

    def files(self, names=None):
        return [FakeFile(name, path) for name, path in self._files.items() if not names or name in names]

    def file(self, name: str):
        return FakeFile(name, self._files[name])


class FakeSweep:
    def __init__(self, config: dict, state: str, runs: list[FakeRun]):
        self.config, self.state, self.runs = config, state, runs
        self.created_at = "2026-01-02T03:04:05"


class FakeApi:
    def __init__(self, sweeps: dict[str, FakeSweep]):
        self.sweeps = sweeps
        self.requested: list[str] = []

    def sweep(self, path: str) -> FakeSweep:
        self.requested.append(path)
        if path not in self.sweeps:
            raise ValueError(f"Could not find sweep <Sweep {path} (not found)>")
        return self.sweeps[path]


def confusion_table(counts: list[list[int]], classes: list[str], folder: Path) -> Path:
    """The table JSON wandb.plot.confusion_matrix logs: one [actual, predicted, n] row per cell, n as float."""
    rows = [[classes[t], classes[p], float(n)] for t, row in enumerate(counts) for p, n in enumerate(row)]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "confusion.table.json"
    path.write_text(json.dumps({"columns": ["Actual", "Predicted", "nPredictions"], "data": rows}))
    return path


def fake_api(trained: list[dict], folder: Path, upload_files: bool = True) -> FakeApi:
    """The trained runs as our agents log them to W&B: epochs, scalar summary, confusion table; no matrix list."""
    runs = []
    for index, item in enumerate(trained):
        result = dict(item["result"])
        history = result.pop("history")
        table = confusion_table(result["confusion_matrix"], result["classes"], folder / item["id"])
        table_path = f"media/table/test/confusion_matrix_table_{index}.table.json"
        summary = {key: result[key] for key in ("model", "params", "total_seconds", "test_loss", "test_acc",
                                                "test_acc_tta", "status")}
        summary[CONFUSION_KEY] = {"_type": "table-file", "path": table_path, "ncols": 3, "nrows": 100}
        files = {table_path: table}
        if upload_files:
            files.update({name: Path(item["run_dir"]) / name
                          for name in ("augmented_samples.npz", "predictions.npz")})
        runs.append(FakeRun(item["id"], "finished", item["config"], history, summary, files,
                            f"2026-01-02T03:0{index + 5}:00"))
    runs.append(FakeRun("crashed1", "crashed", {"lr": 0.4, "optimizer": "sgd", "label_smoothing": 0.0},
                        [{"epoch": 1, "val_acc": 1.0}], {}, {}, "2026-01-02T03:09:00"))
    runs.append(FakeRun("live1", "running", {"lr": 0.3, "optimizer": "sgd", "label_smoothing": 0.0},
                        [{"epoch": 1, "val_acc": 0.05, "train_acc": 0.1}], {}, {}, "2026-01-02T03:10:00"))
    config = {**REPORT_SWEEP_CONFIG, "name": "tiny"}
    return FakeApi({PATH: FakeSweep(config, "RUNNING", runs)})


def test_runs_history_and_summary_become_records(trained_report_runs, tmp_path):
    api = fake_api(trained_report_runs, tmp_path / "remote")
    source = WandbSource(api=api, artifact_dir=tmp_path / "cache")

    sweep = source.get_sweep(PATH)
    assert (sweep.id, sweep.backend, sweep.state) == (PATH, "wandb", "running")
    assert sweep.config["metric"] == {"name": "val_acc", "goal": "maximize"}

    runs = {run.id: run for run in source.list_runs(PATH)}
    assert [runs[k].state for k in ("run0", "crashed1", "live1")] == ["finished", "crashed", "running"]
    first = runs["run0"]
    trained = trained_report_runs[0]
    assert first.config == trained["config"]  # W&B's _wandb key dropped
    assert first.history == trained["result"]["history"]  # _step/_runtime dropped, chart row skipped
    assert first.summary["confusion_matrix"] == trained["result"]["confusion_matrix"]
    assert first.summary["classes"] == trained["result"]["classes"]
    assert "_runtime" not in first.summary
    assert Path(first.run_dir, "augmented_samples.npz").read_bytes() == \
        Path(trained["run_dir"], "augmented_samples.npz").read_bytes()
    assert runs["live1"].run_dir is None
    assert runs["run0"].created_at < runs["run1"].created_at


def test_a_wandb_sweep_gives_the_same_report_as_the_store(trained_report_runs, tmp_path):
    api = fake_api(trained_report_runs, tmp_path / "remote")
    report = build_report(WandbSource(api=api, artifact_dir=tmp_path / "cache"), PATH, tmp_path / "report")
    best = max(trained_report_runs, key=lambda t: max(h["val_acc"] for h in t["result"]["history"]))
    assert report.best.id == best["id"]
    assert report.backend == "wandb"
    assert [r.id for r in report.unfinished] == ["live1"]
    assert "crashed1" not in [r.id for r in report.top_runs]
    assert all(f.path for f in report.figures), [f.skipped for f in report.figures if f.skipped]
    assert set(api.requested) == {PATH}


def test_runs_trained_here_use_their_local_artifact_folder(trained_report_runs, tmp_path):
    api = fake_api(trained_report_runs, tmp_path / "remote", upload_files=False)
    local_root = tmp_path / "store" / "wandb-runs"
    for item in trained_report_runs:
        shutil.copytree(item["run_dir"], local_root / "abc123" / item["id"])
    runs = WandbSource(api=api, artifact_dir=tmp_path / "cache", local_runs_root=local_root).list_runs(PATH)
    assert {r.id: r.run_dir for r in runs}["run0"] == str(local_root / "abc123" / "run0")


def test_without_any_artifact_files_only_the_sample_grid_is_skipped(trained_report_runs, tmp_path):
    api = fake_api(trained_report_runs, tmp_path / "remote", upload_files=False)
    report = build_report(WandbSource(api=api, artifact_dir=tmp_path / "cache"), PATH, tmp_path / "report")
    assert [f.key for f in report.figures if f.skipped] == ["augmented_samples"]


def test_unknown_wandb_sweep_and_malformed_paths_are_clear_errors(tmp_path):
    source = WandbSource(api=FakeApi({}), artifact_dir=tmp_path)
    with pytest.raises(ReportError, match="unknown W&B sweep 'team/cifar/nope'.*Could not find sweep"):
        source.get_sweep("team/cifar/nope")
    with pytest.raises(ReportError, match="entity/project/sweep_id"):
        source.get_sweep("cifar/nope")


def test_api_failures_while_reading_runs_become_one_clear_error(tmp_path):
    class BrokenRuns:
        def __iter__(self):
            raise ConnectionError("Max retries exceeded\nwith url: /graphql")

    api = FakeApi({PATH: FakeSweep({"metric": {"name": "val_acc"}}, "FINISHED", [])})
    api.sweeps[PATH].runs = BrokenRuns()
    with pytest.raises(ReportError, match=r"cannot read its runs \(Max retries exceeded with url: /graphql\)"):
        WandbSource(api=api, artifact_dir=tmp_path).list_runs(PATH)


def test_the_cli_sends_wandb_paths_to_wandb(tmp_path):
    from report.sources import StoreSource, open_source

    assert isinstance(open_source("local1", tmp_path), StoreSource)
    wandb_source = open_source(PATH, tmp_path)
    assert isinstance(wandb_source, WandbSource)
    assert wandb_source._local_runs_root == tmp_path / "wandb-runs"
