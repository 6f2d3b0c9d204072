"""Read a W&B sweep YAML and check it against both W&B's schema and the training config.

Order matters: the file must be within bounds and parse (agent/sweep_file.py: size,
YAML nodes and depth, plain finite values, the grid's point count; nothing heavy is
imported for that), then satisfy W&B's sweep schema, then every parameter must be a
TrainConfig field with values of the right type, then every model must fit its
parameter budget, and finally W&B's engine must accept the config (a dry run of
`next_run` and `stop_runs`). Only then is anything stored.

A distribution without bounds (normal, log_normal and their q_ forms) can draw a
value training cannot use however it is set; W&B accepts such files, so they are
accepted here with a warning that gives the chance of an invalid draw, and the
agent records such a draw as a failed run, once, never retried and not counted as a
fault of the box (`invalid_draw_reason` says why a draw is unusable).
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

from agent.engine import sweep_engine
from agent.sweep_file import SweepConfigError, parse_yaml, point_count, precheck, read_sweep_text

SUPPORTED_METHODS = ("grid", "random", "bayes")
# Distributions whose min/max are values of the parameter (the log_uniform family without _values takes exponents).
VALUE_SPACE_BOUNDS = ("int_uniform", "uniform", "q_uniform", "log_uniform_values", "q_log_uniform_values",
                      "inv_log_uniform_values")
# Distributions with an infinite tail: any setting may draw outside a bounded key.
UNBOUNDED = ("normal", "q_normal", "log_normal", "q_log_normal")
# Quantiles probed on distributions: the ends and the middle of what the engine can emit. Not 0 itself:
# scipy's randint.ppf(0) is min - 1, a value W&B's sampling never draws.
PROBE_QUANTILES = (1e-9, 0.01, 0.5, 0.99, 1.0)
# Below this chance of an invalid draw (1 run in a billion) a warning would be noise; such a draw is still
# recorded as a failed run if it ever comes.
NEGLIGIBLE_CHANCE = 1e-9

__all__ = ["SweepConfigError", "SweepSpec", "candidate_values", "grid_size", "invalid_draw_reason",
           "load_sweep_file", "plain", "run_values", "validate_sweep"]


class SweepSpec(BaseModel):
    """A validated sweep, ready for W&B's engine (`config`) and for the store."""

    source: str
    config: dict[str, Any]
    warnings: list[str] = []  # accepted, but worth saying at create time (e.g. a tail outside a key's range)

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
    """Read, parse and validate a sweep YAML file; raise SweepConfigError with a one-line reason."""
    path = Path(path)
    raw = parse_yaml(read_sweep_text(path), source=str(path))
    return validate_sweep(raw, source=str(path))


def validate_sweep(raw: Any, source: str = "<sweep>") -> SweepSpec:
    """Check a loaded sweep config; the result's config is what the engine and store receive."""
    config = precheck(raw, source)  # shape, finite values, grid size: before W&B's engine or torch loads
    from train.config import EPOCH_METRICS

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

    notes: list[str] = []
    checked = {}
    for name, spec in parameters.items():
        checked[name], note = _check_parameter(name, spec, source)
        notes += [note] if note else []
    config["parameters"] = checked
    _check_budgets(config["parameters"], source)
    _dry_run_engine(config, source)
    return SweepSpec(source=source, config=config, warnings=notes)


def invalid_draw_reason(values: Mapping[str, Any]) -> str | None:
    """Why training cannot use the values the engine drew for a run, or None when it can.

    The controller calls this on each new suggestion: a reason means the run is recorded
    as failed with it, once, not retried (the draw is the sweep's, not the box's fault)."""
    from train.config import ConfigError, TrainConfig

    try:
        TrainConfig.resolve(values)
    except ConfigError as error:
        return f"invalid draw from the sweep's distributions: {error}"
    return None


def run_values(engine_config: dict[str, Any]) -> dict[str, Any]:
    """The engine's `{name: {"value": v}}` as plain `{name: v}` with Python scalars."""
    return {name: plain(spec["value"]) for name, spec in engine_config.items()}


