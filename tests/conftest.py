"""Shared test helpers: run the CLI from this checkout, find GNU Go, a free port; each test's logging
set-up undone."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GNUGO = shutil.which("gnugo") or ("/usr/games/gnugo" if Path("/usr/games/gnugo").exists() else None)


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a `python -m zeroloop` child that imports this checkout."""
    env = dict(os.environ)
    paths = [str(REPO / "stages"), str(REPO / "operator")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def cli(*args: str) -> list[str]:
    """argv for running `zeroloop ARGS` from this checkout."""
    return [sys.executable, "-m", "zeroloop", *args]


def run_cli(*args: str, timeout: float = 300, check: bool = False, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cli(*args), env=cli_env(kwargs.pop("env", None)), capture_output=True, text=True,
                          timeout=timeout, check=check, **kwargs)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _root_logging_restored():
    """A command run in-process (``cli.main``) sets the root logger up for itself: a handler on the test's
    captured stderr, closed when the test ends. Put back what was there, or every later log line anywhere
    (another test's operator, a thread) ends in 'Logging error: I/O operation on closed file'."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def gnugo() -> str:
    if GNUGO is None:
        pytest.skip("GNU Go is not installed (apt-get install -y gnugo)")
    return GNUGO


TINY_SELFPLAY = {
    "num_games": 4,
    "board_sizes": [5],
    "board_size_weights": [1.0],
    "data_board_len": 5,
    "max_visits": 4,
    "cheap_visits": 2,
    "full_search_prob": 0.5,
    "max_rows_per_file": 10,
    "max_moves_per_area": 2.0,
}


def tiny_selfplay_config(**overrides) -> str:
    """TOML of a tiny self-play config (5x5, a few visits), with overrides."""
    from zeroloop.config import _toml_value

    values = {**TINY_SELFPLAY, **overrides}
    return "".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items())


def save_tiny_model(models_dir, name: str, seed: int = 0, kind: str = "b1c16", pos_len: int = 5) -> str:
    """Publish a random-weight model dir models_dir/name; return its path."""
    from zeroloop.nn import modelfile
    from zeroloop.nn.model import random_init_model
    from zeroloop.storage import open_location

    net = random_init_model(kind, pos_len, seed=seed)
    storage, path = open_location(os.path.join(str(models_dir), name))
    modelfile.save_model(storage, path, net, modelfile.ModelInfo.for_model(net, name))
    return path
