"""The network registry and the parameter budget."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cli.main import app
from model.fast import FastNet
from model.registry import PARAMETER_CAP, REGISTRY, BudgetError, build_model, check_budget, parameter_count
from train.config import ConfigError, TrainConfig

REPO = Path(__file__).resolve().parents[1]
# The paper's count for resnet9; the others are what the README and the benchmarks quote.
EXPECTED_PARAMS = {"resnet9": 4_958_958, "fast": 1_971_352, "fast-wide": 4_604_440, "fast-small": 146_136}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_parameter_counts_are_the_documented_ones(name: str):
    assert parameter_count(name) == EXPECTED_PARAMS[name]
    built = REGISTRY[name].build()  # the builder itself, not build_model, which checks the same thing
    assert parameter_count(name) == sum(p.numel() for p in built.parameters() if p.requires_grad)


def test_a_registry_count_that_understates_the_network_stops_the_build(monkeypatch):
    spec = REGISTRY["fast"]
    monkeypatch.setitem(REGISTRY, "fast", dataclasses.replace(spec, parameters=1_000))
    with pytest.raises(BudgetError, match="built with 1,971,352 trainable parameters, but the registry declares 1,000"):
        build_model("fast")


def test_checking_a_sweep_file_imports_no_torch():
    """`sweep create` validates budgets from the declared counts: no deep-learning import, no network built."""
    code = ("import sys, tempfile; from cli.main import app\n"
            "try: app(['create', 'sweeps/grid.yaml', '--home', tempfile.mkdtemp(), '--json'])\n"
            "except SystemExit as end: assert end.code in (0, None), end.code\n"
            "print(sorted(name for name in sys.modules if name.split('.')[0] in ('torch', 'torchvision')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert '"total_configs": 108' in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_network_fits_the_budget_and_classifies_cifar(name: str):
    assert check_budget(name) == EXPECTED_PARAMS[name] < PARAMETER_CAP
    with pytest.raises(BudgetError):
        check_budget(name, max_params=EXPECTED_PARAMS[name] - 1)
    net = build_model(name).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_parameter_roles_cover_each_trainable_parameter_once(name: str):
    net = build_model(name)
    roles = net.parameter_roles()
    ids = [id(p) for params in roles.values() for p in params]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in net.parameters() if p.requires_grad}
    assert roles["head"] and roles["filters"]


def test_over_budget_is_refused():
    with pytest.raises(BudgetError, match="model 'resnet9' has 4,958,958 trainable parameters, over max_params"):
        build_model("resnet9", max_params=1_000_000)


def test_budget_above_the_cap_is_a_config_error():
    with pytest.raises(ConfigError, match="max_params"):
        TrainConfig.resolve({"max_params": PARAMETER_CAP + 1})


def test_cli_rejects_an_over_budget_model_before_training(tiny_data_dir):
    result = CliRunner().invoke(app, ["train", "--model", "resnet9", "--data-dir", str(tiny_data_dir),
                                      "--set", "max_params=1000000"])
    assert result.exit_code == 2
    assert "over max_params=1,000,000" in result.stderr and "epoch" not in result.stdout


def test_whitening_layer_decorrelates_patches():
    torch.manual_seed(0)
    images = torch.randn(64, 3, 32, 32) @ torch.randn(32, 32) * 0.1  # correlated along the width
    net = FastNet()
    net.prepare(images)
    out = torch.nn.functional.conv2d(images, net.whiten.weight)[:, :12]  # one sign of each filter
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12)
    covariance = flat.T @ flat / len(flat)
    assert torch.allclose(covariance, torch.eye(12), atol=0.05)


def test_models_command_lists_counts_as_json():
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    listed = {m["name"]: m["params"] for m in json.loads(result.stdout)["models"]}
    assert listed == {name: parameter_count(name) for name in REGISTRY}
