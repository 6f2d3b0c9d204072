"""What each page and endpoint sends, as plain JSON-ready dicts built from store records.

Scores, ranks and panels come from the same functions `sweep status` and `sweep report` use
(store.records, report.select, report.panels). Every number is finite or null: JSON has no NaN.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.sweep_config import grid_size
from report.errors import ReportError
from report.panels import SweepPanels, sweep_panels
from report.parameters import SweptParameter, parameter_value, swept_parameters
from report.select import Metric, run_score, sweep_metric
from report.summary import run_row
from store import records
from store.records import RUN_STATES, Attempt, EpochRow, RunRecord, SweepRecord
from dashboard.live import SweepView, Update

# Curves a user is likely to want first; any other numeric key a run logs is offered after these.
CURVE_ORDER = ("val_acc", "val_loss", "train_acc", "train_loss", "lr", "epoch_seconds", "images_per_second")
TERMINAL_STATES = frozenset({"finished", "failed", "killed"})


def finite(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return None


def clean(value: Any) -> Any:
    """Any JSON-like value with NaN and infinities replaced by null (user configs may hold them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def metric_of(sweep: SweepRecord) -> Metric | None:
    try:
        return sweep_metric(sweep)
    except ReportError:
        return None


def best_row(rows: list[dict[str, Any]], metric: Metric | None) -> dict[str, Any] | None:
    """store.records.best_run over run rows that carry their score: not failed or crashed, the best
    score in the goal's direction, the earliest run on a tie."""
    if metric is None:
        return None
    scored = [row for row in sorted(rows, key=lambda r: (r["created_at"], r["seq"]))
              if row["state"] not in records.BROKEN_STATES and row["score"] is not None]
    if not scored:
        return None
    pick = max if metric.goal == "maximize" else min
    return pick(scored, key=lambda row: row["score"])  # max and min keep the first of equal keys


def sweep_json(sweep: SweepRecord, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One line of the sweeps page: state, method, metric, best value, runs by state, grid progress."""
    metric = metric_of(sweep)
    best = best_row(rows, metric)
    counts = Counter(row["state"] for row in rows)
    total = grid_size(sweep.config) if sweep.backend == "local" else None
    return {
        "id": sweep.id, "name": clean(sweep.config.get("name")), "backend": sweep.backend, "state": sweep.state,
        "state_reason": sweep.state_reason, "method": clean(sweep.config.get("method", "?")),
        "metric": metric.model_dump() if metric else None,
        "best": {"run": best["id"], "value": best["score"]} if best else None,
        "runs": len(rows), "counts": {state: counts[state] for state in RUN_STATES if counts[state]},
        "grid": {"done": sum(counts[s] for s in TERMINAL_STATES), "total": total} if total is not None else None,
        "created_at": sweep.created_at,
    }


def run_json(run: RunRecord, metric: Metric | None, parameters: list[SweptParameter]) -> dict[str, Any]:
    """One row of the runs table (the report's RunRow, plus what the dashboard shows besides)."""
    names = [p.name for p in parameters]
    row = run_row(run, run_score(run, metric) if metric else None, names)
    return clean(row.model_dump() | {
        "seq": run.seq, "failure": run.failure, "attempts": run.attempts, "owner": run.owner,
        "config": {name: parameter_value(run.config, name) for name in names},
        "created_at": run.created_at, "started_at": run.started_at, "finished_at": run.finished_at,
    })


def epoch_values(metrics: dict[str, Any]) -> dict[str, float | None]:
    return {key: finite(value) for key, value in metrics.items() if key != "epoch" and not isinstance(value, str)}


def history_columns(run: RunRecord) -> dict[str, Any]:
    """A run's history as columns (epoch list, then one list per metric): a third of the row form's size.
    Six significant digits are plenty for a curve and halve what the page downloads."""
    keys = dict.fromkeys(key for row in run.history for key in epoch_values(row))
    return {"epoch": [row.get("epoch", index + 1) for index, row in enumerate(run.history)],
            "values": {key: [_short(row.get(key)) for row in run.history] for key in keys}}


def _short(value: Any) -> float | None:
    number = finite(value)
    return float(f"{number:.6g}") if number is not None else None


@dataclass
class EncodedRun:
    """A run's table row and curves, encoded once per version of the run (see SweepView.versions)."""

    version: int
    row: dict[str, Any]
    row_text: str
    history_text: str
    metrics: list[str]


def encoded_runs(view: SweepView, metric: Metric | None, parameters: list[SweptParameter]) -> list[EncodedRun]:
    """Every run's encoding, redone only for runs that changed since it was last asked for."""
    found = []
    for row, version in view.stamped():
        cached = view.encoded.get(row.id)
        if cached is None or cached.version != version:
            run = view.record(row.id)
            if run is None:
                continue
            table_row, columns = run_json(run, metric, parameters), history_columns(run)
            cached = EncodedRun(version=version, row=table_row, row_text=dumps(table_row),
                                history_text=dumps(columns), metrics=list(columns["values"]))
            view.encoded[row.id] = cached
        found.append(cached)
    return found


def dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def curve_metrics(keys: list[list[str]], sweep: SweepRecord) -> list[str]:
    """Metric names the curves can show, the sweep's own metric and the usual ones first."""
    seen = dict.fromkeys(key for run_keys in keys for key in run_keys)
    metric = metric_of(sweep)
    first = ([metric.name] if metric else []) + list(CURVE_ORDER)
    return [key for key in dict.fromkeys(first) if key in seen] + sorted(k for k in seen if k not in first)


def epoch_json(row: EpochRow) -> dict[str, Any]:
    return {"run": row.run_id, "epoch": row.metrics.get("epoch", row.epoch), "values": epoch_values(row.metrics)}


def listing_json(view: SweepView) -> dict[str, Any]:
    """The sweeps page's line for a view (refresh it first)."""
    assert view.sweep is not None
    metric, parameters = metric_of(view.sweep), swept_parameters(view.sweep.config)
    return sweep_json(view.sweep, [run.row for run in encoded_runs(view, metric, parameters)])


def snapshot_text(view: SweepView) -> str:
    """Everything the sweep page draws first, and the cursor its live updates start from, as JSON text
    assembled from each run's cached encoding (a sweep of a thousand runs re-encodes only what changed)."""
    view.refresh()
    cursor, sweep = view.cursor, view.sweep
    assert sweep is not None
    metric, parameters = metric_of(sweep), swept_parameters(sweep.config)
    runs = encoded_runs(view, metric, parameters)
    head = {"cursor": cursor, "sweep": sweep_json(sweep, [run.row for run in runs]), "config": clean(sweep.config),
            "parameters": [p.model_dump() for p in parameters],
            "metrics": curve_metrics([run.metrics for run in runs], sweep)}
    rows = ",".join(run.row_text for run in runs)
    histories = ",".join(f"{dumps(run.row['id'])}:{run.history_text}" for run in runs)
    return f'{dumps(head)[:-1]},"runs":[{rows}],"histories":{{{histories}}}}}'


def snapshot_json(view: SweepView) -> dict[str, Any]:
    return json.loads(snapshot_text(view))


def update_json(update: Update) -> dict[str, Any]:
    """A live update: the sweep's state, changed rows (re-scored), and new epochs."""
    metric, parameters = metric_of(update.sweep), swept_parameters(update.sweep.config)
    return {
        "cursor": update.cursor,
        "sweep": {"id": update.sweep.id, "state": update.sweep.state, "state_reason": update.sweep.state_reason},
        "runs": [run_json(run, metric, parameters) for run in update.runs],
        "epochs": [epoch_json(row) for row in update.epochs],
    }


def panels_json(sweep: SweepRecord, runs: list[RunRecord], store_path) -> dict[str, Any]:
    """The sweep-level panels (report.panels), or why there are none (a sweep without a metric)."""
    if metric_of(sweep) is None:
        return {"metric": None, "skipped": {"all": f"sweep {sweep.id} has no metric to rank runs by"}}
    # The best run's artifacts (its saved predictions) live where this machine's store keeps them.
    located = [run.model_copy(update={"run_dir": str(store_path(run))}) for run in runs]
    panels: SweepPanels = sweep_panels(sweep, located, swept_parameters(sweep.config))
    return clean(panels.model_dump())


def attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {"attempt": attempt.attempt, "agent": attempt.agent, "host": attempt.host,
            "started_at": attempt.started_at, "ended_at": attempt.ended_at,
            "resumed_from_epoch": attempt.resumed_from_epoch, "outcome": attempt.outcome, "detail": attempt.detail}


PER_CLASS_KEYS = ("classes", "per_class_acc", "predicted_counts", "true_counts")


def per_class_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Test accuracy, predictions and images per class, one row each; none when the run has no test result."""
    columns = [summary.get(key) for key in PER_CLASS_KEYS]
    if not all(isinstance(column, list) for column in columns) or len({len(c) for c in columns}) != 1:
        return []
    return [{"class": name, "test_acc": acc, "predicted": predicted, "images": images}
            for name, acc, predicted, images in zip(*columns)]


def summary_rows(summary: dict[str, Any], per_class: bool, folder: Path | None,
                 artifact_root: Path | None) -> dict[str, Any]:
    """The summary less what has its own table (`per_class`: the per-class lists do); the checkpoint
    named inside the run's folder, as the artifact list names it. The store records it relative to
    the artifact root (or, from older agents, as a path on whichever machine wrote it)."""
    hidden = {"config", "confusion_matrix", *(PER_CLASS_KEYS if per_class else ())}
    rows = {key: value for key, value in summary.items() if key not in hidden}
    checkpoint = rows.get("checkpoint")
    if isinstance(checkpoint, str) and folder is not None:
        path = (artifact_root or Path()) / checkpoint  # an absolute recorded path stays as it is
        try:
            rows["checkpoint"] = path.resolve().relative_to(folder.resolve()).as_posix()
        except ValueError:
            pass  # kept elsewhere than the run's folder: the recorded path says where
    return rows


def run_page_json(sweep: SweepRecord, run: RunRecord, attempts: list[Attempt],
                  artifacts: list[tuple[str, int]], folder: Path | None,
                  artifact_root: Path | None = None) -> dict[str, Any]:
    metric, parameters = metric_of(sweep), swept_parameters(sweep.config)
    columns, per_class = history_columns(run), per_class_rows(run.summary)
    return {
        "sweep": {"id": sweep.id, "name": clean(sweep.config.get("name")), "state": sweep.state,
                  "metric": metric.model_dump() if metric else None},
        "run": run_json(run, metric, parameters),
        "full_config": clean(run.summary.get("config") or run.config),
        "chosen_config": clean(run.config),
        "summary": clean(summary_rows(run.summary, bool(per_class), folder, artifact_root)),
        "per_class": clean(per_class),
        "history": columns, "metrics": curve_metrics([list(columns["values"])], sweep),
        "attempts": [attempt_json(a) for a in attempts],
        "artifacts": [{"path": path, "bytes": size} for path, size in artifacts],
        "folder": str(folder) if folder is not None else None,
        "stop_requested": run.stop_requested,
    }
