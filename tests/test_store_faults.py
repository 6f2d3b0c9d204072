"""Store faults on the real components: a deleted, replaced, damaged, read-only or full store; schema versions.

Each ends in one line naming the store and the cause, a non-zero exit, and nothing reported as done
that isn't. Mounts (tmpfs for a full disk, a read-only bind mount) need root; those tests skip without.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from agent_helpers import cli, start_agent

from agent.controller import Claim, Controller
from agent.sweep_config import validate_sweep
from store.errors import SchemaMismatch, StoreError
from store.sql import SCHEMA_VERSION
from store.sqlite import SQLiteStore

V1_SCHEMA = """
CREATE TABLE sweeps (id TEXT PRIMARY KEY, backend TEXT NOT NULL, state TEXT NOT NULL, state_reason TEXT,
    config TEXT NOT NULL, created_at REAL NOT NULL, finished_at REAL);
CREATE TABLE runs (id TEXT PRIMARY KEY, sweep_id TEXT NOT NULL REFERENCES sweeps(id), seq INTEGER NOT NULL,
    state TEXT NOT NULL, config TEXT NOT NULL, summary TEXT NOT NULL DEFAULT '{}', failure TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
    started_at REAL, finished_at REAL, run_dir TEXT NOT NULL, owner TEXT, lease_token TEXT,
    lease_expires_at REAL, heartbeat_at REAL, stop_requested TEXT, UNIQUE (sweep_id, seq));
CREATE TABLE history (run_id TEXT NOT NULL REFERENCES runs(id), epoch INTEGER NOT NULL, attempt INTEGER NOT NULL,
    metrics TEXT NOT NULL, PRIMARY KEY (run_id, epoch));
CREATE TABLE attempts (run_id TEXT NOT NULL REFERENCES runs(id), attempt INTEGER NOT NULL, agent TEXT NOT NULL,
    started_at REAL NOT NULL, resumed_from_epoch INTEGER NOT NULL DEFAULT 0, ended_at REAL, outcome TEXT,
    detail TEXT, PRIMARY KEY (run_id, attempt));
