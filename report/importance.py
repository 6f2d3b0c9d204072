"""Parameter importance as W&B's panel computes it.

Importance: the feature importances of a random forest fitted to predict the
metric from the hyperparameters. Correlation: Pearson's r between each
hyperparameter and the metric. Categorical parameters are one-hot encoded, one
column per value ("optimizer=adam"), so each value gets its own importance and
correlation; numeric ones enter as they are (log-distributed ones as log10).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel
from sklearn.ensemble import RandomForestRegressor

from report.parameters import SweptParameter, category_label, is_number, parameter_value

FOREST_SEED = 0  # fixed so the same runs always give the same importances
FOREST_TREES = 100


class ParameterInfluence(BaseModel):
    name: str
    importance: float
    correlation: float


def encode_parameters(configs: list[dict[str, Any]], parameters: list[SweptParameter]) -> tuple[np.ndarray, list[str]]:
    """One row per run, one column per numeric parameter or categorical value; constant columns dropped."""
    columns: list[np.ndarray] = []
    names: list[str] = []
    for parameter in parameters:
        values = [parameter_value(config, parameter.name) for config in configs]
        if parameter.kind == "numeric" and all(is_number(v) for v in values):
            column = np.array(values, dtype=float)
            if parameter.log and (column > 0).all():
                column = np.log10(column)
            columns.append(column)
            names.append(parameter.name)
        else:
            labels = [category_label(v) for v in values]
            for label in sorted(set(labels)):
                columns.append(np.array([lab == label for lab in labels], dtype=float))
                names.append(f"{parameter.name}={label}")
    keep = [i for i, column in enumerate(columns) if np.ptp(column) > 0]
    matrix = np.stack([columns[i] for i in keep], axis=1) if keep else np.empty((len(configs), 0))
    return matrix, [names[i] for i in keep]


def parameter_influence(configs: list[dict[str, Any]], scores: list[float],
                        parameters: list[SweptParameter]) -> list[ParameterInfluence]:
    """Most important first; empty when fewer than two runs or nothing varies."""
    matrix, names = encode_parameters(configs, parameters)
    target = np.asarray(scores, dtype=float)
    if len(target) < 2 or not names or np.ptp(target) == 0:
        return []
    forest = RandomForestRegressor(n_estimators=FOREST_TREES, random_state=FOREST_SEED, n_jobs=1)
    forest.fit(matrix, target)
    rows = [ParameterInfluence(name=name, importance=float(importance), correlation=_pearson(matrix[:, i], target))
            for i, (name, importance) in enumerate(zip(names, forest.feature_importances_))]
    return sorted(rows, key=lambda row: (-row.importance, row.name))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    r = float(np.corrcoef(x, y)[0, 1])
    return 0.0 if math.isnan(r) else r
