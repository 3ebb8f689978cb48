"""Shared test helpers: run the CLI from this checkout, find GNU Go."""

from __future__ import annotations

import os
import shutil
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


@pytest.fixture
def gnugo() -> str:
    if GNUGO is None:
        pytest.skip("GNU Go is not installed (apt-get install -y gnugo)")
    return GNUGO
