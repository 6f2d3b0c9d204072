"""Parameter importance as W&B computes it: random-forest importances and Pearson correlation."""

from __future__ import annotations

import numpy as np
import pytest

from report.importance import encode_parameters, parameter_influence
from report.parameters import SweptParameter, parameter_value, swept_parameters

LR = SweptParameter(name="lr", kind="numeric", log=True)
OPTIMIZER = SweptParameter(name="optimizer", kind="categorical")
SEED = SweptParameter(name="seed", kind="numeric")


def configs_and_scores(n: int = 24):
    """val_acc rises with log10(lr) and is unrelated to the seed; adam adds a fixed bonus."""
    rng = np.random.default_rng(1)
    configs, scores = [], []
    for i in range(n):
        lr = float(10 ** rng.uniform(-3, -1))
        optimizer = ["sgd", "adam"][i % 2]
        configs.append({"lr": lr, "optimizer": optimizer, "seed": int(rng.integers(0, 1000))})
        scores.append(0.5 + 0.1 * np.log10(lr) + (0.02 if optimizer == "adam" else 0.0))
    return configs, scores


def test_the_parameter_that_drives_the_metric_is_most_important_and_positively_correlated():
    configs, scores = configs_and_scores()
    rows = parameter_influence(configs, scores, [LR, OPTIMIZER, SEED])
    assert rows[0].name == "lr"
    assert rows[0].correlation > 0.9
    assert sum(r.importance for r in rows) == pytest.approx(1.0)
    by_name = {r.name: r for r in rows}
    assert by_name["optimizer=adam"].correlation == pytest.approx(-by_name["optimizer=sgd"].correlation)
    assert by_name["seed"].importance < by_name["lr"].importance


def test_importance_is_deterministic():
    configs, scores = configs_and_scores()
    assert parameter_influence(configs, scores, [LR, OPTIMIZER, SEED]) == \
        parameter_influence(configs, scores, [LR, OPTIMIZER, SEED])


def test_categoricals_are_one_hot_and_constant_columns_dropped():
    configs = [{"lr": 0.1, "optimizer": "adam", "flag": True}, {"lr": 0.1, "optimizer": "sgd", "flag": False}]
    matrix, names = encode_parameters(configs, [LR, OPTIMIZER, SweptParameter(name="flag", kind="categorical")])
    assert names == ["optimizer=adam", "optimizer=sgd", "flag=False", "flag=True"]  # lr is constant
    assert matrix.tolist() == [[1, 0, 0, 1], [0, 1, 1, 0]]


def test_nothing_to_learn_from_gives_no_rows():
    assert parameter_influence([{"lr": 0.1}], [0.5], [LR]) == []
    assert parameter_influence([{"lr": 0.1}, {"lr": 0.2}], [0.5, 0.5], [LR]) == []


def test_swept_parameters_skip_fixed_values_and_flatten_nested_ones():
    config = {"parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1e-1},
        "optimizer": {"values": ["sgd", "adam"]},
        "epochs": {"value": 10},
        "batch_size": {"values": [128, 256]},
        "one_choice": {"values": [3]},
        "head": {"parameters": {"width": {"min": 8, "max": 64}}},
    }}
    parameters = swept_parameters(config)
    assert [(p.name, p.kind, p.log) for p in parameters] == [
        ("lr", "numeric", True), ("optimizer", "categorical", False), ("batch_size", "numeric", False),
        ("head.width", "numeric", False)]
    # The same sweep after W&B's schema filled in the distributions, as the store keeps it.
    filled = {"parameters": {
        "lr": {"values": [0.05, 0.2], "distribution": "categorical"},
        "optimizer": {"values": ["sgd", "adam"], "distribution": "categorical"},
        "epochs": {"value": 2, "distribution": "constant"},
        "wd": {"min": 1e-5, "max": 1e-3, "distribution": "log_uniform_values"},
        "depth": {"min": 2, "max": 8, "distribution": "int_uniform"},
    }}
    assert [(p.name, p.kind, p.log) for p in swept_parameters(filled)] == [
        ("lr", "numeric", False), ("optimizer", "categorical", False), ("wd", "numeric", True),
        ("depth", "numeric", False)]
    assert parameter_value({"head": {"width": 16}}, "head.width") == 16
    assert parameter_value({"lr": {"value": 0.1}}, "lr") == 0.1
    assert parameter_value({}, "lr") is None
