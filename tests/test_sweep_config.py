"""Sweep YAML validation: W&B's schema, then every parameter against TrainConfig, then the budget."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agent.sweep_config import SweepConfigError, load_sweep_file, validate_sweep
from train.config import EPOCH_METRICS

ROOT = Path(__file__).resolve().parents[1]
SWEEP_FILES = sorted((ROOT / "sweeps").glob("*.yaml"))


def test_sweeps_folder_holds_the_three_issue_files() -> None:
    assert {p.name for p in SWEEP_FILES} >= {"grid.yaml", "bayes.yaml", "smoke.yaml"}


def test_the_screening_sweep_selects_on_validation_with_five_seeds_per_setting() -> None:
    spec = load_sweep_file(ROOT / "sweeps" / "fast-screen.yaml")
    parameters = spec.config["parameters"]
    assert parameters["seed"]["values"] == [0, 1, 2, 3, 4] and spec.grid_size == 40
    assert parameters["val_size"]["value"] > 0 and spec.metric_name == "val_acc"


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


# -- bounds and faults (issue 11) -------------------------------------------------------------------------------

def test_a_schema_error_is_reported_once() -> None:
    with pytest.raises(SweepConfigError) as caught:
        validate_sweep({"method": "random", "parameters": {"lr": {"min": 0.5, "max": 0.01}}}, source="s.yaml")
    assert str(caught.value).count("min 0.5 is not less than max 0.01") == 1


NON_FINITE = {
    "value": ({"lr": {"value": float("inf")}}, "parameters.lr.value: .inf"),
    "values": ({"lr": {"values": [0.1, float("nan")]}}, "parameters.lr.values[1]: .nan"),
    "min": ({"lr": {"min": float("-inf"), "max": 0.1}}, "parameters.lr.min: -.inf"),
    "max as text": ({"lr": {"min": 0.01, "max": "1e999"}}, "parameters.lr.max: .inf"),
    "mu": ({"lr": {"distribution": "normal", "mu": float("nan"), "sigma": 1.0}}, "parameters.lr.mu: .nan"),
    "sigma": ({"lr": {"distribution": "log_normal", "mu": 0.0, "sigma": float("inf")}}, "parameters.lr.sigma: .inf"),
}


@pytest.mark.parametrize("parameters, named", NON_FINITE.values(), ids=NON_FINITE.keys())
def test_non_finite_numbers_are_refused_naming_the_key(parameters, named) -> None:
    with pytest.raises(SweepConfigError, match="is not a finite number") as caught:
        validate_sweep({"method": "random", "parameters": parameters}, source="s.yaml")
    assert str(caught.value).startswith(f"s.yaml: {named} is not a finite number")


def test_a_non_finite_metric_target_is_refused() -> None:
    with pytest.raises(SweepConfigError, match=r"metric\.target: \.inf is not a finite number"):
        validate_sweep({"method": "grid", "metric": {"name": "val_acc", "target": "inf"},
                        "parameters": {"lr": {"value": 0.1}}})


def test_a_grid_at_the_limit_is_accepted_and_one_point_more_is_refused() -> None:
    from agent.sweep_file import MAX_GRID_POINTS

    five_by_ten = {name: {"values": list(range(10))} for name in ("seed", "cutout", "translate", "low_res_epochs",
                                                                   "tta")}
    five_by_ten["tta"] = {"values": [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]}
    spec = validate_sweep({"method": "grid", "parameters": five_by_ten})
    assert spec.grid_size == MAX_GRID_POINTS == 100_000
    with pytest.raises(SweepConfigError, match="the grid has 100,001 points"):
        validate_sweep({"method": "grid", "parameters": {"seed": {"min": 0, "max": 100_000}}})


def test_grid_size_is_the_number_of_configs_w_and_b_hands_out() -> None:
    from agent.engine import sweep_engine
    from agent.sweep_config import run_values

    engine = sweep_engine()
    spec = validate_sweep({"method": "grid", "parameters": {
        "cutout": {"min": 2, "max": 5}, "lr": {"distribution": "q_uniform", "min": 0.1, "max": 0.45, "q": 0.1},
        "weight_decay": {"values": [0.0, 5e-4]}}})
    runs, seen = [], set()
    while (suggestion := engine.next_run(spec.config, runs, validate=False)) is not None:
        values = run_values(suggestion.config)
        seen.add(tuple(sorted(values.items())))
        runs.append(engine.SweepRun(name=str(len(runs)), state="finished", config=suggestion.config))
    assert spec.grid_size == len(seen) == len(runs) == 4 * 4 * 2


def test_yaml_aliases_within_the_bound_work(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text("method: grid\nparameters:\n  lr: &rates {values: [0.1, 0.2]}\n  head_lr_scale: *rates\n")
    spec = load_sweep_file(path)
    assert spec.config["parameters"]["head_lr_scale"]["values"] == [0.1, 0.2]
    assert spec.grid_size == 4


def test_the_node_bound_counts_expanded_aliases(tmp_path: Path) -> None:
    from agent.sweep_file import MAX_YAML_NODES, parse_yaml

    # 1 document mapping + key + a list of 3 aliases to a list of n scalars: well under, then just over.
    n = MAX_YAML_NODES // 4
    text = f"x: [&a [{', '.join(['1'] * n)}], *a, *a]\n"
    assert len(parse_yaml(text, "ok.yaml")["x"]) == 3
    text = f"x: [&a [{', '.join(['1'] * n)}], *a, *a, *a]\n"
    with pytest.raises(SweepConfigError, match=r"over\.yaml: the YAML expands to more than 100,000 values"):
        parse_yaml(text, "over.yaml")


def test_nesting_is_bounded_before_python_recursion_is() -> None:
    from agent.sweep_file import MAX_YAML_DEPTH, parse_yaml

    assert parse_yaml("x: " + "[" * 30 + "]" * 30, "ok.yaml") is not None  # 31 levels with the mapping
    with pytest.raises(SweepConfigError, match=rf"s\.yaml: nested deeper than {MAX_YAML_DEPTH} levels at line 1"):
        parse_yaml("x: " + "[" * 40 + "]" * 40, "s.yaml")


def test_yaml_that_is_not_plain_data_is_refused_naming_the_key(tmp_path: Path) -> None:
    from agent.sweep_file import parse_yaml, precheck

    with pytest.raises(SweepConfigError, match=r"s\.yaml: name: YAML reads .* as a date; quote it"):
        precheck(parse_yaml("method: grid\nname: 2024-05-01\nparameters: {lr: {value: 0.1}}\n", "s.yaml"), "s.yaml")
    with pytest.raises(SweepConfigError, match=r"s\.yaml: parameters: key 3 is not text"):
        precheck(parse_yaml("method: grid\nparameters: {3: {value: 0.1}}\n", "s.yaml"), "s.yaml")
    with pytest.raises(SweepConfigError, match=r"s\.yaml: invalid YAML value"):
        parse_yaml("method: grid\nparameters: {lr: {value: !!float abc}}\n", "s.yaml")


def test_a_long_values_list_is_checked_to_its_last_value() -> None:
    values = [0.001 * (i + 1) for i in range(20_000)] + [-1.0]
    with pytest.raises(SweepConfigError, match=r"parameter lr: .*greater than 0 \(got -1\.0\)"):
        validate_sweep({"method": "random", "parameters": {"lr": {"values": values}}}, source="s.yaml")


# -- distributions with an infinite tail: accepted as W&B does, with the chance of an invalid draw ----------------

def tail(name: str, spec: dict) -> list[str]:
    return validate_sweep({"method": "random", "parameters": {name: spec}}, source="s.yaml").warnings


def test_a_normal_weight_decay_is_accepted_with_its_chance_of_a_negative_draw() -> None:
    from scipy import stats

    warnings = tail("weight_decay", {"distribution": "normal", "mu": 0.0005, "sigma": 0.0001})
    chance = stats.norm(0.0005, 0.0001).cdf(0.0)
    assert len(warnings) == 1
    assert warnings[0].startswith("s.yaml: parameters.weight_decay: normal(mu=0.0005, sigma=0.0001) draws a value "
                                  "outside weight_decay's range (weight_decay >= 0)")
    assert f"probability {chance:.2g}" in warnings[0] and f"1 run in {1 / chance:,.0f}" in warnings[0]


CHANCES = {
    # q_normal on an integer key >= 1: round(x) < 1 when x < 0.5
    "q_normal batch_size": ("batch_size", {"distribution": "q_normal", "mu": 64, "sigma": 32, "q": 1},
                            lambda s: s.norm(64, 32).cdf(0.5)),
    # log_normal is always positive, but momentum must stay below 1
    "log_normal momentum": ("momentum", {"distribution": "log_normal", "mu": -0.1, "sigma": 0.1},
                            lambda s: s.lognorm(s=0.1, scale=np.exp(-0.1)).sf(1.0)),
    # a Literal[0, 1, 2, 3] key: the draw must round onto one of them
    "q_normal tta": ("tta", {"distribution": "q_normal", "mu": 1, "sigma": 0.6, "q": 1},
                     lambda s: 1 - (s.norm(1, 0.6).cdf(3.5) - s.norm(1, 0.6).cdf(-0.5))),
}


@pytest.mark.parametrize("name, spec, expected", CHANCES.values(), ids=CHANCES.keys())
def test_the_warned_chance_is_the_distributions_mass_outside_the_key(name, spec, expected) -> None:
    from scipy import stats

    from agent.sweep_config import invalid_draw_chance

    config = validate_sweep({"method": "random", "parameters": {name: spec}}).config
    assert invalid_draw_chance(name, config["parameters"][name]) == pytest.approx(expected(stats), rel=1e-9)
    assert len(tail(name, spec)) == 1


def test_the_chance_matches_what_w_and_bs_sampler_draws() -> None:
    from agent.engine import sweep_engine
    from agent.sweep_config import invalid_draw_chance, invalid_draw_reason

    spec = validate_sweep({"method": "random", "parameters": {
        "batch_size": {"distribution": "q_normal", "mu": 64, "sigma": 32, "q": 1}}}).config["parameters"]["batch_size"]
    draws = sweep_engine().params.HyperParameter("batch_size", spec).ppf(np.random.default_rng(0).uniform(size=4000))
    invalid = [v for v in np.atleast_1d(draws).tolist() if invalid_draw_reason({"batch_size": v})]
    chance = invalid_draw_chance("batch_size", spec)
    assert abs(len(invalid) / 4000 - chance) < 4 * np.sqrt(chance * (1 - chance) / 4000)
    assert all(v < 1 for v in invalid)


def test_a_distribution_that_mostly_draws_invalid_values_is_refused() -> None:
    with pytest.raises(SweepConfigError, match=r"parameter lr: Input should be greater than 0 \(got 0\.0\)"):
        tail("lr", {"distribution": "normal"})  # W&B's default mu 0, sigma 1: half the draws are <= 0
    with pytest.raises(SweepConfigError, match="batch_size: Input should be a valid integer"):
        tail("batch_size", {"distribution": "normal", "mu": 128, "sigma": 8})  # floats for an integer key
    assert tail("lr", {"distribution": "log_normal", "mu": -3, "sigma": 1}) == []  # never <= 0: no warning


def test_invalid_draw_reason_names_the_key_or_says_nothing() -> None:
    from agent.sweep_config import invalid_draw_reason

    assert invalid_draw_reason({"weight_decay": 5e-4, "lr": 0.1}) is None
    reason = invalid_draw_reason({"weight_decay": -1.5e-5, "lr": 0.1})
    assert reason is not None and "\n" not in reason
    assert "weight_decay" in reason and "-1.5e-05" in reason and "greater than or equal to 0" in reason
