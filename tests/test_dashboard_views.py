"""What the dashboard's endpoints send, on a real SQLite store: live updates read only changes, the panels
are the report's own, and every value is valid JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from dashboard import views
from dashboard.app import create_app
from dashboard.live import SweepView, Views
from dashboard.security import access_for
from dashboard_runs import SWEEP_CONFIG, add_epochs, add_run, epoch_metrics, open_store, start_run
from report.summary import summarize
from store.records import RunRecord


class Recording:
    """The real store, noting which of its methods the dashboard calls."""

    def __init__(self, store) -> None:
        self.store, self.calls = store, []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.store, name)
        if callable(attribute):
            def call(*args, **kwargs):
                self.calls.append(name)
                return attribute(*args, **kwargs)
            return call
        return attribute


@pytest.fixture
def store(tmp_path: Path):
    opened = open_store(tmp_path / "home")
    yield opened
    opened.close()


def test_live_updates_ask_the_store_only_what_changed(store) -> None:
    import random

    sweep = store.create_sweep(SWEEP_CONFIG)
    leases = [add_run(store, sweep.id, {"lr": 0.05 * (i + 1), "optimizer": "sgd", "epochs": 30}, epochs=20,
                      state="running", seed=i) for i in range(5)]
    recording = Recording(store)
    view = SweepView(recording, sweep.id)
    snapshot = views.snapshot_json(view)
    assert len(snapshot["runs"]) == 5 and all(len(h["epoch"]) == 20 for h in snapshot["histories"].values())

    recording.calls.clear()
    add_epochs(store, leases[2], [epoch_metrics(21, 0.15, random.Random(1))])
    update = views.update_json(view.update_since(snapshot["cursor"]))
    assert recording.calls == ["changes"]  # one query, however many runs the sweep holds
    assert [(e["run"], e["epoch"]) for e in update["epochs"]] == [(leases[2].run_id, 21)]
    assert [r["id"] for r in update["runs"]] == [leases[2].run_id]
    assert update["runs"][0]["epochs"] == 21  # the row is re-scored with its whole history
    assert update["cursor"] > snapshot["cursor"]

    recording.calls.clear()
    quiet = views.update_json(view.update_since(update["cursor"]))
    assert recording.calls == ["changes"] and quiet["epochs"] == [] and quiet["runs"] == []


def test_a_client_that_is_behind_gets_every_epoch_it_missed(store) -> None:
    import random

    sweep = store.create_sweep(SWEEP_CONFIG)
    lease = add_run(store, sweep.id, {"lr": 0.1, "optimizer": "sgd", "epochs": 30}, epochs=1, state="running")
    view = Views(store).get(sweep.id)
    first = view.cursor
    add_epochs(store, lease, [epoch_metrics(2, 0.1, random.Random(0))])
    middle = view.update_since(first).cursor  # another browser's poll moved the view on
    add_epochs(store, lease, [epoch_metrics(3, 0.1, random.Random(0))])
    fresh = start_run(store, sweep.id, {"lr": 0.2, "optimizer": "nesterov", "epochs": 30})
    behind = view.update_since(first)
    assert sorted(e.epoch for e in behind.epochs if e.run_id == lease.run_id)[-2:] == [2, 3]
    assert {r.id for r in behind.runs} >= {lease.run_id, fresh.run_id}
    assert [e.epoch for e in view.update_since(middle).epochs] == [3]


def test_the_sweep_panels_are_the_reports(store) -> None:
    sweep = store.create_sweep(SWEEP_CONFIG)
    for i, (lr, optimizer) in enumerate(((0.3, "nesterov"), (0.05, "sgd"), (0.12, "nesterov"), (0.2, "sgd"))):
        add_run(store, sweep.id, {"lr": lr, "optimizer": optimizer, "epochs": 30}, epochs=5, seed=i)
    add_run(store, sweep.id, {"lr": 0.5, "optimizer": "sgd", "epochs": 30}, epochs=3, state="running", seed=9)
    records = store.list_runs(sweep.id)
    report = summarize(store.get_sweep(sweep.id), records)
    panels = views.panels_json(store.get_sweep(sweep.id), records, store.run_path)
    assert panels["best_id"] == report.best.id
    assert [(row["name"], row["importance"]) for row in panels["importance"]] == \
        [(row.name, row.importance) for row in report.influence]
    assert panels["confusion"]["classes"][0] == "airplane"
    assert sorted(panels["parallel"]["run_ids"]) == sorted(r.id for r in records)  # the running run is scored too
    json.dumps(panels, allow_nan=False)


def test_markup_and_missing_values_leave_as_valid_json(store) -> None:
    config = dict(SWEEP_CONFIG, name="<b>x</b></script>")
    sweep = store.create_sweep(config)
    lease = start_run(store, sweep.id, {"lr": 0.1, "optimizer": "<i>sgd</i>"})
    add_epochs(store, lease, [{"epoch": 1, "train_loss": 2.0, "val_acc": None, "lr": 0.1}])
    app = TestClient(create_app(store, access_for("127.0.0.1", 8080)), base_url="http://127.0.0.1")
    for path in ("/api/sweeps", f"/api/sweeps/{sweep.id}", f"/api/sweeps/{sweep.id}/changes?since=0",
                 f"/api/sweeps/{sweep.id}/panels", f"/api/runs/{lease.run_id}"):
        response = app.get(path)
        assert response.status_code == 200, (path, response.text)
        json.loads(response.text, parse_constant=lambda c: pytest.fail(f"{path} sent {c}"))
    snapshot = app.get(f"/api/sweeps/{sweep.id}").json()
    assert snapshot["sweep"]["name"] == "<b>x</b></script>"
    assert snapshot["runs"][0]["config"]["optimizer"] == "<i>sgd</i>"
    assert snapshot["histories"][lease.run_id]["values"]["val_acc"] == [None]


def test_non_finite_numbers_from_any_source_become_null() -> None:
    """The SQL stores refuse NaN, but records also come from W&B's API and older stores."""
    run = RunRecord(id="r", sweep_id="s", state="failed", config={"lr": float("nan")}, created_at=0.0,
                    history=[{"epoch": 1, "train_loss": float("nan"), "val_acc": float("inf"), "lr": 0.1}])
    columns = views.history_columns(run)
    assert columns["values"] == {"train_loss": [None], "val_acc": [None], "lr": [0.1]}
    assert views.clean({"a": float("nan"), "b": [float("-inf"), 1.5], "c": "text"}) == \
        {"a": None, "b": [None, 1.5], "c": "text"}
    json.dumps(views.run_json(run, None, []), allow_nan=False)


