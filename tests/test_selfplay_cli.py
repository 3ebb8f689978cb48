"""`zeroloop selfplay` as a process: writes files, picks up new models, stops cleanly on SIGTERM."""

import glob
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import cli, cli_env, run_cli, tiny_selfplay_config
from zeroloop import rows
from zeroloop.nn.model import random_init_model
from zeroloop.nn.modelfile import ModelInfo, save_model
from zeroloop.selfplay.sgfs import parse_game_info
from zeroloop.storage import open_location

CONFIG = tiny_selfplay_config(num_games=8, max_visits=8, max_rows_per_file=30, max_moves_per_area=3.0,
                              model_poll_seconds=0.2, log_every_seconds=2.0)


def save(models: Path, name: str, seed: int) -> None:
    net = random_init_model("b1c16", 5, seed=seed)
    storage, path = open_location(str(models / name))
    save_model(storage, path, net, ModelInfo.for_model(net, name))


def wait_for(pattern: str, proc: subprocess.Popen, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = glob.glob(pattern)
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"selfplay exited early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"nothing matched {pattern} within {timeout} s: {proc.communicate()[1]}")


def test_selfplay_writes_switches_model_and_stops_on_sigterm(tmp_path):
    models, out = tmp_path / "models", tmp_path / "selfplay"
    models.mkdir()
    (tmp_path / "sp.toml").write_text(CONFIG)
    save(models, "m1", 1)
    proc = subprocess.Popen(cli("selfplay", "--output-dir", str(out), "--models-dir", str(models), "--config",
                                str(tmp_path / "sp.toml"), "--seed", "3", "--threads", "1"),
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(str(out / "m1" / "tdata" / "*.npz"), proc, 120)
        save(models, "m2", 2)  # newer: later games must use it
        wait_for(str(out / "m2" / "tdata" / "*.npz"), proc, 60)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, log = proc.communicate(timeout=10)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, log
    assert took < 10
    assert "selfplay stopped" in log and "SIGTERM" in log
    leftovers = [p for p in glob.glob(str(out / "**"), recursive=True) if ".tmp" in os.path.basename(p)]
    assert leftovers == []
    storage, _ = open_location(str(out))
    seen_games: dict[int, str] = {}
    for model in ("m1", "m2"):
        sgfs = [parse_game_info(line) for f in glob.glob(str(out / model / "sgfs" / "*.sgfs"))
                for line in open(f).read().splitlines() if line]
        for gid, _ in sgfs:
            assert gid not in seen_games, f"game {gid} written twice"
            seen_games[gid] = model
        files = glob.glob(str(out / model / "tdata" / "*.npz"))
        per_file = [rows.read(storage, f, pos_len=5) for f in files]
        data = rows.concat(per_file)
        games_in = [set(d["gameIdN"].tolist()) for d in per_file]
        # whole games per file: at most 30 rows unless one game alone has more, and no game in two files
        assert all(len(d["gameIdN"]) <= 30 or len(g) == 1 for d, g in zip(per_file, games_in))
        assert sum(len(g) for g in games_in) == len(set().union(*games_in))
        assert set(data["modelN"].tolist()) == {model.encode()}
        ids, counts = np.unique(data["gameIdN"], return_counts=True)
        # Every finished game's rows are there, exactly as many as its SGF says, and nothing else.
        assert {int(i): int(c) for i, c in zip(ids, counts)} == {gid: n for gid, n in sgfs if n}
    assert "m2" in seen_games.values() and "m1" in seen_games.values()


def test_selfplay_rejects_bad_config_with_the_key_named(tmp_path):
    (tmp_path / "bad.toml").write_text("num_games = 4\nmax_visits = -3\n")
    r = run_cli("selfplay", "--output-dir", str(tmp_path / "sp"), "--models-dir", str(tmp_path / "m"),
                "--config", str(tmp_path / "bad.toml"), timeout=60)
    assert r.returncode == 2
    assert "max_visits" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "sp").exists()


def _moves(line: str) -> tuple:
    from sgfmill import sgf

    return tuple(node.get_move() for node in sgf.Sgf_game.from_string(line).get_main_sequence()[1:])


def _start(tmp_path, out: str, *extra: str):
    r = run_cli("selfplay", "--output-dir", str(tmp_path / out), "--models-dir", str(tmp_path / "models"),
                "--config", str(tmp_path / "sp.toml"), "--seed", "7", "--threads", "1", "--max-games-total", "4",
                *extra, timeout=120)
    assert r.returncode == 0, r.stderr
    return r


def _games(tmp_path, out: str) -> dict[int, tuple]:
    return {parse_game_info(line)[0]: _moves(line) for f in glob.glob(str(tmp_path / out / "random" / "sgfs" / "*.sgfs"))
            for line in open(f).read().splitlines() if line}


def test_restarts_with_the_same_seed_play_new_games_and_a_logged_nonce_replays_one(tmp_path):
    """A stage restarted with the same arguments (a pod, the chaos harness) must not reuse game ids nor replay
    its games (duplicated training data); the nonce it logs reproduces a start."""
    import re

    (tmp_path / "sp.toml").write_text(CONFIG)
    nonces = [re.search(r"start-nonce ([0-9a-f]{16})", _start(tmp_path, "out").stderr).group(1) for _ in range(2)]
    assert nonces[0] != nonces[1]
    games = _games(tmp_path, "out")
    assert len(games) == 8
    assert len(set(games.values())) == 8, "a restart replayed a game"
    _start(tmp_path, "replay", "--start-nonce", nonces[1])
    replayed = _games(tmp_path, "replay")
    assert len(replayed) == 4 and set(replayed).isdisjoint(games)  # new game ids ...
    assert len(set(replayed.values()) & set(games.values())) == 4  # ... for the same 4 games as that start
    bad = run_cli("selfplay", "--output-dir", str(tmp_path / "x"), "--models-dir", str(tmp_path / "models"),
                  "--config", str(tmp_path / "sp.toml"), "--start-nonce", "xyz", timeout=60)
    assert bad.returncode == 2 and "--start-nonce" in bad.stderr and "Traceback" not in bad.stderr


def test_bench_selfplay_reports_its_ratio_and_overhead():
    """`zeroloop bench selfplay --json` with a tiny net: every figure present, the precision and the features
    passed through (KataGo's v7 inputs: their overhead against the default's, measured in the same run)."""
    import json

    r = run_cli("bench", "selfplay", "--json", "--net", "b1c16", "--board-size", "5", "--games", "4",
                "--visits", "8", "--cheap-visits", "2", "--seconds", "1", "--null-seconds", "1",
                "--raw-seconds", "1", "--warmup-seconds", "0.3", "--rounds", "2", "--nn-precision", "bf16",
                "--features", "katago-v7", "--threads", "1", timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["nn_precision"] == "bf16" and out["games_at_once"] == 4 and out["features"] == "katago-v7"
    assert out["null_evals_per_s_zeroloop_features"] > 0 and out["features_overhead_ratio"] > 0
    assert out["nn_evals_per_s"] > 0 and out["raw_evals_per_s"] > 0 and out["null_evals_per_s"] > 0
    assert out["ratio"] == pytest.approx(out["nn_evals_per_s"] / out["raw_evals_per_s"], abs=2e-3)  # of rounded figures
    assert 0 < out["overhead_us_per_eval"] < 1e6 and out["mean_batch_size"] <= 4
