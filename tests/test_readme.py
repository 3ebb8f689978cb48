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
    assert "pytest" in tests and "zeroloop loop" in main
    ci = REPO / ".ci" / "run"
    assert os.access(ci, os.X_OK)
    lines = [ln for ln in ci.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[-1] == tests


def test_readme_main_command_uses_flags_that_exist():
    import argparse

    from zeroloop import loop

    main = readme_commands()[0]
    words = main.split("zeroloop loop", 1)[1].split()
    parser = argparse.ArgumentParser()
    loop.add_arguments(parser)
    args = parser.parse_args(words)  # exits (fails the test) on an unknown flag
    assert args.name_prefix and args.basedir.startswith("runs/")
