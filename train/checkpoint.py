"""Checkpoint files: written atomically, checked on read, loaded without running any code.

A file is a one-line header, a line with the SHA-256 of the payload, and the payload:
`torch.save` of plain values and tensors only. Reading verifies the checksum before anything
is unpickled (a truncated or altered file is reported, not loaded) and unpickles with
`weights_only=True`, so a planted file cannot run code in whoever resumes it.

Names: `checkpoint-0003.pt` is written after epoch 3; `checkpoint-0003-step00012.pt` when a run
stopped 12 steps into epoch 4. The loop never deletes a checkpoint itself: the caller decides
which to keep (`prune_checkpoints`), e.g. only once its store has recorded a newer one.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

MAGIC = b"cifar-sweep checkpoint 1\n"
_DIGEST_LINE = re.compile(rb"sha256 ([0-9a-f]{64})\n")
_NAME = re.compile(r"checkpoint-(\d{4,})(?:-step(\d{5,}))?\.pt")
_TEMP = re.compile(r"\.checkpoint-.+\.pt\.(\d+)\.tmp")


class CheckpointError(Exception):
    """Base of the checkpoint errors; each message names the file."""


class CheckpointMismatch(CheckpointError, ValueError):
    """A checkpoint was written by a run with other trajectory settings; the message names the keys."""


class CheckpointUnusable(CheckpointError):
    """A checkpoint file is missing, damaged, or holds something other than tensors and plain values."""


class CheckpointWriteError(CheckpointError, OSError):
    """Writing a checkpoint failed (no space left, read-only folder, ...); no partial file remains.

    An OSError with the original errno, so callers can tell a full disk (errno.ENOSPC) apart."""

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(error.errno, f"{path}: cannot write the checkpoint: {error.strerror or error}")

    def __str__(self) -> str:
        return str(self.strerror)


def checkpoint_path(run_dir: Path, epochs_done: int, step_in_epoch: int = 0) -> Path:
    name = f"checkpoint-{epochs_done:04d}" + (f"-step{step_in_epoch:05d}" if step_in_epoch else "")
    return Path(run_dir) / f"{name}.pt"


def checkpoint_position(path: Path) -> tuple[int, int] | None:
    """(epochs done, steps into the next epoch) from a checkpoint's name; None for other files."""
    match = _NAME.fullmatch(Path(path).name)
    return (int(match[1]), int(match[2] or 0)) if match else None


def list_checkpoints(run_dir: Path) -> list[Path]:
    """The checkpoints in `run_dir`, newest first (by position in training, not by file time)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(position, path) for path in run_dir.iterdir() if (position := checkpoint_position(path))]
    return [path for _, path in sorted(found, reverse=True)]


def write_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: a temporary file beside `path`, flushed to disk, then renamed over it.

    On any failure the temporary file is removed, so a full disk keeps no partial file, and an
    earlier checkpoint of the same name stays intact."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getbuffer()
    header = MAGIC + b"sha256 " + hashlib.sha256(body).hexdigest().encode() + b"\n"
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temp.open("wb") as handle:
            handle.write(header)
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
        _fsync_folder(path.parent)
    except BaseException as error:
        temp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise CheckpointWriteError(path, error) from error
        raise


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (the folder's entry), where the platform allows it."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The payload of a checkpoint; CheckpointUnusable (naming the file and why) if it cannot be trusted."""
    path = Path(path)
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointUnusable(f"{path}: missing") from None
    except OSError as error:
        raise CheckpointUnusable(f"{path}: cannot be read ({error.strerror or error})") from None
    if not content.startswith(MAGIC):
        raise CheckpointUnusable(f"{path}: not a checkpoint of this program (no header)")
    digest = _DIGEST_LINE.match(content, len(MAGIC))
    if digest is None:
        raise CheckpointUnusable(f"{path}: damaged (its checksum line is unreadable)")
    body = memoryview(content)[digest.end():]
    if hashlib.sha256(body).hexdigest() != digest[1].decode():
        raise CheckpointUnusable(f"{path}: damaged (checksum mismatch: truncated or altered)")
    try:
        payload = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointUnusable(f"{path}: refused, it holds more than tensors and plain values "
                                 f"({first_line[:200]})") from None
    except Exception as error:  # a payload torch cannot parse although its checksum matched
        raise CheckpointUnusable(f"{path}: unreadable payload ({type(error).__name__})") from None
    if not isinstance(payload, dict):
        raise CheckpointUnusable(f"{path}: unexpected content ({type(payload).__name__})")
    return payload


def prune_checkpoints(run_dir: Path, keep: Iterable[Path]) -> list[Path]:
    """Delete the checkpoints in `run_dir` not in `keep`, and temporary files left by dead processes.

    Only the caller knows which checkpoints are still needed (the one its store names, the one
    before it); returns what was removed."""
    kept = {Path(path).resolve() for path in keep}
    removed = []
    for path in list_checkpoints(run_dir):
        if path.resolve() not in kept:
            path.unlink(missing_ok=True)
            removed.append(path)
    run_dir = Path(run_dir)
    for path in run_dir.iterdir() if run_dir.is_dir() else ():
        match = _TEMP.fullmatch(path.name)
        if match and not _process_alive(int(match[1])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # perhaps another thread of ours is writing it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
