"""Many writers on one BASEDIR: 8 self-play processes and a shuffler at once.

Eight `zeroloop selfplay` processes play with the same tiny model into the
same selfplay/<model>/ directories (small files, so they publish often)
while `zeroloop shuffle` runs again and again over what they write. Then:
no two writers collided (every game id once, no file overwritten), the
shuffler never met a half-written file (no skipped or quarantined input),
every shuffled row is a row self-play wrote, and every game in a shuffle is
there whole; after SIGTERM every game an SGF reports is in exactly one tdata
file with exactly its rows, and no staging file is left.
"""

from __future__ import annotations

import glob
import os
import re
import signal
import subprocess
import time

import numpy as np

from conftest import cli, cli_env, run_cli, tiny_selfplay_config
from zeroloop import quarantine, rows, shuffled
from zeroloop.nn import modelfile
from zeroloop.nn.model import random_init_model
from zeroloop.selfplay.sgfs import parse_game_info
from zeroloop.storage import BaseDir, is_tmp, open_location

WRITERS = 8
SHUFFLES = 3
CONFIG = tiny_selfplay_config(max_rows_per_file=6, first_file_min_prop=0.1, max_moves_per_area=1.5,
                              log_every_seconds=3600)


def row_keys(arrays: dict[str, np.ndarray]) -> list[bytes]:
    """One bytes key per row, over every array: equal keys mean equal rows."""
    n = len(arrays["gameIdN"])
    parts = [np.ascontiguousarray(arrays[k]).reshape(n, -1).view(np.uint8).reshape(n, -1) for k in rows.SPECS]
    joined = np.concatenate(parts, axis=1)
    return [joined[i].tobytes() for i in range(n)]


def test_eight_selfplay_processes_and_a_shuffler_share_one_basedir(tmp_path):
    base = BaseDir.open(str(tmp_path / "base"))
    net = random_init_model("b1c16", 5, seed=1)
    storage, path = open_location(os.path.join(base.models, "tiny"))
    modelfile.save_model(storage, path, net, modelfile.ModelInfo.for_model(net, "tiny"))
    (tmp_path / "sp.toml").write_text(CONFIG)
    procs = [subprocess.Popen(cli("selfplay", "--output-dir", base.selfplay, "--models-dir", base.models,
                                  "--config", str(tmp_path / "sp.toml"), "--seed", str(100 + i), "--threads", "1"),
                              env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
              for i in range(WRITERS)]
    shuffles: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(shuffles) < SHUFFLES:
            r = run_cli("shuffle", base.root, "--min-rows", "24", "--num-processes", "1", "--batch-size", "4",
                        "--keep-shuffled-dirs", "1000", timeout=120)
            assert r.returncode in (0, 3), r.stderr
            assert "skipping" not in r.stderr and "quarantined" not in r.stderr, r.stderr
            if r.returncode == 0:
                shuffles.append(r.stdout.strip())
            assert all(p.poll() is None for p in procs), "a self-play process died"
        assert len(shuffles) >= SHUFFLES, "the shuffler did not get enough rows in time"
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        logs = []
        for p in procs:
            try:
                logs.append(p.communicate(timeout=60)[1])
            except subprocess.TimeoutExpired:
                p.kill()
                logs.append(p.communicate()[1])
    assert [p.returncode for p in procs] == [0] * WRITERS, "\n".join(logs)
    assert all("Traceback" not in x for x in logs)

    tdata_files = sorted(glob.glob(os.path.join(base.tdata("tiny"), "*.npz")))
    per_file = {f: rows.read(base.storage, f, pos_len=5) for f in tdata_files}
    games_of_file = {f: set(a["gameIdN"].tolist()) for f, a in per_file.items()}
    rows_of_game: dict[int, int] = {}
    file_of_game: dict[int, str] = {}
    for f, a in per_file.items():
        ids, counts = np.unique(a["gameIdN"], return_counts=True)
        for gid, c in zip(ids.tolist(), counts.tolist()):
            assert gid not in file_of_game, f"game {gid} in {file_of_game.get(gid)} and {f}"
            file_of_game[gid], rows_of_game[gid] = f, c
    reported = [parse_game_info(line) for s in glob.glob(os.path.join(base.sgfs("tiny"), "*.sgfs"))
                for line in open(s).read().splitlines() if line]
    assert len({gid for gid, _ in reported}) == len(reported), "a game reported twice"
    assert {gid: n for gid, n in reported if n} == rows_of_game  # each reported game, whole, in one file
    written = [int(m.group(1)) for x in logs for m in [re.search(r"selfplay stopped: (\d+) games written", x)] if m]
    assert len(written) == WRITERS and min(written) > 0  # every process took part
    all_keys = {k for a in per_file.values() for k in row_keys(a)}
    for out in shuffles:
        if not os.path.isdir(out):
            continue
        summary = shuffled.read_summary(base, out)
        data = rows.concat([rows.read(base.storage, os.path.join(out, f.name)) for f in summary.files])
        keys = row_keys(data)
        assert len(set(keys)) == len(keys), f"{out}: a row twice"
        assert set(keys) <= all_keys, f"{out}: a row self-play never wrote"
        ids, counts = np.unique(data["gameIdN"], return_counts=True)
        whole = {gid: c for gid, c in zip(ids.tolist(), counts.tolist())}
        assert all(rows_of_game[g] == c for g, c in whole.items()), f"{out}: a game cut short"
    assert quarantine.list_quarantined(base) == []
    assert [p for p in glob.glob(os.path.join(base.root, "**"), recursive=True) if is_tmp(p)] == []
    assert len(games_of_file) == len(tdata_files) > WRITERS
