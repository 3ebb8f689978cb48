"""Chaos runs report their verdict line in pytest's terminal summary, even when they pass."""

from __future__ import annotations

import pytest

LINES = pytest.StashKey[list]()


@pytest.fixture
def chaos_report(request) -> list[str]:
    """Lines to show after the run (each test appends its summary line)."""
    return request.config.stash.setdefault(LINES, [])


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    lines = config.stash.get(LINES, [])
    if lines:
        terminalreporter.section("chaos")
        for line in lines:
            terminalreporter.write_line(line)