def plain(value: Any) -> Any:
    """numpy scalars and arrays from the engine as Python values (JSON and pydantic want these)."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def grid_size(config: dict[str, Any]) -> int | None:
    """How many distinct runs a grid sweep holds (by arithmetic, never listing them); None for random and bayes."""
    if config.get("method") != "grid":
        return None
    return math.prod(point_count(spec) or 1 for spec in config["parameters"].values())


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
    except (ValueError, TypeError, KeyError) as error:  # the engine raises instead of listing for some inputs
        violations = [str(error)]
    if violations:
        unique = list(dict.fromkeys(_one_line(v) for v in violations))  # W&B reports a min/max clash twice
        raise SweepConfigError(f"{source}: not a valid W&B sweep: {'; '.join(unique)}")


def _check_metric(metric: dict[str, Any], source: str) -> dict[str, Any]:
    from train.config import EPOCH_METRICS, METRIC_GOALS

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


def _check_parameter(name: str, spec: dict[str, Any], source: str) -> tuple[dict[str, Any], str | None]:
    """Fill the spec as W&B does, then validate every value it can produce against TrainConfig.

    Returns the filled spec and, for an unbounded distribution, a warning if it can draw an invalid value."""
    from train.config import TrainConfig
    from train.names import unknown_name_hint

    fill_parameter = sweep_engine().config.fill_parameter
    if name not in TrainConfig.model_fields:
        raise SweepConfigError(f"{source}: unknown parameter '{name}'{unknown_name_hint(name, TrainConfig.model_fields)}")
    filled = fill_parameter(name, spec)
    if filled is None:
        raise SweepConfigError(f"{source}: parameters.{name}: not a W&B parameter spec ({spec})")
    _, filled_spec = filled
    if name == "max_params":
        return filled_spec, None  # depends on the model: checked with it in _check_budgets
    if filled_spec.get("distribution") in UNBOUNDED and name != "model":
        return filled_spec, _tail_warning(name, filled_spec, source)
    if name == "model":
        return filled_spec, None  # every model name is checked with its budget in _check_budgets
    for value in _distinct(candidate_values(name, filled_spec)):  # a long `values` list, once per value
        _check_field(name, value, source)
    return filled_spec, None


def _distinct(values: list[Any]) -> list[Any]:
    return list({(type(v), repr(v)): v for v in values}.values())


def _check_field(name: str, value: Any, source: str) -> None:
    """One value of one key, judged by that key's own field of TrainConfig (fast: no model recipe, no budget;
    only model and max_params depend on each other, and _check_budgets checks those)."""
    from pydantic import ValidationError

    from train.config import describe_validation_error

    try:
        _field_model(name).model_validate({name: value})
    except ValidationError as error:
        raise SweepConfigError(f"{source}: parameter {describe_validation_error(error)}") from None


@functools.cache
def _field_model(name: str) -> type[BaseModel]:
    from pydantic import create_model

    from train.config import TrainConfig

    return create_model(f"Only_{name}", __config__=TrainConfig.model_config,
                        **{name: (TrainConfig.model_fields[name].annotation, TrainConfig.model_fields[name])})


def _resolve_or_raise(values: dict[str, Any], source: str) -> None:
    from train.config import ConfigError, TrainConfig

    try:
        TrainConfig.resolve(values)
    except ConfigError as error:
        raise SweepConfigError(f"{source}: parameter {error}") from None


def candidate_values(name: str, spec: dict[str, Any]) -> list[Any]:
    """The values W&B's engine may hand a run: listed values, or a distribution's ends and middle."""
    import numpy as np

    HyperParameter = sweep_engine().params.HyperParameter
    if "values" in spec:
        return list(spec["values"])
    if "value" in spec:
        return [spec["value"]]
    # Bounds first, where they are in the parameter's own units, so an error quotes what the user wrote.
    bounds = [spec[k] for k in ("min", "max") if k in spec] if spec.get("distribution") in VALUE_SPACE_BOUNDS else []
    probed = np.atleast_1d(HyperParameter(name, spec).ppf(np.array(PROBE_QUANTILES)))
    return bounds + [plain(v) for v in probed if np.isfinite(v)]


def _tail_warning(name: str, spec: dict[str, Any], source: str) -> str | None:
    """Refuse a distribution whose typical draw is invalid; otherwise say how often a draw is."""
    import numpy as np

    with np.errstate(all="ignore"):
        median = plain(sweep_engine().params.HyperParameter(name, spec).ppf(0.5))
    if isinstance(median, float) and not math.isfinite(median):
        raise SweepConfigError(f"{source}: parameter {name}: {_describe(spec)} draws non-finite values")
    _check_field(name, median, source)  # the type, and the middle of the distribution
    chance = invalid_draw_chance(name, spec)
    if chance < NEGLIGIBLE_CHANCE:
        return None
    if chance >= 0.5:
        raise SweepConfigError(f"{source}: parameter {name}: {_describe(spec)} draws a value outside "
                               f"{name}'s range ({_range(name)}) with probability {chance:.2g}")
    return (f"{source}: parameters.{name}: {_describe(spec)} draws a value outside {name}'s range "
            f"({_range(name)}) with probability {chance:.2g} (1 run in {1 / chance:,.0f}); such a run is "
            f"recorded as failed with its reason, and the sweep goes on")


def invalid_draw_chance(name: str, spec: dict[str, Any]) -> float:
    """The probability that an unbounded distribution draws a value outside the key's range, from its CDF."""
    from scipy import stats

    from train.config import TrainConfig

    kind, mu, sigma, q = spec["distribution"], spec["mu"], spec["sigma"], spec.get("q")
    law = stats.norm(loc=mu, scale=sigma) if "log" not in kind else stats.lognorm(s=sigma, scale=_exp(mu))
    field = TrainConfig.model_fields[name]
    choices = [c for c in get_args(field.annotation) if isinstance(c, (int, float))] \
        if get_origin(field.annotation) is Literal else []
    if choices and q:
        # A Literal such as tta's: the chance of rounding onto one of them is the mass of its rounding interval.
        inside = sum(law.cdf((c / q + 0.5) * q) - law.cdf((c / q - 0.5) * q) for c in choices if c / q == round(c / q))
        return float(min(max(1.0 - inside, 0.0), 1.0))
    if choices:
        return 1.0
    below, above = 0.0, 0.0
    for bound in field.metadata:
        for attribute, side in (("gt", "low"), ("ge", "low"), ("lt", "high"), ("le", "high")):
            limit = getattr(bound, attribute, None)
            if limit is None:
                continue
            edge = _quantized_edge(limit, attribute, q) if q else limit
            if side == "low":
                below = max(below, float(law.cdf(edge)))
            else:
                above = max(above, float(law.sf(edge)))
    return min(below + above, 1.0)


