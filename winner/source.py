"""Which trained network a command means: a sweep's best run, a run, or a checkpoint on disk.

A sweep id means its best *finished* run, ranked by the one rule in `store.records` (the rule
`sweep report` uses): only a finished run has a final checkpoint and a test result. A run's final
checkpoint is the one its row names (`RunRecord.checkpoint`, relative to the store's artifact
root) or, for runs written before per-attempt checkpoints, `<run folder>/checkpoint.pt`. A run
folder given as a path means its newest checkpoint (`checkpoint-NNNN.pt`, by position in training).
"""

from __future__ import annotations

import json
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from store.records import RunRecord, SweepRecord, metric_of, rank_runs
from winner.errors import WinnerError
from winner.files import write_text_atomically

if TYPE_CHECKING:
    from store.protocol import Store
    from train import TrainConfig
    from model.layers import Network

LEGACY_CHECKPOINT = "checkpoint.pt"  # the one checkpoint per run folder that earlier versions wrote
CHECKPOINT_MAGIC = b"cifar-sweep checkpoint 1\n"  # train.checkpoint.MAGIC; repeated so this loads without torch
RESULT_NAME = "result.json"  # a run folder's TrainResult, as `sweep train --json-out` writes it
# CIFAR-10's label names, for checkpoints whose run recorded none.
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class Origin(BaseModel):
    """Where a network came from: its sweep and run, when it came through the store."""

    sweep: str | None = None
    run: str | None = None


class ModelSource(BaseModel):
    """A trained network's checkpoint, its full training config and what its training measured."""

    checkpoint: Path
    origin: Origin = Origin()
    config: dict[str, Any]  # every TrainConfig key
    summary: dict[str, Any] = {}  # TrainResult fields (test_acc, test_acc_tta, classes, params, ...)

    @property
    def classes(self) -> list[str]:
        return list(self.summary.get("classes") or CIFAR10_CLASSES)


StoreFactory = Callable[[], "Store"]


def best_finished_run(sweep: SweepRecord, runs: list[RunRecord]) -> RunRecord:
    """The sweep's top-ranked run among those that finished."""
    for run, _score in rank_runs(runs, *metric_of(sweep)):
        if run.state == "finished":
            return run
    raise WinnerError(f"sweep {sweep.id} has no finished run with a value of its metric yet")


def find_run(store: Store, ident: str) -> tuple[RunRecord, Origin]:
    """A sweep id (its best finished run) or a run id."""
    sweeps = {sweep.id: sweep for sweep in store.list_sweeps()}
    if ident in sweeps:
        run = best_finished_run(sweeps[ident], store.list_runs(ident))
    else:
        run = store.get_run(ident)  # raises the store's one-line "no run" error
    return run, Origin(sweep=run.sweep_id, run=run.id)


def run_checkpoint(store: Store, run: RunRecord) -> Path:
    """The run's final checkpoint on this machine: the one its row names, else its folder's newest."""
    if run.checkpoint:
        path = Path(run.checkpoint)
        return path if path.is_absolute() else Path(store.artifacts) / path
    return folder_checkpoint(Path(store.run_path(run)))


def folder_checkpoint(folder: Path) -> Path:
    """A run folder's newest checkpoint; a folder of an earlier version holds only checkpoint.pt."""
    from train.checkpoint import list_checkpoints

    found = list_checkpoints(folder)
    if found:
        return found[0]
    if (folder / LEGACY_CHECKPOINT).is_file():
        return folder / LEGACY_CHECKPOINT
    raise WinnerError(f"{folder}: no checkpoint in this folder (checkpoint-NNNN.pt or checkpoint.pt)")


def is_checkpoint_file(path: Path) -> bool:
    """A checkpoint by its header (this version) or a plain torch.save archive holding data.pkl (earlier)."""
    try:
        with path.open("rb") as handle:
            if handle.read(len(CHECKPOINT_MAGIC)) == CHECKPOINT_MAGIC:
                return True
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return any(name.endswith("data.pkl") for name in names) and not any("/code/" in name for name in names)


