"""How numbers look in every rendering of the report."""

from __future__ import annotations

from typing import Any

MISSING = "-"


def percent(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2%}"


def score(value: float | None, metric_name: str) -> str:
    if value is None:
        return MISSING
    # Accuracies are fractions; show them as the paper does.
    return f"{value:.2%}" if metric_name.endswith("_acc") else f"{value:.4g}"


def seconds(value: float | None) -> str:
    if value is None:
        return MISSING
    if value < 120:
        return f"{value:.1f} s"
    minutes, rest = divmod(value, 60)
    return f"{int(minutes)} min {rest:02.0f} s" if minutes < 60 else f"{minutes / 60:.1f} h"


def count(value: int | None) -> str:
    return MISSING if value is None else f"{value:,}"


def setting(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return MISSING if value is None else str(value)


def compact_config(config: dict[str, Any]) -> str:
    return ", ".join(f"{key}={setting(value)}" for key, value in config.items())


def setting_label(config: dict[str, Any]) -> str:
    """A pooled setting's name; with seed the only swept parameter, there is just one setting."""
    return compact_config(config) or "(only the seed is swept)"


def seed_list(seeds: list[Any]) -> str:
    return ", ".join(setting(seed) for seed in seeds)


def score_range(low: float, high: float, metric_name: str) -> str:
    return f"{score(low, metric_name)}–{score(high, metric_name)}"


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
