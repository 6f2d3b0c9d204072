"""The dashboard's safety rules without a browser: artifact paths, CSRF, the token gate, loopback Host names."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from dashboard.app import DashboardOptions, create_app
from dashboard.security import (Access, OutsideRunFolder, access_for, artifact_file, artifact_listing,
                                is_loopback_host)
from dashboard_runs import SWEEP_CONFIG, add_run, open_store

LOCAL = "http://127.0.0.1"


# -- artifact paths --------------------------------------------------------------------------------------


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "runs" / "s1" / "r1"
    (folder / "attempt-1").mkdir(parents=True)
    (folder / "attempt-1" / "checkpoint.pt").write_bytes(b"weights")
    (folder / "predictions.npz").write_bytes(b"npz")
    (tmp_path / "sweep.db").write_bytes(b"the whole store")
    (tmp_path / "runs" / "s1" / "r2").mkdir()
    (tmp_path / "runs" / "s1" / "r2" / "other.txt").write_text("another run's file")
    return folder


def test_a_file_inside_the_run_folder_is_served(run_folder: Path) -> None:
    assert artifact_file(run_folder, "attempt-1/checkpoint.pt") == (run_folder / "attempt-1" / "checkpoint.pt").resolve()
    assert artifact_file(run_folder, "predictions.npz").read_bytes() == b"npz"


@pytest.mark.parametrize("path", ["../../../sweep.db", "../r2/other.txt", "attempt-1/../../r2/other.txt", "",
                                  ".", "attempt-1", "missing.txt", "nul\x00.txt"])
def test_paths_leaving_the_run_folder_or_not_naming_a_file_are_refused(run_folder: Path, path: str) -> None:
    with pytest.raises(OutsideRunFolder):
        artifact_file(run_folder, path)


def test_an_absolute_path_is_refused_even_inside_the_folder(run_folder: Path) -> None:
    with pytest.raises(OutsideRunFolder):
        artifact_file(run_folder, str(run_folder / "predictions.npz"))


def test_a_symlink_out_of_the_run_folder_is_refused_and_not_listed(run_folder: Path, tmp_path: Path) -> None:
    os.symlink(tmp_path / "sweep.db", run_folder / "store.db")
    os.symlink(tmp_path / "runs" / "s1" / "r2", run_folder / "elsewhere")
    os.symlink(run_folder / "predictions.npz", run_folder / "alias.npz")  # stays inside: fine
    for path in ("store.db", "elsewhere/other.txt"):
        with pytest.raises(OutsideRunFolder):
            artifact_file(run_folder, path)
    assert artifact_file(run_folder, "alias.npz").read_bytes() == b"npz"
    listed = [path for path, _ in artifact_listing(run_folder)]
    assert "store.db" not in listed and not any(p.startswith("elsewhere") for p in listed)
    assert {"alias.npz", "predictions.npz", "attempt-1/checkpoint.pt"} <= set(listed)


# -- the app on a real store -------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path):
    opened = open_store(tmp_path / "home")
    yield opened
    opened.close()


@pytest.fixture
def sweep_id(store) -> str:
    sweep = store.create_sweep(SWEEP_CONFIG)
    add_run(store, sweep.id, {"lr": 0.1, "optimizer": "sgd", "epochs": 30}, epochs=2, state="running")
    return sweep.id


def client(store, access: Access, control: bool = False) -> TestClient:
    return TestClient(create_app(store, access, DashboardOptions(allow_control=control)), base_url=LOCAL)


def test_artifact_download_stays_inside_the_run_folder(store, sweep_id) -> None:
    run = store.list_runs(sweep_id)[0]
    folder = store.run_path(run)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "log.txt").write_text("epoch 1\n")
    app = client(store, access_for("127.0.0.1", 8080))
    good = app.get(f"/runs/{run.id}/artifacts/log.txt")
    assert good.status_code == 200 and good.text == "epoch 1\n"
    assert "attachment" in good.headers["content-disposition"]
    for escape in ("..%2F..%2F..%2Fsweep.db", "%2E%2E/%2E%2E/%2E%2E/sweep.db"):
        assert app.get(f"/runs/{run.id}/artifacts/{escape}").status_code == 404


def test_control_is_off_unless_allowed(store, sweep_id) -> None:
    access = access_for("127.0.0.1", 8080)
    response = client(store, access).post(f"/api/sweeps/{sweep_id}/stop", headers={"x-csrf-token": access.csrf})
    assert response.status_code in (403, 405)
    assert store.get_sweep(sweep_id).state == "running"


def test_control_without_the_csrf_header_or_from_another_origin_is_refused(store, sweep_id) -> None:
    access = access_for("127.0.0.1", 8080)
    app = client(store, access, control=True)
    refused = [
        app.post(f"/api/sweeps/{sweep_id}/stop"),  # what a cross-site <form> can send
        app.post(f"/api/sweeps/{sweep_id}/stop", headers={"x-csrf-token": "guessed"}),
        app.post(f"/api/sweeps/{sweep_id}/stop", headers={"x-csrf-token": access.csrf,
                                                           "origin": "http://evil.example"}),
        app.get(f"/api/sweeps/{sweep_id}/stop"),
    ]
    assert [r.status_code for r in refused[:3]] == [403, 403, 403]
    assert refused[3].status_code in (404, 405)  # a GET never reaches the control endpoint
    assert store.get_sweep(sweep_id).state == "running"
    accepted = app.post(f"/api/sweeps/{sweep_id}/cancel", headers={"x-csrf-token": access.csrf, "origin": LOCAL})
    assert accepted.status_code == 200, accepted.text
    assert store.get_sweep(sweep_id).state == "stopped"
    assert store.list_runs(sweep_id)[0].stop_requested  # --cancel asks the running run to stop


def test_the_token_gate_accepts_query_cookie_or_header_and_nothing_else(store, sweep_id) -> None:
    access = access_for("0.0.0.0", 8080)
    assert access.token
    app = client(store, access)
    assert app.get("/api/sweeps").status_code == 401
    assert app.get("/api/sweeps", headers={"x-dashboard-token": access.token + "x"}).status_code == 401
    assert app.get("/api/sweeps", headers={"x-dashboard-token": access.token}).status_code == 200
    redirect = app.get(f"/sweeps/{sweep_id}?token={access.token}&x=1", follow_redirects=False)
    assert redirect.status_code == 303 and redirect.headers["location"] == f"/sweeps/{sweep_id}?x=1"
    assert app.get(f"/api/sweeps/{sweep_id}").status_code == 200  # the cookie it set


def test_a_loopback_dashboard_answers_only_loopback_host_names(store, sweep_id) -> None:
    app = client(store, access_for("127.0.0.1", 8080))
    assert app.get("/api/sweeps").status_code == 200
    assert app.get("/api/sweeps", headers={"host": "localhost:8080"}).status_code == 200
    # A page on another site that rebinds its own name to 127.0.0.1 sends its name as Host.
    assert app.get("/api/sweeps", headers={"host": "attacker.example:8080"}).status_code == 403
    assert is_loopback_host("[::1]:8080") and is_loopback_host("127.0.0.5") and not is_loopback_host("10.0.0.1")


def test_every_page_carries_a_strict_content_security_policy(store, sweep_id) -> None:
    page = client(store, access_for("127.0.0.1", 8080)).get(f"/sweeps/{sweep_id}")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'self'" in policy
    assert re.findall(r"<script(?![^>]*\bsrc=\"/static/)", page.text) == []  # no inline script to allow
