"""Reading a sweep file within fixed bounds, before anything large is built or imported.

A sweep file is a few hundred bytes of YAML, but what it describes can be huge: a
1.2 KB grid of 9 parameters x 10 values is 10^9 points, which W&B's engine
enumerates in memory; YAML anchors and aliases repeat a node without writing it
again ("billion laughs"); nesting can go deeper than Python recurses. So the
file's size, the YAML's expanded node count and depth, and the grid's point count
(the product of the value counts, never the points) are checked here, with only
PyYAML imported: a refused file costs well under a second and a few tens of MB.
"""

from __future__ import annotations

import copy
import math
import re
import stat
import sys
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.resolver import Resolver

from train.yaml_scalar import coerce_scalar

MAX_FILE_BYTES = 1 << 20  # 1 MiB: thousands of times a real sweep file
MAX_YAML_NODES = 100_000  # every scalar, list and mapping, counted as if each alias were written out
MAX_YAML_DEPTH = 32  # a sweep file nests 4 deep
MAX_GRID_POINTS = 100_000  # W&B's engine lists every grid point on every suggestion
INT_LIMIT = 2**63  # JSON readers, SQLite and numpy hold integers in 64 bits

# Keys of a parameter spec that hold numbers; PyYAML leaves `5e-4` (no dot) a string there.
NUMBER_KEYS = ("value", "min", "max", "q", "mu", "sigma", "a", "b")


class SweepConfigError(ValueError):
    """An invalid sweep file; the message is one line naming the file and the key."""


class _Refused(Exception):
    """A bound broken while composing; carries the YAML position."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.mark = mark


def read_sweep_text(path: Path) -> str:
    """The file's text, refused before reading when over MAX_FILE_BYTES or not text."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise SweepConfigError(f"{path}: is a folder, not a sweep file")
        if info.st_size > MAX_FILE_BYTES:
            raise SweepConfigError(f"{path}: {info.st_size:,} bytes, over the {_mib(MAX_FILE_BYTES)} limit for a "
                                   f"sweep file (a sweep file is a few hundred bytes of YAML)")
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)  # a pipe or a growing file says nothing true in stat
    except FileNotFoundError:
        raise SweepConfigError(f"{path}: no such file") from None
    except OSError as error:
        raise SweepConfigError(f"{path}: cannot be read ({error.strerror or error})") from None
    if len(data) > MAX_FILE_BYTES:
        raise SweepConfigError(f"{path}: over the {_mib(MAX_FILE_BYTES)} limit for a sweep file")
    if b"\0" in data:
        raise SweepConfigError(f"{path}: a binary file (it holds NUL bytes), not a YAML sweep file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SweepConfigError(f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); "
                               f"a sweep file is YAML text") from None


