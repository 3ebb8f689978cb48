"""Bad configs and flags: one line naming the key (and file), exit 2, the run's files untouched.

Each case is checked in-process (the command's own parser and checks, up to
the point where it would touch BASEDIR) and one of each kind through the CLI
as a process. Self-play reads a TOML or YAML config; each bad one (an unknown key, NaN,
infinity, a wrong type, a value out of range, lists that disagree, broken
syntax) is refused before anything is written, with the key and the file
named. Out-of-range flags of the other stages are refused the same way.
"""

from __future__ import annotations

import glob
import hashlib
import importlib
import os

import numpy as np
import pytest

from conftest import run_cli
from zeroloop import cli, cliflags
from zeroloop.bench import synthetic
from zeroloop.errors import UserError
from zeroloop.selfplay import config as spconfig
from zeroloop.storage import BaseDir

BAD_CONFIGS = [
    ("typo.toml", "num_games = 4\nmax_vists = 10\n", ["unknown key max_vists", "known: num_games"]),
    ("nan.yaml", "num_games: 4\nkomi_mean: .nan\n", ["komi_mean = nan is not a finite number"]),
    ("inf.toml", "cpuct = inf\n", ["cpuct = inf is not a finite number"]),
    ("type.toml", 'board_sizes = "9"\n', ["board_sizes = '9' is not a list"]),
    ("range.toml", "num_games = 0\n", ["num_games = 0 is below the minimum 1"]),
    ("huge.yaml", "max_visits: 100000000000\n", ["max_visits = 100000000000 is above the maximum"]),
    ("lists.toml", "board_sizes = [5, 7]\nboard_size_weights = [1.0]\ndata_board_len = 7\n",
     ["board_size_weights has 1 entries but board_sizes has 2"]),
    ("syntax.toml", "num_games = = 4\n", ["is not valid TOML"]),
    ("top.yaml", "- 1\n- 2\n", ["expected a table of keys"]),
    ("bool.toml", "reuse_tree = 1\n", ["reuse_tree = 1 is not true or false"]),
]


def digests(root: str) -> dict[str, str]:
    return {p: hashlib.sha256(open(p, "rb").read()).hexdigest()
            for p in sorted(glob.glob(os.path.join(root, "**"), recursive=True)) if os.path.isfile(p)}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = BaseDir.open(str(tmp_path_factory.mktemp("cfg") / "base"))
    synthetic.write_tdata(base, "m1", 2, 40, 5, np.random.default_rng(1))
    return base


@pytest.mark.parametrize("name,text,words", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_selfplay_config_names_the_key_and_file(tmp_path, name, text, words):
    cfg = tmp_path / name
    cfg.write_text(text)
    with pytest.raises(UserError) as e:
        spconfig.load(str(cfg))
    msg = str(e.value)
    assert "\n" not in msg and str(cfg) in msg and all(w in msg for w in words), msg


def test_bad_selfplay_config_process_writes_nothing(run_dir, tmp_path):
    before = digests(run_dir.root)
    name, text, words = BAD_CONFIGS[0]
    cfg = tmp_path / name
    cfg.write_text(text)
    r = run_cli("selfplay", "--output-dir", run_dir.selfplay, "--models-dir", run_dir.models, "--config", str(cfg),
                "--max-games-total", "1", timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(cfg) in lines[0] and all(w in lines[0] for w in words), r.stderr
    assert digests(run_dir.root) == before


BAD_FLAGS = [
    (("shuffle", "{base}", "--min-rows", "0"), "--min-rows 0: must be positive"),
    (("shuffle", "{base}", "--num-processes", "0", "--min-rows", "5"), "--num-processes 0: must be at least 1"),
    (("shuffle", "{base}", "--keep-target-rows", "-3"), "must be positive, got -3"),
    (("shuffle", "{base}", "--taper-window-exponent", "nan"), "expected a finite number, got 'nan'"),
    (("train", "{base}", "--name", "t", "--batch-size", "0", "--export-mode", "main"), "--batch-size 0"),
    (("train", "{base}", "--name", "../t", "--batch-size", "4", "--export-mode", "main"), "--name '../t'"),
    (("train", "{base}", "--name", "t", "--batch-size", "4", "--export-mode", "main", "--lr-scale", "nan"),
     "expected a finite number, got 'nan'"),
    (("export", "{base}", "--name-prefix", "r", "--loop", "--poll-seconds", "-1"), "--poll-seconds -1.0"),
    (("export", "{base}", "--name-prefix", "r", "--loop", "--poll-seconds", "inf"),
     "expected a finite number, got 'inf'"),
    (("selfplay", "--output-dir", "{base}/selfplay", "--models-dir", "{base}/models", "--max-games-total", "-2"),
     "--max-games-total -2"),
]
# where each command checks its flags (export and selfplay: run() checks before touching files)
VALIDATE = {"shuffle": "zeroloop.shuffle.main:options_from_args", "train": "zeroloop.train.main:options_from_args",
            "export": "zeroloop.export:run", "selfplay": "zeroloop.selfplay.main:run"}


def refusal(argv: list[str], capsys) -> str:
    """The message a command gives for argv, from its parser and checks (before any file is touched)."""
    command, rest = argv[0], argv[1:]
    module = importlib.import_module(cli.COMMANDS[command][0])
    parser = cliflags.ArgumentParser(prog=f"zeroloop {command}")
    module.add_arguments(parser)
    try:
        args = parser.parse_args(rest)
        where, func = VALIDATE[command].split(":")
        getattr(importlib.import_module(where), func)(args)
    except SystemExit as e:
        assert e.code == 2
        return capsys.readouterr().err.strip().splitlines()[-1]
    except UserError as e:
        return str(e)
    raise AssertionError(f"{argv} was accepted")


@pytest.mark.parametrize("argv,words", BAD_FLAGS, ids=[f"{a[0]}-{i}" for i, (a, _) in enumerate(BAD_FLAGS)])
def test_bad_flags_are_named(run_dir, argv, words, capsys):
    before = digests(run_dir.root)
    msg = refusal([a.format(base=run_dir.root) for a in argv], capsys)
    assert words in msg, msg
    assert digests(run_dir.root) == before


def test_bad_flag_process_writes_nothing(run_dir):
    before = digests(run_dir.root)
    argv, words = BAD_FLAGS[6]
    r = run_cli(*[a.format(base=run_dir.root) for a in argv], timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert words in r.stderr.strip().splitlines()[-1], r.stderr
    assert digests(run_dir.root) == before