def _exp(x: float) -> float:
    return math.exp(x) if x < 700 else math.inf  # a median of inf is refused before this


def _quantized_edge(limit: float, attribute: str, q: float) -> float:
    """Where the unrounded draw x must lie for round(x / q) * q to satisfy `value <attribute> limit`."""
    steps = limit / q
    if attribute == "ge":
        return (math.ceil(steps) - 0.5) * q
    if attribute == "gt":
        return (math.floor(steps) + 1 - 0.5) * q
    if attribute == "le":
        return (math.floor(steps) + 0.5) * q
    return (math.ceil(steps) - 1 + 0.5) * q  # lt


def _describe(spec: dict[str, Any]) -> str:
    extra = f", q={spec['q']}" if "q" in spec else ""
    return f"{spec['distribution']}(mu={spec['mu']}, sigma={spec['sigma']}{extra})"


def _range(name: str) -> str:
    from train.config import TrainConfig

    symbols = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    field = TrainConfig.model_fields[name]
    if get_origin(field.annotation) is Literal:
        return "one of " + ", ".join(map(str, get_args(field.annotation)))
    parts = [f"{symbols[a]} {getattr(b, a)}" for b in field.metadata for a in symbols if hasattr(b, a)]
    return f"{name} {' and '.join(parts)}" if parts else f"any {name}"


def _check_budgets(parameters: dict[str, dict[str, Any]], source: str) -> None:
    """Every model the sweep can pick must fit every budget it can pick, before any run starts."""
    from model.registry import PARAMETER_CAP, BudgetError, check_budget
    from train.config import TrainConfig

    models = candidate_values("model", parameters["model"]) if "model" in parameters else [None]
    budgets = candidate_values("max_params", parameters["max_params"]) if "max_params" in parameters else [None]
    models, budgets = _distinct(models), _distinct(budgets)  # each pair once
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
