"""The README's commands: .ci/run runs exactly its test command."""

from __future__ import annotations

import os
import re

from conftest import REPO


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```sh\n(.*?)\n```", text, flags=re.S)


def test_ci_runs_the_readme_test_command():
    main, tests = readme_commands()[:2]
    assert "pytest" in tests and "zeroloop match" in main
    ci = REPO / ".ci" / "run"
    assert os.access(ci, os.X_OK)
    lines = [ln for ln in ci.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[-1] == tests


def test_readme_main_command_uses_flags_that_exist():
    main = readme_commands()[0]
    for flag in re.findall(r"(--[a-z-]+)", main.split("zeroloop match", 1)[1]):
        assert flag in (REPO / "stages" / "zeroloop" / "match.py").read_text() or flag in (
            "--mode", "--level", "--chinese-rules", "--positional-superko", "--random"), flag