def source_from_run(store: Store, run: RunRecord, origin: Origin) -> ModelSource:
    if run.state != "finished":
        raise WinnerError(f"run {run.id} is {run.state}, not finished: it has no final checkpoint yet")
    checkpoint = run_checkpoint(store, run)
    summary = dict(run.summary)
    config = summary.get("config") or full_config(run.config)
    return ModelSource(checkpoint=checkpoint, origin=origin, config=config, summary=summary)


def source_from_path(path: Path) -> ModelSource:
    """A checkpoint file, or a run folder (its newest checkpoint); the result.json beside the checkpoint,
    when there is one for the same config, supplies the measured accuracy and class names."""
    checkpoint = folder_checkpoint(path) if path.is_dir() else path
    state = read_checkpoint(checkpoint)
    summary: dict[str, Any] = {}
    result = checkpoint.parent / RESULT_NAME
    if result.is_file():
        try:
            summary = json.loads(result.read_text())
        except (OSError, ValueError) as error:
            raise WinnerError(f"{result}: not a readable training result ({error})") from None
        if summary.get("config") != state["config"]:
            summary = {}  # another run's result: its numbers would describe a different network
    return ModelSource(checkpoint=checkpoint, config=state["config"], summary=summary)


def write_result(folder: Path, result: dict[str, Any]) -> Path:
    """A run folder's result.json (what `source_from_path` reads), written atomically."""
    path = Path(folder) / RESULT_NAME
    write_text_atomically(path, json.dumps(result, indent=2) + "\n", f"{path}: cannot write the result")
    return path


def resolve_source(ident: str, open_store: StoreFactory) -> ModelSource:
    """An existing path (checkpoint or run folder), else a sweep or run id looked up in the store."""
    path = Path(ident).expanduser()
    if path.exists():
        return source_from_path(path)
    if ident.endswith((".pt", ".pth")) or "/" in ident:
        raise WinnerError(f"{ident}: no such checkpoint or run folder")
    store = open_store()
    try:
        run, origin = find_run(store, ident)
        return source_from_run(store, run, origin)
    finally:
        store.close()


def full_config(values: dict[str, Any]) -> dict[str, Any]:
    """A run's chosen values completed with its model's recipe and the defaults."""
    from train import TrainConfig

    return TrainConfig.resolve(values).model_dump()


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by `train()`, loaded without running pickled code (`weights_only`):
    this version's checksummed file, or the plain `torch.save` file of earlier versions."""
    import torch

    from train.checkpoint import CheckpointError
    from train.checkpoint import read_checkpoint as read_checked

    if not path.is_file():
        raise WinnerError(f"{path}: no such checkpoint file")
    try:
        with path.open("rb") as handle:
            checked = handle.read(len(CHECKPOINT_MAGIC)) == CHECKPOINT_MAGIC
        state = read_checked(path) if checked else torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError as error:  # names the file and what is wrong with it
        raise WinnerError(str(error)) from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        reason = " ".join(str(error).split())[:200]
        raise WinnerError(f"{path}: not a training checkpoint ({type(error).__name__}: {reason})") from None
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict) or "model" not in state:
        raise WinnerError(f"{path}: not a training checkpoint (no 'config' and 'model' entries)")
    return state


def load_network(source: ModelSource) -> tuple[Network, TrainConfig]:
    """The checkpoint's network with its final weights, in eval mode on the CPU."""
    from model.registry import build_model
    from train import ConfigError, TrainConfig

    state = read_checkpoint(source.checkpoint)
    try:
        config = TrainConfig.resolve(state["config"])
    except ConfigError as error:
        raise WinnerError(f"{source.checkpoint}: its config is not valid here ({error})") from None
    network = build_model(config.model, config.max_params, **config.network_options())
    try:
        network.load_state_dict(state["model"])
    except (RuntimeError, TypeError) as error:
        reason = " ".join(str(error).split())[:200]
        raise WinnerError(f"{source.checkpoint}: weights do not fit model '{config.model}' ({reason})") from None
    return network.eval(), config
