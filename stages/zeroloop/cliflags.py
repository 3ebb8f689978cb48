"""Shared CLI flag helpers: KataGo-style aliases and the common flags.

``flag(parser, "--max-games-total", ...)`` also accepts ``-max-games-total``
(KataGo's spelling), and a ``type=float`` flag refuses NaN and infinity.
Common flags (device, seed, threads, metrics port, log
format) are declared once here so every stage spells them the same way.
"""

from __future__ import annotations

import argparse
import math


class ArgumentParser(argparse.ArgumentParser):
    """argparse that allows single-dash long aliases and never abbreviates."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)


def finite_float(text: str) -> float:
    """A float flag's value: NaN and infinities are refused (NaN passes every `x <= 0` check)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup, name: str, *more: str, **kwargs):
    """Add a --long-name flag that also answers to KataGo's -long-name (float flags must be finite)."""
    if kwargs.get("type") is float:
        kwargs["type"] = finite_float
    names = [name, *more]
    if name.startswith("--") and len(name) > 3:
        names.append(name[1:])
    return parser.add_argument(*names, **kwargs)


def add_common(parser: argparse.ArgumentParser, *, device: bool = False, metrics: bool = False,
               seed: bool = True) -> None:
    """Flags every stage has: logging and threads; seed unless its settings have one; device and metrics
    on request."""
    g = parser.add_argument_group("common")
    flag(g, "--log-format", choices=("text", "json"), default="text", help="log line format")
    flag(g, "--log-level", default="INFO", help="logging level")
    if seed:
        flag(g, "--seed", type=int, default=None, help="random seed (default: from the OS)")
    flag(g, "--threads", type=int, default=None,
         help="CPU threads for torch/numba (default: from the cgroup CPU quota)")
    if device:
        flag(g, "--device", default="auto", help="auto, cpu, cuda or cuda:N")
    if metrics:
        flag(g, "--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
