"""One YAML typing fix shared by `--set` overrides and sweep files; imports nothing heavy,
so `sweep create` can use it without loading pydantic."""

from __future__ import annotations

from typing import Any


def coerce_scalar(value: Any) -> Any:
    """Fix PyYAML's one surprise: '5e-4' (no dot) loads as a string, not a float."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
