"""Sweep YAML validation: W&B's schema, then every parameter against TrainConfig, then the budget."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.sweep_config import SweepConfigError, load_sweep_file, validate_sweep
from train.config import EPOCH_METRICS

ROOT = Path(__file__).resolve().parents[1]
SWEEP_FILES = sorted((ROOT / "sweeps").glob("*.yaml"))


def test_sweeps_folder_holds_the_three_issue_files() -> None:
    assert {p.name for p in SWEEP_FILES} >= {"grid.yaml", "bayes.yaml", "smoke.yaml"}


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.name)
def test_every_sweep_file_validates_and_the_engine_proposes_a_run(path: Path) -> None:
    from agent.engine import sweep_engine
    from agent.sweep_config import run_values
    from train import TrainConfig

    spec = load_sweep_file(path)
    first = sweep_engine().next_run(spec.config, [], validate=False)
    config = TrainConfig.resolve(run_values(first.config))
    assert config.model in {"resnet9", "fast", "fast-wide"}
    assert spec.metric_name in EPOCH_METRICS


def test_grid_yaml_is_the_papers_grid_on_val_acc() -> None:
    spec = load_sweep_file(ROOT / "sweeps" / "grid.yaml")
    params = spec.config["parameters"]
    assert spec.method == "grid"
    assert (spec.metric_name, spec.metric_goal) == ("val_acc", "maximize")
    assert params["model"]["value"] == "resnet9"
    assert params["batch_size"]["values"] == [64, 128, 256]
    assert params["lr"]["values"] == [0.001, 0.01, 0.1]
    assert params["epochs"]["values"] == [10, 20, 30]
    assert len(params["weight_decay"]["values"]) == len(params["grad_clip"]["values"]) == 2
    assert all(isinstance(v, float) for v in params["weight_decay"]["values"])  # '5e-4' is not left a string
    assert spec.grid_size == 108


def test_bayes_yaml_searches_both_models_with_hyperband() -> None:
    spec = load_sweep_file(ROOT / "sweeps" / "bayes.yaml")
    assert spec.method == "bayes"
    assert spec.config["early_terminate"]["type"] == "hyperband"
    assert set(spec.config["parameters"]["model"]["values"]) == {"fast", "resnet9"}


def test_import_sweeps_from_repo_root_gets_the_engine_not_the_yaml_folder() -> None:
    out = subprocess.run([sys.executable, "-c", "import sweeps; print(sweeps.__file__); print(sweeps.next_run)"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "site-packages" in out.splitlines()[0]
    assert not (ROOT / "sweeps" / "__init__.py").exists()


def test_metric_goal_defaults_to_the_metrics_own_direction() -> None:
    spec = validate_sweep({"method": "grid", "metric": {"name": "val_loss"}, "parameters": {"lr": {"value": 0.1}}})
    assert spec.metric_goal == "minimize"
    spec = validate_sweep({"method": "grid", "metric": {"name": "val_acc"}, "parameters": {"lr": {"value": 0.1}}})
    assert spec.metric_goal == "maximize"


def test_grid_size_counts_int_uniform_ranges() -> None:
    spec = validate_sweep({"method": "grid", "parameters": {"cutout": {"min": 0, "max": 3},
                                                            "lr": {"values": [0.1, 0.2]}}})
    assert spec.grid_size == 8


BAD = {
    "unknown method": ({"method": "annealing", "parameters": {"lr": {"value": 0.1}}}, ["annealing", "grid"]),
    "custom method": ({"method": "custom", "parameters": {"lr": {"value": 0.1}}}, ["custom", "grid, random, bayes"]),
    "missing method": ({"parameters": {"lr": {"value": 0.1}}}, ["'method' is a required property"]),
    "unknown parameter": ({"method": "grid", "parameters": {"learning_rate": {"values": [0.1]}}},
                          ["learning_rate", "did you mean 'lr'?"]),
    "wrong type in values": ({"method": "grid", "parameters": {"batch_size": {"values": [64, 12.5]}}},
                             ["batch_size", "12.5", "integer"]),
    "distribution emits wrong type": (
        {"method": "random", "parameters": {"batch_size": {"distribution": "log_uniform_values", "min": 32,
                                                           "max": 512}}}, ["batch_size", "integer"]),
    "distribution out of range": ({"method": "random", "parameters": {"lr": {"min": -1.0, "max": 0.1}}},
                                  ["lr", "greater than 0", "-1.0"]),
    "bad choice": ({"method": "grid", "parameters": {"optimizer": {"values": ["sgd", "lion"]}}},
                   ["optimizer", "lion"]),
    "unknown model": ({"method": "grid", "parameters": {"model": {"values": ["fast", "vgg16"]}}},
                      ["model", "vgg16", "resnet9"]),
    "model over budget": ({"method": "grid", "parameters": {"model": {"value": "resnet9"},
                                                            "max_params": {"value": 2_000_000}}},
                          ["resnet9", "2,000,000"]),
    "budget above the cap": ({"method": "grid", "parameters": {"max_params": {"value": 6_000_000}}},
                             ["max_params", "5000000"]),
    "metric not reported": ({"method": "grid", "metric": {"name": "accuracy"}, "parameters": {"lr": {"value": 0.1}}},
                            ["accuracy", "val_acc", "val_loss"]),
    "nested parameters": ({"method": "grid", "parameters": {"optim": {"parameters": {"lr": {"value": 0.1}}}}},
                          ["optim", "nested"]),
    "continuous in grid": ({"method": "grid", "parameters": {"lr": {"min": 0.01, "max": 0.1}}},
                           ["lr", "grid"]),
    "bayes without metric": ({"method": "bayes", "parameters": {"lr": {"min": 0.01, "max": 0.1}}}, ["metric"]),
    "not a mapping": ([1, 2], ["mapping", "list"]),
}


@pytest.mark.parametrize("raw, words", BAD.values(), ids=BAD.keys())
def test_invalid_sweeps_fail_with_one_line_naming_the_problem(raw, words) -> None:
    with pytest.raises(SweepConfigError) as caught:
        validate_sweep(raw, source="bad.yaml")
    message = str(caught.value)
    assert message.startswith("bad.yaml: ") and "\n" not in message
    for word in words:
        assert word in message


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("method: grid\nparameters:\n  lr: {values: [0.1, 0.2]\n")
    with pytest.raises(SweepConfigError, match=r"broken\.yaml: invalid YAML at line \d+"):
        load_sweep_file(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SweepConfigError, match="nope.yaml: no such file"):
        load_sweep_file(tmp_path / "nope.yaml")