"""


def grid(points: int, epochs: int = 3) -> dict:
    return validate_sweep({"method": "grid", "metric": {"name": "val_acc", "goal": "maximize"},
                           "parameters": {"seed": {"values": list(range(points))}, "epochs": {"value": epochs},
                                          "model": {"value": "fast"}}}).config


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def mount(*args: str) -> bool:
    return shutil.which("mount") is not None and subprocess.run(["mount", *args], capture_output=True).returncode == 0


def test_a_store_from_version_one_is_migrated_in_place_and_keeps_its_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with sqlite3.connect(home / "sweep.db") as conn:
        conn.executescript(V1_SCHEMA)
        conn.execute("INSERT INTO sweeps VALUES ('old1', 'local', 'finished', 'grid exhausted', ?, 1.0, 2.0)",
                     (json.dumps(grid(1)),))
        conn.execute("INSERT INTO runs (id, sweep_id, seq, state, config, created_at, run_dir) "
                     "VALUES ('r1', 'old1', 1, 'finished', '{\"seed\": 0}', 1.0, ?)", (str(home / "runs/old1/r1"),))
        conn.execute("INSERT INTO history VALUES ('r1', 1, 1, '{\"epoch\": 1, \"val_acc\": 0.5}')")
    store = SQLiteStore(home)
    [run] = store.list_runs("old1")
    assert run.history == [{"epoch": 1, "val_acc": 0.5}] and run.run_dir == str(home / "runs/old1/r1")
    assert store.get_sweep("old1").state_reason == "grid exhausted"
    changes = store.changes("old1", 0)  # a live view of an old store sees everything it holds
    assert [r.id for r in changes.runs] == ["r1"] and [e.epoch for e in changes.epochs] == [1]
    version = sqlite3.connect(home / "sweep.db").execute("SELECT value FROM meta").fetchone()[0]
    assert int(version) == SCHEMA_VERSION


def test_a_store_of_a_newer_version_is_refused_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    SQLiteStore(home).create_sweep(grid(1))
    with sqlite3.connect(home / "sweep.db") as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SchemaMismatch, match="schema version 99"):
        SQLiteStore(home).list_sweeps()
    result = cli("ls", "--home", str(home))
    assert result.exit_code == 2 and "schema version 99, this program uses" in one_line_error(result)


def test_a_damaged_store_is_one_line_for_every_command(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "sweep.db").write_bytes(b"SQLite format 3\x00" + b"\xde\xad" * 4000)
    for args in (["ls"], ["status", "abc"], ["stop", "abc"], ["report", "abc", "--out", str(tmp_path / "r")]):
        result = cli(*args, "--home", str(home))
        assert result.exit_code == 2, args
        line = one_line_error(result)
        assert str(home / "sweep.db") in line and "damaged" in line, line


def test_deleting_the_store_under_a_running_agent_stops_it_without_claiming_success(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sweep = SQLiteStore(home).create_sweep(grid(2, epochs=20))
    agent = start_agent(sweep.id, home, "--train-fn", "bench.fake_train:instant_train", "--lease-seconds", "4",
                        BENCH_WORK_MS="300")
    try:
        deadline = time.monotonic() + 120
        while "epoch 1/20" not in agent.stdout() and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(home)
        assert agent.wait(timeout=60) != 0
    finally:
        agent.kill()
    err = agent.stderr()
    assert "the store was deleted while this agent ran" in err and str(home / "sweep.db") in err
    assert "finished" not in agent.stdout().split("epoch 1/20")[-1]


def test_replacing_the_store_file_under_a_running_agent_stops_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sweep = SQLiteStore(home).create_sweep(grid(2, epochs=20))
    agent = start_agent(sweep.id, home, "--train-fn", "bench.fake_train:instant_train", "--lease-seconds", "4",
                        BENCH_WORK_MS="300")
    try:
        deadline = time.monotonic() + 120
        while "epoch 1/20" not in agent.stdout() and time.monotonic() < deadline:
            time.sleep(0.1)
        SQLiteStore(tmp_path / "other").create_sweep(grid(1))
        (tmp_path / "other" / "sweep.db").replace(home / "sweep.db")
        assert agent.wait(timeout=60) != 0
    finally:
        agent.kill()
    assert "replaced by another file" in agent.stderr()


def test_a_read_only_store_can_be_read_and_refuses_writes_in_one_line(tmp_path: Path) -> None:
    home, view = tmp_path / "home", tmp_path / "read-only"
    writer = SQLiteStore(home)
    sweep = writer.create_sweep(grid(2))
    writer.close()  # the last connection folds the WAL into the file: a read-only (immutable) open sees no WAL
    view.mkdir()
    if not (mount("--bind", str(home), str(view)) and mount("-o", "remount,ro,bind", str(view))):
        pytest.skip("a read-only bind mount needs root")
    try:
        listed = cli("ls", "--json", "--home", str(view))
        assert listed.exit_code == 0, listed.stderr
        assert [s["id"] for s in json.loads(listed.stdout)] == [sweep.id]
        assert cli("status", sweep.id, "--json", "--home", str(view)).exit_code == 0
        stopped = cli("stop", sweep.id, "--home", str(view))
        assert stopped.exit_code == 2 and "read-only" in one_line_error(stopped)
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def test_a_full_disk_strands_no_run_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    home = tmp_path / "small-disk"
    home.mkdir()
    if not mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(home)):
        pytest.skip("mounting a small tmpfs needs root")
    try:
        sweep = SQLiteStore(home).create_sweep(grid(1, epochs=6))
        env = {"SWEEP_ARTIFACTS": str(home / "runs"), "BENCH_WORK_MS": "50", "BENCH_CHECKPOINT_PAD": "400000"}
        filler = home / "filler"
        filler.write_bytes(b"\0" * 700_000)  # room for about two checkpoints
        first = start_agent(sweep.id, home, "--train-fn", "bench.fake_train:instant_train", "--lease-seconds", "3",
                            **env)
        assert first.wait(timeout=120) != 0
        line = [line for line in first.stderr().splitlines() if line.strip()][-1]
        assert "no space left on device" in line.lower(), first.stderr()
        assert not list(home.rglob("*.tmp")), "a failed write left a temporary file"

        filler.unlink()  # room again: the next agent continues from the last good checkpoint
        time.sleep(3.5)
        second = start_agent(sweep.id, home, "--train-fn", "bench.fake_train:instant_train", "--lease-seconds", "3",
                             **env)
        assert second.wait(timeout=120) == 0, second.stderr()
        store = SQLiteStore(home)
        [run] = store.list_runs(sweep.id)
        assert run.state == "finished" and [h["epoch"] for h in run.history] == list(range(1, 7))
        resumed = [a.resumed_from_epoch for a in store.list_attempts(sweep.id)]
        assert resumed[0] == 0 and resumed[-1] >= 1  # not started over
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)


def test_a_crash_counts_towards_the_retry_limit_only_without_progress(store) -> None:
    sweep = store.create_sweep(grid(1))
    controller = Controller(store, max_failures=1)
    epoch = {"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5, "lr": 0.1,
             "epoch_seconds": 0.1, "images_per_second": 1.0}
    first = controller.claim(sweep.id, "a", lease_seconds=0.2)
    controller.report_epoch(first.lease, epoch)
    time.sleep(0.4)
    second = controller.claim(sweep.id, "b", lease_seconds=0.2)  # the first crash made progress: not counted
    assert isinstance(second, Claim) and second.lease.run_id == first.lease.run_id
    assert store.get_run(first.lease.run_id).failures == 0
    time.sleep(0.4)  # the second attempt dies before any epoch: that one counts
    done = controller.claim(sweep.id, "c", lease_seconds=0.2)
    assert not isinstance(done, Claim) and done.done and not done.complete
    assert "sweep retry" in done.reason
    assert controller.retry(sweep.id) == [first.lease.run_id]
    again = controller.claim(sweep.id, "d", 30)
    assert isinstance(again, Claim) and again.resumed_from_epoch == 1


def test_an_unreachable_store_is_given_up_after_the_deadline_in_one_line(tmp_path: Path) -> None:
    from store.open import open_store

    store = open_store("postgresql://sweep@127.0.0.1:9/none")  # nothing listens on port 9
    started = time.monotonic()
    with pytest.raises(StoreError, match="127.0.0.1:9"):
        Controller(store, deadline=1.0).claim("abc", "a", 30)
    assert time.monotonic() - started < 30
