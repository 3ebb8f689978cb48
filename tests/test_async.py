"""Asynchronous mode: shuffle-export-loop, and several self-play processes on one BASEDIR."""

from __future__ import annotations

import glob
import os
import posixpath
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from conftest import cli, cli_env, run_cli
from zeroloop import rows, shuffled
from zeroloop.bench import synthetic
from zeroloop.nn import modelfile
from zeroloop.nn.model import build_model
from zeroloop.selfplay.sgfs import parse_game_info
from zeroloop.shuffle import main as shuffle_main
from zeroloop.shuffle_export_loop import ShuffleExportLoop, _Interrupted
from zeroloop.storage import BaseDir


def training_export(base: BaseDir, name: str) -> None:
    torch.manual_seed(0)
    net = build_model("b1c16", 5).eval()
    base.storage.makedirs(base.toexport())
    info = modelfile.ModelInfo.for_model(net, name, samples_trained=10, data_rows=100)
    modelfile.save_model(base.storage, posixpath.join(base.toexport(), name), net, info)


def wait_until(check, proc: subprocess.Popen, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"exited early ({proc.returncode}) waiting for {what}: {proc.stderr.read()}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"no {what} within {timeout} s: {proc.communicate()[1]}")


def test_shuffle_export_loop_shuffles_new_data_exports_and_stops_on_sigterm(tmp_path):
    base = BaseDir.open(str(tmp_path))
    rng = np.random.default_rng(0)
    next_id = synthetic.write_tdata(base, "m1", 2, 200, 5, rng)
    proc = subprocess.Popen(cli("shuffle-export-loop", str(tmp_path), "--name-prefix", "run", "--gating",
                                "--min-rows", "300", "--num-processes", "1", "--shuffle-interval-seconds", "0.2",
                                "--export-poll-seconds", "0.2", "--cleanup-grace-seconds", "0"),
                            env=cli_env(), stderr=subprocess.PIPE, text=True)
    try:
        first = wait_until(lambda: shuffled.complete_dirs(base), proc, 60, "first shuffle")
        assert shuffled.read_summary(base, first[-1]).total_data_rows == 400
        training_export(base, "t-s10-d100")
        wait_until(lambda: os.path.isdir(tmp_path / "modelstobetested" / "run-t-s10-d100"), proc, 30, "export")
        assert (tmp_path / "selfplay" / "run-t-s10-d100" / "tdata").is_dir()
        time.sleep(1.0)  # no new data: no new shuffle
        assert len(shuffled.complete_dirs(base)) == 1
        synthetic.write_tdata(base, "m2", 1, 200, 5, rng, next_id)

        def newer():
            dirs = shuffled.complete_dirs(base)
            return dirs and shuffled.read_summary(base, dirs[-1]).total_data_rows == 600

        wait_until(newer, proc, 60, "second shuffle")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped after 2 shuffles" in err
    leftovers = [p for p in glob.glob(str(tmp_path / "**" / "*.tmp"), recursive=True)]
    assert leftovers == []


def test_a_signal_during_a_shuffle_abandons_it_cleanly(tmp_path, monkeypatch):
    base = BaseDir.open(str(tmp_path))
    synthetic.write_tdata(base, "m1", 3, 200, 5, np.random.default_rng(1))
    opts = shuffle_main.ShuffleOptions(min_rows=100, num_processes=1, approx_rows_per_bucket=50,
                                       cleanup_grace_seconds=0.0)
    loop = ShuffleExportLoop(base, opts, "run", False, 1, 0.0, 1.0)
    real_gather = shuffle_main.scatter.gather
    calls = []

    def gather_then_signal(task):
        calls.append(task)
        if len(calls) == 2:
            loop.request_stop()  # what the SIGTERM handler does, here mid-way through the gather phase
        return real_gather(task)

    monkeypatch.setattr(shuffle_main.scatter, "gather", gather_then_signal)
    try:
        loop.shuffle_step()
        raise AssertionError("the shuffle was not interrupted")
    except _Interrupted:
        pass
    assert loop.stop.is_set() and not loop.shuffling
    assert shuffled.complete_dirs(base) == []
    assert not os.listdir(tmp_path / "shuffleddata")  # the staging dir is gone
    assert not os.listdir(tmp_path / "shufflescratch")


def test_two_selfplay_processes_share_one_basedir(tmp_path):
    (tmp_path / "sp.toml").write_text("num_games = 4\nboard_sizes = [5]\ndata_board_len = 5\nmax_visits = 6\n"
                                      "cheap_visits = 2\nfull_search_prob = 0.5\nmax_rows_per_file = 25\n"
                                      "max_moves_per_area = 3.0\n")
    procs = [subprocess.Popen(cli("selfplay", "--output-dir", str(tmp_path / "selfplay"), "--models-dir",
                                  str(tmp_path / "models"), "--config", str(tmp_path / "sp.toml"),
                                  "--max-games-total", "12", "--seed", str(seed), "--threads", "1"),
                              env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for seed in (1, 2)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    tdata = sorted(glob.glob(str(tmp_path / "selfplay" / "random" / "tdata" / "*.npz")))
    sgfs = sorted(glob.glob(str(tmp_path / "selfplay" / "random" / "sgfs" / "*.sgfs")))
    assert len(tdata) >= 2 and len(set(map(os.path.basename, tdata))) == len(tdata)
    games = [parse_game_info(line) for f in sgfs for line in Path(f).read_text().splitlines()]
    assert len(games) == 24 and len({g for g, _ in games}) == 24  # every game once, ids distinct
    base = BaseDir.open(str(tmp_path))
    total = sum(rows.count_rows(base.storage, p) for p in tdata)
    assert total == sum(r for _, r in games)
    # Random-bootstrap rows count up to --min-rows: ask for exactly all of them.
    p = run_cli("shuffle", str(tmp_path), "--min-rows", str(total), "--num-processes", "1", timeout=120)
    assert p.returncode == 0, p.stderr
    summary = shuffled.read_summary(base, p.stdout.strip())
    assert summary.total_data_rows == total and summary.num_rows == total
