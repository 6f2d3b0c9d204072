"""Checkpoints: damage is detected and skipped, planted code never runs, a full disk leaves nothing
behind, and only the settings that change the weights' trajectory pin a checkpoint."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cli.main import app
from conftest import PLUMBING_MODEL
from data.cifar import load_cifar10
from train import (CheckpointMismatch, CheckpointWriteError, TrainConfig, TrainHooks, list_checkpoints,
                   prune_checkpoints, train)
from train.checkpoint import MAGIC, checkpoint_path, read_checkpoint, write_checkpoint

TINY = dict(model=PLUMBING_MODEL, train_size=64, batch_size=32, val_size=0, epochs=3, tta=0, precision="fp32")


def tiny_config(**overrides) -> TrainConfig:
    return TrainConfig.resolve({**TINY, **overrides})


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from conftest import write_tiny_cifar

    return load_cifar10(write_tiny_cifar(tmp_path_factory.mktemp("data")), download=False)


@pytest.fixture(scope="module")
def uninterrupted(tiny_data, tmp_path_factory):
    """The weights of the tiny run trained straight through."""
    run_dir = tmp_path_factory.mktemp("straight")
    result = train(tiny_config(), data=tiny_data, run_dir=run_dir)
    return result, read_checkpoint(run_dir / "checkpoint-0003.pt")["model"]


class StopAfter(TrainHooks):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch(self, event) -> None:
        if event.metrics.epoch == self.epoch:
            event.stop("test stop")


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(list_checkpoints(run_dir)[0])["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def stopped_after(epoch: int, run_dir: Path, data, **overrides) -> None:
    result = train(tiny_config(**overrides), StopAfter(epoch), data=data, run_dir=run_dir)
    assert result.status == "stopped" and len(result.history) == epoch


def test_a_truncated_checkpoint_is_skipped_and_the_run_resumes_from_the_previous_one(tiny_data, uninterrupted,
                                                                                     tmp_path: Path):
    stopped_after(2, tmp_path, tiny_data)
    newest = tmp_path / "checkpoint-0002.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])

    result = train(tiny_config(), data=tiny_data, run_dir=tmp_path)
    assert result.resumed_from == str(tmp_path / "checkpoint-0001.pt")
    assert len(result.resume_notes) == 1
    assert "checkpoint-0002.pt" in result.resume_notes[0] and "checksum mismatch" in result.resume_notes[0]
    assert result.status == "finished" and [h.epoch for h in result.history] == [1, 2, 3]
    assert_same_weights(final_weights(tmp_path), uninterrupted[1])
    assert result.test_acc == uninterrupted[0].test_acc


def test_candidates_are_tried_newest_first_and_none_usable_starts_over(tiny_data, uninterrupted, tmp_path: Path):
    stopped_after(1, tmp_path, tiny_data)
    good = tmp_path / "checkpoint-0001.pt"
    flipped = bytearray(good.read_bytes())
    flipped[-100] ^= 0xFF  # one bit-flipped byte deep in the payload
    damaged = tmp_path / "elsewhere" / "checkpoint-0005.pt"
    damaged.parent.mkdir()
    damaged.write_bytes(bytes(flipped))
    missing = tmp_path / "gone" / "checkpoint-0004.pt"

    resumed = train(tiny_config(), data=tiny_data, run_dir=tmp_path / "next", resume_from=[damaged, missing, good])
    assert resumed.resumed_from == str(good)
    assert [n.split(":")[0] for n in resumed.resume_notes] == [f"skipped {damaged}", f"skipped {missing}"]
    assert "missing" in resumed.resume_notes[1]
    assert_same_weights(final_weights(tmp_path / "next"), uninterrupted[1])

    fresh = train(tiny_config(), data=tiny_data, run_dir=tmp_path / "fresh", resume_from=[damaged, missing])
    assert fresh.resumed_from is None and len(fresh.history) == 3
    assert fresh.resume_notes[-1] == "no usable checkpoint among 2; started from the beginning"
    assert_same_weights(final_weights(tmp_path / "fresh"), uninterrupted[1])


class Planted:
    """Unpickling this runs a shell command: what a hostile checkpoint would carry."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def planted_checkpoint(path: Path, marker: Path, with_valid_header: bool) -> None:
    buffer = io.BytesIO()
    torch.save({"format": 1, "config": {}, "model": Planted(f"touch {marker}")}, buffer)
    body = buffer.getvalue()
    if with_valid_header:  # the attacker can compute a checksum too: only weights_only stops this one
        body = MAGIC + b"sha256 " + hashlib.sha256(body).hexdigest().encode() + b"\n" + body
    path.write_bytes(body)


def test_a_planted_pickle_is_refused_and_its_code_never_runs(tiny_data, tmp_path: Path):
    # The planted payload is live: loaded the unsafe way, it runs its command.
    planted_checkpoint(tmp_path / "unsafe.pt", tmp_path / "ran-unsafe", with_valid_header=False)
    torch.load(tmp_path / "unsafe.pt", weights_only=False)
    assert (tmp_path / "ran-unsafe").exists()

    run_dir = tmp_path / "run"
    stopped_after(1, run_dir, tiny_data)
    marker = tmp_path / "pwned"
    planted_checkpoint(run_dir / "checkpoint-0003.pt", marker, with_valid_header=True)
    planted_checkpoint(run_dir / "checkpoint-0002.pt", marker, with_valid_header=False)

    result = train(tiny_config(), data=tiny_data, run_dir=run_dir)
    assert not marker.exists()
    assert result.resumed_from == str(run_dir / "checkpoint-0001.pt")
    refused, headerless = result.resume_notes
    assert "checkpoint-0003.pt: refused, it holds more than tensors and plain values" in refused
    assert "checkpoint-0002.pt: not a checkpoint of this program" in headerless


