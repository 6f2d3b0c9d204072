"""Read a W&B sweep YAML and check it against both W&B's schema and the training config.

Order matters: the file must parse, then satisfy W&B's sweep schema, then every
parameter must be a TrainConfig field with values of the right type, then every
model must fit its parameter budget, and finally W&B's engine must accept the
config (a dry run of `next_run` and `stop_runs`). Only then is anything stored.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel

from agent.engine import sweep_engine
from train.config import EPOCH_METRICS, METRIC_GOALS, ConfigError, TrainConfig
from train.names import unknown_name_hint
from train.overrides import coerce_scalar

SUPPORTED_METHODS = ("grid", "random", "bayes")
# Distributions whose min/max are values of the parameter (the log_uniform family without _values takes exponents).
VALUE_SPACE_BOUNDS = ("int_uniform", "uniform", "q_uniform", "log_uniform_values", "q_log_uniform_values",
                      "inv_log_uniform_values")
# Quantiles probed on distributions: the ends and the middle of what the engine can emit. Not 0 itself:
# scipy's randint.ppf(0) is min - 1, a value W&B's sampling never draws.
PROBE_QUANTILES = np.array([1e-9, 0.01, 0.5, 0.99, 1.0])


class SweepConfigError(ValueError):
    """An invalid sweep file; the message is one line naming the file and the key."""


class SweepSpec(BaseModel):
    """A validated sweep, ready for W&B's engine (`config`) and for the store."""

    source: str
    config: dict[str, Any]

    @property
    def method(self) -> str:
        return self.config["method"]

    @property
    def metric_name(self) -> str | None:
        return self.config.get("metric", {}).get("name")

    @property
    def metric_goal(self) -> str | None:
        return self.config.get("metric", {}).get("goal")

    @property
    def grid_size(self) -> int | None:
        return grid_size(self.config)


def load_sweep_file(path: str | Path) -> SweepSpec:
    """Parse and validate a sweep YAML file; raise SweepConfigError with a one-line reason."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SweepConfigError(f"{path}: no such file") from None
    except OSError as error:
        raise SweepConfigError(f"{path}: cannot be read ({error.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SweepConfigError(f"{path}: invalid YAML{_yaml_position(error)}: {_yaml_problem(error)}") from None
    return validate_sweep(raw, source=str(path))


def validate_sweep(raw: Any, source: str = "<sweep>") -> SweepSpec:
    """Check a loaded sweep config; the result's config is what the engine and store receive."""
    if not isinstance(raw, dict):
        raise SweepConfigError(f"{source}: expected a mapping of sweep keys, found {type(raw).__name__}")
    config = _coerce_yaml_numbers(copy.deepcopy(raw))
    parameters = config.get("parameters")
    if isinstance(parameters, dict):
        _reject_nested(parameters, source)
    _check_schema(config, source)

    method = config["method"]
    if method not in SUPPORTED_METHODS:
        raise SweepConfigError(f"{source}: method '{method}' needs W&B's launch scheduler; "
                               f"use one of {', '.join(SUPPORTED_METHODS)}")
    config["metric"] = _check_metric(config.get("metric"), source) if "metric" in config else None
    if config["metric"] is None:
        del config["metric"]
    if "metric" not in config and (method == "bayes" or "early_terminate" in config):
        needs = "bayes search" if method == "bayes" else "early_terminate"
        raise SweepConfigError(f"{source}: {needs} needs a 'metric' (one of {', '.join(EPOCH_METRICS)})")

    config["parameters"] = {name: _check_parameter(name, spec, source) for name, spec in parameters.items()}
    _check_budgets(config["parameters"], source)
    _dry_run_engine(config, source)
    return SweepSpec(source=source, config=config)


def run_values(engine_config: dict[str, Any]) -> dict[str, Any]:
    """The engine's `{name: {"value": v}}` as plain `{name: v}` with Python scalars."""
    return {name: plain(spec["value"]) for name, spec in engine_config.items()}


