"""RunSource over W&B's public API: sweep config, runs, their full history and artifact files.

Only `wandb.Api().sweep(path)`, `Sweep.config/.state/.runs` and `Run.id/.state/
.config/.summary/.scan_history()/.files()/.file()` are used; that boundary is
what the tests fake.

Our agents log per-epoch metrics and scalar summaries to W&B, and the test
confusion matrix as a W&B confusion-matrix table; the sample and prediction
files stay in the run folder on the machine that trained the run
(`<store>/wandb-runs/<sweep>/<run>`). So artifacts are looked for there first,
then among the run's uploaded files, and the confusion matrix is read back from
the W&B table when the summary has no plain matrix.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from store.records import RunRecord, SweepRecord
from report.errors import ReportError
from train.config import EPOCH_METRICS
from train.loop import PREDICTIONS_NAME, SAMPLES_NAME

# W&B run states outside the store's vocabulary.
RUN_STATES = {"preempting": "preempted"}
KNOWN_RUN_STATES = {"pending", "running", "finished", "failed", "crashed", "preempted", "killed"}
SWEEP_STATES = {"finished": "finished", "paused": "stopped", "canceled": "stopped", "cancelled": "stopped",
                "stopped": "stopped", "failed": "stopped", "crashed": "stopped"}
ARTIFACT_FILES = (SAMPLES_NAME, PREDICTIONS_NAME)
CONFUSION_TABLE_SUFFIX = "confusion_matrix_table"  # wandb.plot.confusion_matrix logs "<key>_table"


class WandbSource:
    """Read a W&B sweep as the report's records; `path` is entity/project/sweep_id."""

    def __init__(self, api: Any = None, artifact_dir: Path | None = None, local_runs_root: Path | None = None):
        self._api = api
        self._artifact_dir = artifact_dir or Path(tempfile.gettempdir()) / "sweep-report-wandb"
        self._local_runs_root = local_runs_root  # where local agents kept each W&B run's artifact folder
        self._sweeps: dict[str, Any] = {}

    def get_sweep(self, sweep_id: str) -> SweepRecord:
        sweep = self._sweep(sweep_id)
        state = str(getattr(sweep, "state", "running") or "running").lower()
        return SweepRecord(id=sweep_id, backend="wandb", state=SWEEP_STATES.get(state, "running"),
                           config=dict(sweep.config), created_at=_timestamp(getattr(sweep, "created_at", None)))

    def list_runs(self, sweep_id: str) -> list[RunRecord]:
        sweep = self._sweep(sweep_id)
        try:
            return [self._record(run, sweep_id) for run in sweep.runs]
        except ReportError:
            raise
        except Exception as error:  # network and permission failures surface from lazy loads
            raise ReportError(f"W&B sweep {sweep_id}: cannot read its runs ({_one_line(error)})") from None

    def _sweep(self, path: str) -> Any:
        if path in self._sweeps:
            return self._sweeps[path]
        if path.count("/") != 2:
            raise ReportError(f"W&B sweep id must be entity/project/sweep_id, got {path!r}")
        try:
            api = self._api if self._api is not None else _default_api()
            sweep = api.sweep(path)
        except ReportError:
            raise
        except Exception as error:  # wandb raises CommError, ValueError, or HTTP errors for a missing sweep
            raise ReportError(f"unknown W&B sweep {path!r} ({_one_line(error)})") from None
        self._sweeps[path] = sweep
        return sweep

    def _record(self, run: Any, sweep_id: str) -> RunRecord:
        state = RUN_STATES.get(str(run.state).lower(), str(run.state).lower())
        summary = _visible(dict(run.summary))
        download_to = self._artifact_dir / sweep_id.replace("/", "_") / run.id
        if not summary.get("confusion_matrix"):
            summary.update(_confusion_from_table(run, summary, download_to))
        return RunRecord(
            id=run.id, sweep_id=sweep_id, state=state if state in KNOWN_RUN_STATES else "crashed",
            config=_visible(dict(run.config)), history=_epochs(run.scan_history()), summary=summary,
            created_at=_timestamp(getattr(run, "created_at", None)),
            run_dir=self._local_artifacts(sweep_id, run.id) or _download_artifacts(run, download_to),
        )

    def _local_artifacts(self, sweep_id: str, run_id: str) -> str | None:
        if self._local_runs_root is None:
            return None
        folder = self._local_runs_root / sweep_id.rsplit("/", 1)[-1] / run_id
        return str(folder) if any((folder / name).is_file() for name in ARTIFACT_FILES) else None


def _download_artifacts(run: Any, folder: Path) -> str | None:
    """Fetch the sample and prediction files if the run uploaded them; None when it uploaded neither."""
    found = False
    for remote in run.files(names=list(ARTIFACT_FILES)):
        if remote.name in ARTIFACT_FILES:
            remote.download(root=str(folder), replace=True, exist_ok=True)
            found = True
    return str(folder) if found else None


def _confusion_from_table(run: Any, summary: dict[str, Any], folder: Path) -> dict[str, Any]:
    """counts[true][predicted] and class names from the logged W&B confusion-matrix table, if there is one."""
    reference = next((value for key, value in summary.items() if key.endswith(CONFUSION_TABLE_SUFFIX)
                      and isinstance(value, Mapping) and value.get("path")), None)
    if reference is None:
        return {}
    local = folder / reference["path"]
    run.file(reference["path"]).download(root=str(folder), replace=True, exist_ok=True)
    try:
        table = json.loads(local.read_text())
        column = {name: i for i, name in enumerate(table["columns"])}
        rows = [(row[column["Actual"]], row[column["Predicted"]], row[column["nPredictions"]])
                for row in table["data"]]
    except (OSError, ValueError, KeyError, TypeError, IndexError) as error:
        raise ReportError(f"W&B run {run.id}: unreadable confusion table {reference['path']} ({error})") from None
    classes = list(dict.fromkeys(actual for actual, _, _ in rows))  # W&B writes rows in class order
    index = {name: i for i, name in enumerate(classes)}
    counts = [[0] * len(classes) for _ in classes]
    for actual, predicted, n in rows:
        if predicted in index:
            counts[index[actual]][index[predicted]] += int(round(float(n)))
    return {"confusion_matrix": counts, "classes": [str(c) for c in classes]}


def _default_api() -> Any:
    import wandb

    return wandb.Api(timeout=30)


def _epochs(rows: Any) -> list[dict[str, Any]]:
    """Per-epoch rows with W&B's own keys (_step, _runtime, ...) removed; rows without metrics skipped."""
    epochs = []
    for row in rows:
        visible = _visible(dict(row))
        if any(key in visible for key in EPOCH_METRICS):
            visible.setdefault("epoch", len(epochs) + 1)
            epochs.append(visible)
    return epochs


def _visible(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if not key.startswith("_")}


def _timestamp(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return 0.0
        # W&B writes UTC without a zone; read it as UTC so order and durations are right anywhere.
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    return 0.0


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:300]
