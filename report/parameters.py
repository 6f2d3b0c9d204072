"""The swept hyperparameters of a sweep, and how to read and place their values."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class SweptParameter(BaseModel):
    name: str  # dotted for nested parameters, as W&B flattens them
    kind: Literal["numeric", "categorical"]
    log: bool = False  # drawn from a log distribution: plot on a log axis


def swept_parameters(sweep_config: dict[str, Any]) -> list[SweptParameter]:
    """Every parameter the sweep varies; fixed `value:` entries are left out."""
    return _collect(sweep_config.get("parameters") or {}, prefix="")


def _collect(specs: dict[str, Any], prefix: str) -> list[SweptParameter]:
    found: list[SweptParameter] = []
    for key, spec in specs.items():
        name = f"{prefix}{key}"
        # W&B's schema fills `distribution: constant` into fixed values; neither is swept.
        if not isinstance(spec, dict) or "value" in spec or spec.get("distribution") == "constant":
            continue
        if isinstance(spec.get("parameters"), dict):
            found += _collect(spec["parameters"], prefix=f"{name}.")
        elif "values" in spec:
            values = spec["values"]
            if len(values) > 1:
                kind = "numeric" if all(is_number(v) for v in values) else "categorical"
                found.append(SweptParameter(name=name, kind=kind, log=kind == "numeric" and _spans_decades(values)))
        elif "distribution" in spec or "min" in spec:
            distribution = str(spec.get("distribution", ""))
            kind = "categorical" if distribution == "categorical" else "numeric"
            found.append(SweptParameter(name=name, kind=kind, log="log" in distribution))
    return found


def parameter_value(config: dict[str, Any], name: str) -> Any:
    """The run's value for a dotted name; None when the run lacks it."""
    value: Any = config
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    # W&B sometimes keeps the sweep's {"value": x} wrapping in run configs.
    if isinstance(value, dict) and set(value) == {"value"}:
        value = value["value"]
    return value


def category_label(value: Any) -> str:
    return "none" if value is None else str(value)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _spans_decades(values: list[float]) -> bool:
    # A positive list like [1e-4, 1e-3, 1e-2] reads best on a log axis.
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and max(positive) / min(positive) >= 100