def test_the_sweeps_page_best_is_the_stores_best_run(store) -> None:
    from report.select import sweep_metric
    from store.records import best_run

    sweep = store.create_sweep(SWEEP_CONFIG)
    for i, state in enumerate(("finished", "failed", "running", "finished", "crashed")):
        add_run(store, sweep.id, {"lr": 0.1 + 0.1 * i, "optimizer": "sgd", "epochs": 30}, epochs=3 + i,
                state=state, seed=i)
    runs = store.list_runs(sweep.id)
    metric = sweep_metric(store.get_sweep(sweep.id))
    listing = views.listing_json(Views(store).get(sweep.id))
    expected, value = best_run(runs, metric.name, metric.goal)
    assert listing["best"] == {"run": expected.id, "value": value}
    assert listing["counts"] == {"running": 1, "crashed": 1, "failed": 1, "finished": 2}


def test_the_run_page_names_its_checkpoint_inside_the_run_folder_and_tables_the_classes(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "s" / "r"
    summary = {"checkpoint": str(folder / "attempt-1" / "checkpoint-0003.pt"), "test_acc": 0.9,
               "classes": ["cat", "dog"], "per_class_acc": [0.8, 1.0], "predicted_counts": [4, 6],
               "true_counts": [5, 5]}
    run = RunRecord(id="r", sweep_id="s", state="finished", config={}, created_at=0.0, summary=summary)
    sweep = open_store(tmp_path / "home").create_sweep(SWEEP_CONFIG)
    page = views.run_page_json(sweep, run, [], [], folder)
    assert page["summary"] == {"checkpoint": "attempt-1/checkpoint-0003.pt", "test_acc": 0.9}
    assert page["per_class"] == [{"class": "cat", "test_acc": 0.8, "predicted": 4, "images": 5},
                                 {"class": "dog", "test_acc": 1.0, "predicted": 6, "images": 5}]
    as_recorded = dict(summary, checkpoint="s/r/attempt-2/checkpoint-0004.pt")  # relative to the artifact root
    root = tmp_path / "runs"
    page = views.run_page_json(sweep, run.model_copy(update={"summary": as_recorded}), [], [], folder, root)
    assert page["summary"]["checkpoint"] == "attempt-2/checkpoint-0004.pt"
    elsewhere = dict(summary, checkpoint="/mnt/other/checkpoint-0003.pt", per_class_acc=[0.8])  # lengths differ
    page = views.run_page_json(sweep, run.model_copy(update={"summary": elsewhere}), [], [], folder, root)
    assert page["summary"]["checkpoint"] == "/mnt/other/checkpoint-0003.pt"
    assert page["per_class"] == [] and page["summary"]["per_class_acc"] == [0.8]


def test_unknown_sweeps_and_runs_are_404_pages(store) -> None:
    store.create_sweep(SWEEP_CONFIG)
    app = TestClient(create_app(store, access_for("127.0.0.1", 8080)), base_url="http://127.0.0.1")
    for path in ("/sweeps/nosuch", "/runs/nosuch", "/api/sweeps/nosuch", "/api/sweeps/nosuch/changes",
                 "/api/runs/nosuch", "/runs/nosuch/artifacts/x"):
        assert app.get(path).status_code == 404, path
