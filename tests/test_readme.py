"""The documentation's commands: .ci/run runs exactly the README's test command, and every
`zeroloop` command, pytest marker and page link shown in the README or docs/ exists."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shlex

import pytest

import docs
from conftest import REPO


def readme_commands() -> list[str]:
    return docs.code_blocks("sh", pages=[docs.README])


def test_ci_runs_the_readme_test_command():
    main, tests = readme_commands()[:2]
    assert "pytest" in tests and "zeroloop loop" in main
    ci = REPO / ".ci" / "run"
    assert os.access(ci, os.X_OK)
    lines = [ln for ln in ci.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[-1] == tests


def test_readme_main_command_uses_flags_that_exist():
    from zeroloop import loop

    main = readme_commands()[0]
    words = main.split("zeroloop loop", 1)[1].split()
    parser = argparse.ArgumentParser()
    loop.add_arguments(parser)
    args = parser.parse_args(words)  # exits (fails the test) on an unknown flag
    assert args.name_prefix and args.basedir.startswith("runs/")


def zeroloop_commands() -> list[list[str]]:
    """The words after `zeroloop` of every zeroloop command in a shell block of the docs."""
    out = []
    for line in docs.shell_commands():
        for part in re.split(r"&&|\||>", line):  # commands, not the files they write to
            words = shlex.split(part)
            if len(words) > 1 and os.path.basename(words[0]) == "zeroloop":  # the program, not an argument
                out.append(words[1:])
    return out


def parse(words: list[str]) -> argparse.Namespace:
    """Parse a zeroloop command line as `zeroloop.cli.main` would, without running it."""
    from zeroloop import cli, cliflags

    name, rest = words[0], words[1:]
    assert name in cli.COMMANDS, f"no command {name!r}"
    module_name = cli.COMMANDS[name][0]
    if rest and (name, rest[0]) in cli.SUBCOMMANDS:
        module_name, rest = cli.SUBCOMMANDS[(name, rest[0])][0], rest[1:]
    module = importlib.import_module(module_name)
    parser = cliflags.ArgumentParser(prog=f"zeroloop {name}")
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    if name == "bench":  # a benchmark's own flags follow its name
        bench = importlib.import_module(f"zeroloop.bench.{args.name}")
        sub = cliflags.ArgumentParser(prog=f"zeroloop bench {args.name}")
        bench.add_arguments(sub)
        sub.add_argument("--json", action="store_true")
        cliflags.add_common(sub, device=True)
        args = sub.parse_args(args.rest)
    return args


def test_every_zeroloop_command_in_the_docs_parses():
    commands = zeroloop_commands()
    assert {c[0] for c in commands} >= {"loop", "selfplay", "train", "gatekeeper", "bench"}
    for words in commands:
        try:
            parse(words)
        except SystemExit as e:  # argparse's way of refusing a flag
            pytest.fail(f"zeroloop {' '.join(words)}: refused ({e})")


def test_every_pytest_marker_in_the_docs_is_declared():
    text = (REPO / "pyproject.toml").read_text()
    used = {m for line in docs.shell_commands() for m in re.findall(r"pytest[^|;&]* -m (\w+)", line)}
    assert used >= {"soak", "chaos", "cluster"}
    for marker in used:
        assert f'"{marker}:' in text, marker


def test_every_link_between_pages_resolves():
    for page in docs.PAGES:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to {target}"


def test_the_readme_stays_short():
    assert len(docs.README.read_text().splitlines()) <= 260