def test_settings_that_do_not_change_the_trajectory_leave_a_checkpoint_usable(tiny_data, uninterrupted,
                                                                              tmp_path: Path):
    stopped_after(1, tmp_path, tiny_data)
    result = train(tiny_config(tta=2, eval_batch_size=7, tta_confidence=0.5, max_params=4_000_000), data=tiny_data,
                   run_dir=tmp_path)
    assert result.resumed_from == str(tmp_path / "checkpoint-0001.pt") and result.resume_notes == []
    assert_same_weights(final_weights(tmp_path), uninterrupted[1])
    assert result.test_acc == uninterrupted[0].test_acc and result.test_acc_tta is not None


def test_a_changed_precision_resumes_with_a_note(tiny_data, tmp_path: Path):
    stopped_after(1, tmp_path, tiny_data, train_size=32)  # one step per epoch: bf16 may be emulated here
    result = train(tiny_config(precision="bf16", train_size=32), data=tiny_data, run_dir=tmp_path)
    assert result.resumed_from is not None and result.precision == "bf16"
    assert result.resume_notes == [f"{tmp_path / 'checkpoint-0001.pt'}: written under fp32 precision, "
                                   "resumed under bf16"]


def test_a_changed_learning_rate_is_refused_naming_the_key(tiny_data, tmp_path: Path):
    stopped_after(1, tmp_path, tiny_data)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(CheckpointMismatch) as raised:
        train(tiny_config(lr=0.5, label_smoothing=0.0), data=tiny_data, run_dir=tmp_path)
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'checkpoint-0001.pt'}: written with other training settings: ")
    assert "label_smoothing (checkpoint 0.2, this run 0.0); lr (checkpoint 0.147, this run 0.5)" in message
    assert "\n" not in message and sorted(p.name for p in tmp_path.iterdir()) == before


def test_sweep_train_resumes_from_its_run_dir_and_keeps_the_newest_two(tiny_data_dir: Path, tmp_path: Path):
    sets = [arg for key, value in {**TINY, "epochs": 2}.items() for arg in ("--set", f"{key}={value}")]
    args = ["train", "--data-dir", str(tiny_data_dir), "--run-dir", str(tmp_path / "run"), *sets]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == ["checkpoint-0001.pt",
                                                                               "checkpoint-0002.pt"]
    longer = [a.replace("epochs=2", "epochs=4") for a in args]  # epochs pin the schedule: refused
    refused = CliRunner().invoke(app, longer)
    assert refused.exit_code == 2 and "epochs (checkpoint 2.0, this run 4.0)" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    again = CliRunner().invoke(app, args + ["--set", "tta=1"])
    assert again.exit_code == 0, again.output
    assert f"resumed from {tmp_path / 'run' / 'checkpoint-0002.pt'}" in " ".join(again.stdout.split())


def test_prune_deletes_only_what_the_caller_does_not_keep(tmp_path: Path):
    for epoch in (1, 2, 3):
        write_checkpoint(checkpoint_path(tmp_path, epoch), {"epoch": epoch})
    mid = checkpoint_path(tmp_path, 3, 7)
    write_checkpoint(mid, {"epoch": 3})
    assert list_checkpoints(tmp_path) == [mid, *(checkpoint_path(tmp_path, e) for e in (3, 2, 1))]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".checkpoint-0004.pt.{int(dead.stdout)}.tmp"
    live = tmp_path / f".checkpoint-0004.pt.{os.getpid()}.tmp"
    other = tmp_path / "notes.txt"
    for path in (stale, live, other):
        path.write_text("x")

    removed = prune_checkpoints(tmp_path, keep={mid, checkpoint_path(tmp_path, 2)})
    assert sorted(p.name for p in removed) == sorted([checkpoint_path(tmp_path, 1).name,
                                                      checkpoint_path(tmp_path, 3).name, stale.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [mid.name, checkpoint_path(tmp_path, 2).name, live.name, other.name])


@pytest.fixture
def full_disk(tmp_path: Path):
    """A real 1 MiB tmpfs; skipped where this process may not mount one."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(mount)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_leaves_no_temporary_file_and_keeps_the_old_checkpoint(full_disk: Path):
    small = full_disk / "checkpoint-0001.pt"
    write_checkpoint(small, {"weights": torch.zeros(1000)})
    with pytest.raises(CheckpointWriteError) as raised:
        write_checkpoint(full_disk / "checkpoint-0002.pt", {"weights": torch.zeros(1_000_000)})  # 4 MB
    assert raised.value.errno == errno.ENOSPC
    assert str(raised.value) == (f"{full_disk / 'checkpoint-0002.pt'}: cannot write the checkpoint: "
                                 "No space left on device")
    with pytest.raises(CheckpointWriteError):  # overwriting a checkpoint in place fails the same clean way
        write_checkpoint(small, {"weights": torch.zeros(1_000_000)})
    assert sorted(p.name for p in full_disk.iterdir()) == ["checkpoint-0001.pt"]
    assert torch.equal(read_checkpoint(small)["weights"], torch.zeros(1000))


def test_sweep_train_on_a_full_disk_is_one_line_and_leaves_no_temporary_file(tiny_data_dir: Path, full_disk: Path):
    sets = [arg for key, value in {**TINY, "epochs": 1}.items() for arg in ("--set", f"{key}={value}")]
    result = CliRunner().invoke(app, ["train", "--data-dir", str(tiny_data_dir), "--run-dir", str(full_disk), *sets])
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: {full_disk / 'checkpoint-0001.pt'}: cannot write the checkpoint: "
                                     "No space left on device")
    assert not [p for p in full_disk.iterdir() if p.name.endswith(".tmp") or p.name.startswith("checkpoint")]
