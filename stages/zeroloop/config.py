"""Typed settings: one dataclass per stage, loaded from flags and TOML or YAML, strictly.

Each stage declares its settings as a (frozen) dataclass whose fields carry
their defaults, a ``doc`` and a valid range (``option``). ``load`` reads a
file, rejects unknown keys (naming them and the file), checks types and
ranges, and applies CLI overrides, so a typo never silently falls back to a
default. ``describe`` prints every key with its default and doc
(``--help-config``).

A stage whose settings are also flags (train, shuffle) gets them from
``add_flags``: one ``--key-name`` per field, with the field's doc as help,
its type (or the field's own ``parse``) and its choices. ``from_args``
builds the settings from a ``--config`` file and the flags given, flags
winning; a bad flag value is refused naming the flag, a bad file value
naming the file and the key.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import tomllib
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from zeroloop import cliflags
from zeroloop.errors import ConfigError

T = TypeVar("T")


def option(default: Any, doc: str, *, lo: float | None = None, hi: float | None = None,
           above: float | None = None, choices: tuple | None = None, factory=None, parse=None,
           metavar: str | None = None) -> Any:
    """A config field with its documentation and valid range.

    ``lo``/``hi`` bound it inclusively, ``above`` exclusively (``above=0``: positive); ``default`` may
    be ``dataclasses.MISSING`` (required). ``parse`` reads its flag's text (default: from the type).
    ``choices`` may be a function giving them, called only when needed (a table that imports heavy
    modules stays out of a light import).
    """
    meta = {"doc": doc, "lo": lo, "hi": hi, "above": above, "choices": choices, "parse": parse,
            "metavar": metavar}
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


def checked(cls: type, data: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """data's values checked against cls's fields (type, range): unknown keys and bad values refused."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                          f"(known: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    return {name: _check(f"{source}: {name}", value, hints[name], fields[name].metadata)
            for name, value in data.items()}


def problems(cls: type, data: dict[str, Any], source: str, known_from: str, across: bool = True) -> list[str]:
    """Why cls would refuse data, every bad key named (not just the first); [] when it would not.

    For settings that reach a stage from elsewhere (a TrainingRun's spec), checked before the stage
    starts. Each key is checked alone: an unknown one gets the nearest known key and known_from (where
    to find them all). Only when all are good, and across is true, are the checks across keys
    (``__post_init__``) run, on the whole of data.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    found = []
    for name in data:
        if name not in fields:
            near = difflib.get_close_matches(str(name), fields, n=1)
            hint = f"did you mean {near[0]}? " if near else ""
            found.append(f"{source}: unknown key {name} ({hint}{known_from} lists every key)")
            continue
        try:
            _check(f"{source}: {name}", data[name], hints[name], fields[name].metadata)
        except ConfigError as e:
            found.append(str(e))
    if across and not found:
        try:
            from_dict(cls, data, source)
        except ConfigError as e:
            found.append(str(e))
    return found


def from_dict(cls: type[T], data: dict[str, Any], source: str = "config") -> T:
    """Build dataclass cls from data, rejecting unknown keys and bad values."""
    return _build(cls, checked(cls, data, source), source)


def _build(cls: type[T], values: dict[str, Any], source: str | None) -> T:
    """cls(**values); source (a file, or None for flags alone) prefixes what a check across keys says."""
    def named(text: str) -> str:
        return text if source is None or text.startswith(source) else f"{source}: {text}"

    missing = [f.name for f in dataclasses.fields(cls) if f.name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(named("missing " + ", ".join(f"{flag_name(n)} (key {n})" for n in missing)))
    try:
        return cls(**values)
    except (ConfigError, TypeError, ValueError) as e:  # a check across keys (__post_init__)
        raise ConfigError(named(str(e))) from None


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
    lo, hi, above, choices = meta.get("lo"), meta.get("hi"), meta.get("above"), choices_of(meta)
    items = value if isinstance(value, (list, tuple)) else [value]
    for v in items:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{where} = {v} is not a finite number")
            if lo is not None and v < lo:
                raise ConfigError(f"{where} = {v} is below the minimum {lo}")
            if hi is not None and v > hi:
                raise ConfigError(f"{where} = {v} is above the maximum {hi}")
            if above is not None and not v > above:
                raise ConfigError(f"{where} = {v} must be {'positive' if above == 0 else f'above {above}'}")
        if choices is not None and v not in choices:
            raise ConfigError(f"{where} = {v!r} is not one of {', '.join(map(repr, choices))}")
    return value


def choices_of(meta: typing.Mapping) -> tuple | None:
    choices = meta.get("choices")
    return tuple(choices()) if callable(choices) else choices


def range_problem(f: dataclasses.Field, value: Any) -> str | None:
    """Why a flag's value is outside its field's range or choices (the flag named), or None."""
    meta = f.metadata
    lo, hi, above, choices = meta.get("lo"), meta.get("hi"), meta.get("above"), choices_of(meta)
    if value is None or isinstance(value, (bool, dict, list, tuple)):
        return None
    flag = flag_name(f.name)
    if choices is not None and value not in choices:
        return f"{flag} {value!r}: one of {', '.join(map(str, choices))}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{flag} {value}: must be a finite number"
    if above is not None and not value > above:
        return f"{flag} {value}: must be {'positive' if above == 0 else f'above {above}'}"
    if lo is not None and hi is not None and not lo <= value <= hi:
        return f"{flag} {value}: must be in {lo}..{hi}"
    if lo is not None and value < lo:
        return f"{flag} {value}: must be at least {lo}"
    if hi is not None and value > hi:
        return f"{flag} {value}: must be at most {hi}"
    return None


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
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} = {value!r} is not a table of keys")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {value!r} is not a list")
        if origin is tuple and args and args[-1] is not Ellipsis:  # fixed length: tuple[int, float]
            if len(value) != len(args):
                raise ConfigError(f"{where} = {value!r} is not a list of {len(args)}")
            return tuple(_coerce(f"{where}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [(_coerce(f"{where}[{i}]", v, item) if item is not Any else v) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    return value


def describe(cls: type) -> str:
    """Every key with its default and doc, as TOML comments and values (a key with no default commented)."""
    lines = []
    for f in dataclasses.fields(cls):
        lines.append(f"# {f.metadata.get('doc', '')}")
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            lines.append(f"# {f.name} = (required)")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        lines.append(f"# {f.name} = (not set)" if default is None else f"{f.name} = {_toml_value(default)}")
    return "\n".join(lines) + "\n"


# --- flags -------------------------------------------------------------------------------------


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _flag_type(f: dataclasses.Field, hint: Any):
    """What reads this field's flag text: the field's own parse, else its (non-None) type."""
    if f.metadata.get("parse") is not None:
        return f.metadata["parse"]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return {int: int, float: cliflags.finite_float, str: str}.get(hint)


def add_flags(parser: argparse.ArgumentParser, cls: type, groups: dict[str, tuple[str, ...]] | None = None,
              skip: tuple[str, ...] = ()) -> None:
    """A ``--key-name`` flag per field of cls (and its KataGo single-dash alias); absent unless given.

    groups: help-section title -> field names (the rest go under "settings"). A bool field becomes
    ``--key``/``--no-key``; a field whose values cannot be spelt on a command line (a list) is file-only.
    """
    hints = typing.get_type_hints(cls)
    where = {name: title for title, names in (groups or {}).items() for name in names}
    sections: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        title = where.get(f.name, "settings")
        if title not in sections:
            sections[title] = parser.add_argument_group(title)
        g = sections[title]
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            shown = " (required)"
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            shown = "" if default is None else f" (default: {_toml_value(default)})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS,
                                  "help": f.metadata.get("doc", "") + shown}
        if hints[f.name] is bool:  # --key/--no-key; a --no-key field is a switch alone (no --no-no-key)
            action = "store_true" if f.name.startswith("no_") else argparse.BooleanOptionalAction
            cliflags.flag(g, flag_name(f.name), action=action, **kwargs)
            continue
        kind = _flag_type(f, hints[f.name])
        if kind is None:
            continue
        if choices_of(f.metadata) and f.metadata.get("parse") is None:
            kwargs["choices"] = choices_of(f.metadata)
        if f.metadata.get("metavar"):
            kwargs["metavar"] = f.metadata["metavar"]
        cliflags.flag(g, flag_name(f.name), type=kind, **kwargs)


def add_config_flags(parser: argparse.ArgumentParser, what: str) -> None:
    """``--config FILE`` and ``--help-config`` of a stage whose settings are flags too."""
    cliflags.flag(parser, "--config", default=None, metavar="FILE",
                  help=f"{what} settings from a TOML or YAML file (keys: --help-config); flags override it")
    cliflags.flag(parser, "--help-config", action="store_true",
                  help="print every setting with its default and meaning, as a config file, and exit")


def given(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The fields of cls whose flags were given in args."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


def from_args(cls: type[T], args: argparse.Namespace, path: str | Path | None = None) -> T:
    """Settings from a config file (None: none), then the flags given; each bad value named by its source."""
    source = str(path) if path else "config"
    values = checked(cls, read_file(path), source) if path else {}
    flags = given(cls, args)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in flags.items():
        problem = range_problem(fields[name], value)
        if problem:
            raise ConfigError(problem)
    values.update(flags)
    return _build(cls, values, source if path else None)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)