def plain(value: Any) -> Any:
    """numpy scalars and arrays from the engine as Python values (JSON and pydantic want these)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def grid_size(config: dict[str, Any]) -> int | None:
    """How many distinct runs a grid sweep holds; None for random and bayes."""
    if config.get("method") != "grid":
        return None
    return math.prod(len(_grid_values(spec)) for spec in config["parameters"].values())


def _grid_values(spec: dict[str, Any]) -> list[Any]:
    if "values" in spec:
        return spec["values"]
    if "value" in spec:
        return [spec["value"]]
    if spec.get("distribution") == "int_uniform":
        return list(range(spec["min"], spec["max"] + 1))
    return np.arange(spec["min"], spec["max"], spec["q"]).tolist()  # q_uniform, as the engine enumerates it


def _yaml_position(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _yaml_problem(error: yaml.YAMLError) -> str:
    return getattr(error, "problem", None) or str(error).splitlines()[0]


def _coerce_yaml_numbers(config: dict[str, Any]) -> dict[str, Any]:
    """PyYAML reads `5e-4` as a string; fix it in every value-holding key of every parameter."""
    parameters = config.get("parameters")
    if not isinstance(parameters, dict):
        return config
    for spec in parameters.values():
        if not isinstance(spec, dict):
            continue
        for key in ("value", "min", "max", "q", "mu", "sigma", "a", "b"):
            if key in spec:
                spec[key] = coerce_scalar(spec[key])
        if isinstance(spec.get("values"), list):
            spec["values"] = [coerce_scalar(v) for v in spec["values"]]
        if isinstance(spec.get("probabilities"), list):
            spec["probabilities"] = [coerce_scalar(v) for v in spec["probabilities"]]
    metric = config.get("metric")
    if isinstance(metric, dict) and "target" in metric:
        metric["target"] = coerce_scalar(metric["target"])
    return config


def _reject_nested(parameters: dict[str, Any], source: str) -> None:
    # W&B's own filler drops nested `parameters` silently; training settings are flat anyway.
    for name, spec in parameters.items():
        if isinstance(spec, dict) and "parameters" in spec:
            raise SweepConfigError(f"{source}: parameters.{name}: nested 'parameters' are not supported "
                                   f"(training settings are flat; see `sweep train --help`)")


def _check_schema(config: dict[str, Any], source: str) -> None:
    schema_violations_from_proposed_config = sweep_engine().schema_violations_from_proposed_config
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            violations = schema_violations_from_proposed_config(config)
    except ValueError as error:  # the engine raises instead of listing for some malformed parameters
        violations = [str(error)]
    if violations:
        raise SweepConfigError(f"{source}: not a valid W&B sweep: {_one_line('; '.join(violations))}")


def _check_metric(metric: dict[str, Any], source: str) -> dict[str, Any]:
    name = metric.get("name")
    if name not in EPOCH_METRICS:
        raise SweepConfigError(f"{source}: metric.name '{name}' is not reported by training; "
                               f"choose one of {', '.join(EPOCH_METRICS)}")
    metric = dict(metric)
    # W&B defaults every goal to minimize; the metric's own direction is the safer default.
    if "goal" not in metric:
        if METRIC_GOALS.get(name) is None:
            raise SweepConfigError(f"{source}: metric '{name}' has no natural direction; set metric.goal")
        metric["goal"] = METRIC_GOALS[name]
    return metric


def _check_parameter(name: str, spec: dict[str, Any], source: str) -> dict[str, Any]:
    """Fill the spec as W&B does, then validate every value it can produce against TrainConfig."""
    fill_parameter = sweep_engine().config.fill_parameter
    if name not in TrainConfig.model_fields:
        raise SweepConfigError(f"{source}: unknown parameter '{name}'{unknown_name_hint(name, TrainConfig.model_fields)}")
    filled = fill_parameter(name, spec)
    if filled is None:
        raise SweepConfigError(f"{source}: parameters.{name}: not a W&B parameter spec ({spec})")
    _, filled_spec = filled
    if name == "max_params":
        return filled_spec  # depends on the model: checked with it in _check_budgets
    for value in candidate_values(name, filled_spec):
        _resolve_or_raise({name: value}, source)
    return filled_spec


def _resolve_or_raise(values: dict[str, Any], source: str) -> None:
    try:
        TrainConfig.resolve(values)
    except ConfigError as error:
        raise SweepConfigError(f"{source}: parameter {error}") from None


def candidate_values(name: str, spec: dict[str, Any]) -> list[Any]:
    """The values W&B's engine may hand a run: listed values, or a distribution's ends and middle."""
    HyperParameter = sweep_engine().params.HyperParameter
    if "values" in spec:
        return list(spec["values"])
    if "value" in spec:
        return [spec["value"]]
    # Bounds first, where they are in the parameter's own units, so an error quotes what the user wrote.
    bounds = [spec[k] for k in ("min", "max") if k in spec] if spec.get("distribution") in VALUE_SPACE_BOUNDS else []
    probed = np.atleast_1d(HyperParameter(name, spec).ppf(PROBE_QUANTILES))
    return bounds + [plain(v) for v in probed if np.isfinite(v)]


def _check_budgets(parameters: dict[str, dict[str, Any]], source: str) -> None:
    """Every model the sweep can pick must fit every budget it can pick, before any run starts."""
    from model.registry import PARAMETER_CAP, BudgetError, check_budget

    models = candidate_values("model", parameters["model"]) if "model" in parameters else [None]
    budgets = candidate_values("max_params", parameters["max_params"]) if "max_params" in parameters else [None]
    for model in models:
        for budget in budgets:
            values = {key: value for key, value in (("model", model), ("max_params", budget)) if value is not None}
            _resolve_or_raise(values, source)  # types and the 5,000,000 cap
            try:
                check_budget(TrainConfig.resolve(values).model, budget or PARAMETER_CAP)
            except BudgetError as error:
                raise SweepConfigError(f"{source}: parameter {error}") from None


def _dry_run_engine(config: dict[str, Any], source: str) -> None:
    """Ask W&B's engine for a first run (and a stop decision) so its own objections surface now."""
    sweeps = sweep_engine()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sweeps.next_run(config, [], validate=False)
            if "early_terminate" in config:
                sweeps.stop_runs(config, [], validate=False)
    except (ValueError, KeyError, TypeError) as error:
        raise SweepConfigError(f"{source}: W&B's sweep engine rejects it: {_one_line(str(error))}") from None


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