def parse_yaml(text: str, source: str) -> Any:
    """One YAML document, composed within MAX_YAML_NODES and MAX_YAML_DEPTH."""
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except _Refused as refused:
        raise SweepConfigError(f"{source}: {refused}{_position(refused.mark)}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SweepConfigError(f"{source}: invalid YAML{_position(mark)}: {_one_line(problem)}") from None
    except (ValueError, TypeError, ArithmeticError, RecursionError) as error:
        # PyYAML's constructors raise these on values such as `!!float x` or an integer of 5,000 digits.
        if "integer string conversion" in str(error):
            raise SweepConfigError(f"{source}: invalid YAML value: an integer of more than "
                                   f"{sys.get_int_max_str_digits():,} digits") from None
        raise SweepConfigError(f"{source}: invalid YAML value: {_one_line(str(error))[:200]}") from None
    finally:
        loader.dispose()


def precheck(raw: Any, source: str) -> dict[str, Any]:
    """The shape, the plain values and the grid's size: everything that needs no W&B or torch.

    Returns a copy with YAML's string-typed numbers made numbers, safe for the W&B schema."""
    if not isinstance(raw, dict):
        raise SweepConfigError(f"{source}: expected a mapping of sweep keys, found {_kind(raw)}")
    config = coerce_numbers(copy.deepcopy(raw))
    _check_plain(config, source)  # after coercion: '1e999' and 'nan' become numbers only there
    parameters = config.get("parameters")
    if "parameters" in config and parameters is None:
        raise SweepConfigError(f"{source}: parameters: empty; list what the sweep varies, such as "
                               f"`lr: {{values: [0.1, 0.01]}}`")
    if parameters is not None and not isinstance(parameters, dict):
        raise SweepConfigError(f"{source}: parameters: expected a mapping of names to specs, such as "
                               f"`lr: {{values: [0.1, 0.01]}}`, found {_kind(parameters)}")
    for name, spec in (parameters or {}).items():
        if not isinstance(spec, dict):
            raise SweepConfigError(f"{source}: parameters.{name}: expected a spec such as `{{value: ...}}` or "
                                   f"`{{values: [...]}}`, found {_kind(spec)}")
    if config.get("method") == "grid" and parameters:
        check_grid_bound(parameters, source)
    return config


def coerce_numbers(config: dict[str, Any]) -> dict[str, Any]:
    """PyYAML reads `5e-4` as a string; make it a number in every value-holding key of every parameter."""
    parameters = config.get("parameters")
    if not isinstance(parameters, dict):
        return config
    for spec in parameters.values():
        if not isinstance(spec, dict):
            continue
        for key in NUMBER_KEYS:
            if key in spec:
                spec[key] = coerce_scalar(spec[key])
        for key in ("values", "probabilities"):
            if isinstance(spec.get(key), list):
                spec[key] = [coerce_scalar(v) for v in spec[key]]
    metric = config.get("metric")
    if isinstance(metric, dict) and "target" in metric:
        metric["target"] = coerce_scalar(metric["target"])
    return config


def point_count(spec: dict[str, Any]) -> int | None:
    """How many grid points one parameter contributes, by arithmetic; None for a continuous one."""
    values, low, high, q = spec.get("values"), spec.get("min"), spec.get("max"), spec.get("q")
    distribution = spec.get("distribution")
    if isinstance(values, list):
        return len(values)
    if "value" in spec:
        return 1
    if distribution in (None, "int_uniform") and q is None and _is_int(low) and _is_int(high):
        return max(high - low + 1, 0)
    if distribution == "q_uniform" and all(_is_number(v) for v in (low, high, q)) and q > 0:
        return max(math.ceil((high - low) / q), 0)  # the length of np.arange(min, max, q), as the engine lists it
    return None


def check_grid_bound(parameters: dict[str, Any], source: str) -> None:
    counts = {name: point_count(spec) for name, spec in parameters.items() if isinstance(spec, dict)}
    total = math.prod(n for n in counts.values() if n is not None)
    if total > MAX_GRID_POINTS:
        factors = " x ".join(f"{_count(n)} {name}" for name, n in counts.items() if n is not None and n > 1)
        raise SweepConfigError(f"{source}: the grid has {_count(total)} points ({factors}), over the limit of "
                               f"{MAX_GRID_POINTS:,}; sample it with `method: random` and a `run_cap`, "
                               f"or list fewer values")


def _check_plain(root: dict[str, Any], source: str) -> None:
    """Only what JSON holds: text keys, finite numbers, 64-bit integers, no dates or binary."""
    stack: list[tuple[str, Any]] = [("", root)]
    seen = 0
    while stack:
        path, value = stack.pop()
        seen += 1
        if seen > MAX_YAML_NODES:  # a config built in Python (not read from YAML) may even be recursive
            raise SweepConfigError(f"{source}: more than {MAX_YAML_NODES:,} values; a sweep needs far fewer")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise SweepConfigError(f"{source}: {path or 'top level'}: key {_show(key)} is not text; "
                                           f"quote it")
                stack.append((f"{path}.{key}" if path else key, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            raise SweepConfigError(f"{source}: {path}: {_show(value)} is not a finite number")
        elif isinstance(value, int) and not isinstance(value, bool) and not -INT_LIMIT <= value < INT_LIMIT:
            raise SweepConfigError(f"{source}: {path}: a {value.bit_length()}-bit integer is outside the "
                                   f"64-bit range")
        elif value is not None and not isinstance(value, (str, int, float, bool)):
            raise SweepConfigError(f"{source}: {path}: YAML reads {_show(value)} as a {type(value).__name__}; "
                                   f"quote it to make it text")


class _BoundedComposer(Composer):
    """PyYAML's composer, counting nodes as if every alias were written out, and the depth."""

    def __init__(self) -> None:
        super().__init__()
        self._nodes = 0
        self._depth = 0
        self._anchor_sizes: dict[str, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if self.check_event(AliasEvent):
            if event.anchor in self.anchors:
                if event.anchor not in self._anchor_sizes:
                    raise _Refused(f"alias *{event.anchor} refers to a node that holds it; a sweep file "
                                   f"cannot be recursive", event.start_mark)
                self._count(self._anchor_sizes[event.anchor], event.start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise _Refused(f"nested deeper than {MAX_YAML_DEPTH} levels", event.start_mark)
        start = self._nodes
        self._count(1, event.start_mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        if event.anchor is not None:
            self._anchor_sizes[event.anchor] = self._nodes - start
        return node

    def _count(self, nodes: int, mark: Any) -> None:
        self._nodes += nodes
        if self._nodes > MAX_YAML_NODES:
            raise _Refused(f"the YAML expands to more than {MAX_YAML_NODES:,} values (anchors and aliases "
                           f"repeat what they name)", mark)


try:  # libyaml's event parser, when PyYAML was built with it; the composer stays the bounded one above
    from yaml._yaml import CParser

    class _Loader(_BoundedComposer, SafeConstructor, Resolver, CParser):
        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            _BoundedComposer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
except ImportError:  # pragma: no cover - pure-Python PyYAML
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Loader(Reader, Scanner, Parser, _BoundedComposer, SafeConstructor, Resolver):  # type: ignore[no-redef]
        def __init__(self, text: str) -> None:
            Reader.__init__(self, text)
            Scanner.__init__(self)
            Parser.__init__(self)
            _BoundedComposer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")  # as YAML spells them
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    return {list: "a list", dict: "a mapping", str: "text", type(None): "nothing"}.get(type(value),
                                                                                      type(value).__name__)


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**15 else f"about {float(n):.1e}"


def _mib(size: int) -> str:
    return f"{size / (1 << 20):g} MiB"


def _position(mark: Any) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


__all__ = ["MAX_FILE_BYTES", "MAX_GRID_POINTS", "MAX_YAML_DEPTH", "MAX_YAML_NODES", "SweepConfigError",
           "check_grid_bound", "coerce_numbers", "parse_yaml", "point_count", "precheck", "read_sweep_text"]
