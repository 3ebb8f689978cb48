"""Clock skew on file mtimes: newest-model choice, shuffle window and cleanup stay safe.

Machines sharing a BASEDIR disagree about the time, and copies keep or
reset mtimes. A model dated in the future must not hide every later model
from self-play; tdata files dated far in the past or future must not be
lost from the data count or shuffled twice; shuffle cleanup must never
delete the newest shuffles or one a trainer reads, whatever the dates.
"""

from __future__ import annotations

import os
import time

import numpy as np

from conftest import run_cli, tiny_selfplay_config
from zeroloop import modellist, rows, shuffled
from zeroloop.bench import synthetic
from zeroloop.nn import modelfile
from zeroloop.nn.model import random_init_model
from zeroloop.shuffle import cleanup
from zeroloop.storage import BaseDir, open_location

DAY = 86400.0
YEARS = 10 * 365 * DAY
POS = 5
SELFPLAY = tiny_selfplay_config(num_games=2, max_moves_per_area=1.0)


def save_model(models: str, name: str, seed: int, age_s: float) -> str:
    net = random_init_model("b1c16", POS, seed=seed)
    storage, path = open_location(os.path.join(models, name))
    modelfile.save_model(storage, path, net, modelfile.ModelInfo.for_model(net, name))
    t = time.time() - age_s
    os.utime(os.path.join(path, modelfile.WEIGHTS_FILE), (t, t))
    return path


def test_selfplay_takes_the_newest_model_not_one_dated_in_the_future(tmp_path):
    models = str(tmp_path / "models")
    future = save_model(models, "ahead", 1, -DAY)  # written by a machine whose clock is a day ahead
    storage, root = open_location(models)
    assert modellist.find_latest_model(storage, root) == future  # alone, it is used
    ancient = save_model(models, "ancient", 2, YEARS)  # dated ten years back
    assert modellist.find_latest_model(storage, root) == ancient  # a past date is trusted over a future one
    newest = save_model(models, "current", 3, 5.0)
    assert modellist.find_latest_model(storage, root) == newest
    assert [os.path.basename(p) for _, p in modellist.list_models(storage, root)] == ["ahead", "ancient", "current"]
    (tmp_path / "sp.toml").write_text(SELFPLAY)
    r = run_cli("selfplay", "--output-dir", str(tmp_path / "selfplay"), "--models-dir", models, "--config",
                str(tmp_path / "sp.toml"), "--max-games-total", "2", "--seed", "1", "--threads", "1", timeout=180)
    assert r.returncode == 0, r.stderr
    assert "loaded model current" in r.stderr
    assert f"model {future} is dated 86" in r.stderr and "clock skew" in r.stderr
    assert os.listdir(tmp_path / "selfplay") == ["current"]


def test_shuffle_window_with_skewed_tdata_loses_and_repeats_nothing(tmp_path):
    base = BaseDir.open(str(tmp_path))
    synthetic.write_tdata(base, "m", 6, 40, POS, np.random.default_rng(1))
    files = sorted(os.path.join(base.tdata("m"), n) for n in os.listdir(base.tdata("m")) if n.endswith(".npz"))
    now = time.time()
    dates = [now - YEARS, now - 3 * DAY, now - 2 * DAY, now - DAY, now + DAY, now + YEARS]
    for path, t in zip(files, dates):
        os.utime(path, (t, t))
    r = run_cli("shuffle", str(tmp_path), "--min-rows", "100", "--max-rows", "100", "--num-processes", "1",
                "--batch-size", "10", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "2 tdata files are dated in the future (clock skew?)" in r.stderr
    out = r.stdout.strip()
    summary = shuffled.read_summary(base, out)
    assert summary.range[1] == 240  # every row still counts toward the run's data total
    ids = np.concatenate([rows.read(base.storage, os.path.join(out, f.name))["gameIdN"] for f in summary.files])
    assert len(ids) == len(set(ids.tolist())) == 120  # three whole files, no row twice
    newest_three = np.concatenate([rows.read(base.storage, p)["gameIdN"] for p in files[3:]])
    assert sorted(ids.tolist()) == sorted(newest_three.tolist())  # newest by date, future ones included
    assert all(os.path.exists(p) for p in files)  # the shuffler never removes tdata


def test_cleanup_keeps_newest_and_in_use_shuffles_whatever_their_dates(tmp_path):
    base = BaseDir.open(str(tmp_path))
    names = [f"2026010{i}-000000-000000" for i in range(1, 8)]
    now = time.time()
    dates = [now - YEARS, now + YEARS, now - YEARS, now + DAY, now - DAY, now - YEARS, now - YEARS]
    for name, t in zip(names, dates):
        d = base.path("shuffleddata", name)
        os.makedirs(d)
        open(os.path.join(d, shuffled.SUMMARY_NAME), "w").write("{}")
        os.utime(d, (t, t))
    shuffled.mark_in_use(base, "reader", base.path("shuffleddata", names[0]), now=now + DAY)  # trainer's clock ahead
    removed = cleanup.clean_shuffles(base, keep_newest=2, grace_s=3600, in_use_expiry_s=7200)
    kept = sorted(os.listdir(base.shuffleddata))
    # the two newest by name, the one in use, and the ones dated in the future (too young to judge) stay
    assert kept == [names[0], names[1], names[3], names[5], names[6]]
    assert sorted(os.path.basename(p) for p in removed) == [names[2], names[4]]
