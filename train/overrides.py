"""`key=value` overrides from the command line, typed the way YAML types them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from train.config import ConfigError
from train.yaml_scalar import coerce_scalar


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """['lr=0.1', 'flip=none'] -> {'lr': 0.1, 'flip': 'none'}; a pair without '=' is an error."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE")
        values[key.strip()] = coerce_scalar(yaml.safe_load(raw)) if raw.strip() else None
    return values
