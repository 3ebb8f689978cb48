"""Typed configs: dataclasses loaded from TOML or YAML, strictly.

Each stage declares its config as a (frozen) dataclass whose fields carry
their defaults and a ``doc`` in ``field(metadata=...)``. ``load`` reads a
file, rejects unknown keys (naming them and the file), checks types and
ranges, and applies CLI overrides, so a typo never silently falls back to a
default. ``describe`` prints every key with its default and doc.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from zeroloop.errors import ConfigError

T = TypeVar("T")


def option(default: Any, doc: str, *, lo: float | None = None, hi: float | None = None,
           choices: tuple | None = None, factory=None) -> Any:
    """A config field with its documentation and valid range."""
    meta = {"doc": doc, "lo": lo, "hi": hi, "choices": choices}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def read_file(path: str | Path) -> dict[str, Any]:
    """Parse a TOML (.toml) or YAML (.yaml/.yml) file into a dict."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config {p}: {e.strerror or e}") from None
    try:
        if p.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"config {p} is not valid {'YAML' if p.suffix in ('.yaml', '.yml') else 'TOML'}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {p}: expected a table of keys at the top level")
    return data


def from_dict(cls: type[T], data: dict[str, Any], source: str = "config") -> T:
    """Build dataclass cls from data, rejecting unknown keys and bad values."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                          f"(known: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        values[name] = _check(f"{source}: {name}", value, hints[name], fields[name].metadata)
    try:
        return cls(**values)
    except ConfigError as e:  # a check across keys (__post_init__): name the file too
        raise ConfigError(str(e) if str(e).startswith(source) else f"{source}: {e}") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: {e}") from None


def load(cls: type[T], path: str | Path | None, overrides: dict[str, Any] | None = None,
         packaged: dict[str, str] | None = None) -> T:
    """Config from a file (None: defaults) with overrides (None values ignored).

    ``packaged`` maps short names ('cpu', 'gpu') to files shipped in zeroloop/configs/.
    """
    if packaged and path in packaged:
        path = Path(str(resources.files("zeroloop") / "configs" / packaged[str(path)]))
    data = read_file(path) if path else {}
    for k, v in (overrides or {}).items():
        if v is not None:
            data[k] = v
    return from_dict(cls, data, str(path) if path else "config")


def _check(where: str, value: Any, hint: Any, meta: typing.Mapping) -> Any:
    value = _coerce(where, value, hint)
    lo, hi, choices = meta.get("lo"), meta.get("hi"), meta.get("choices")
    items = value if isinstance(value, (list, tuple)) else [value]
    for v in items:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{where} = {v} is not a finite number")
            if lo is not None and v < lo:
                raise ConfigError(f"{where} = {v} is below the minimum {lo}")
            if hi is not None and v > hi:
                raise ConfigError(f"{where} = {v} is above the maximum {hi}")
        if choices is not None and v not in choices:
            raise ConfigError(f"{where} = {v!r} is not one of {', '.join(map(repr, choices))}")
    return value


def _coerce(where: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(where, value, inner[0])
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} = {value!r} is not true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} = {value!r} is not an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} = {value!r} is not a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} = {value!r} is not a string")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {value!r} is not a list")
        item = args[0] if args else Any
        out = [(_coerce(f"{where}[{i}]", v, item) if item is not Any else v) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    return value


def describe(cls: type) -> str:
    """Every key with its default and doc, as TOML comments and values."""
    lines = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        lines.append(f"# {f.metadata.get('doc', '')}")
        lines.append(f"{f.name} = {_toml_value(default)}")
    return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)
