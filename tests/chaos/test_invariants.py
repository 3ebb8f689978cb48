"""The chaos invariants have teeth: each planted fault in a BASEDIR is found and named."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import torch

from zeroloop import rows
from zeroloop.bench import synthetic
from zeroloop.chaos import invariants as inv
from zeroloop.nn import modelfile
from zeroloop.nn.model import random_init_model
from zeroloop.storage import BaseDir
from zeroloop.train import checkpoint

POS = 5


def game_rows(gid: int, n: int, rng) -> dict[str, np.ndarray]:
    a = synthetic.random_rows(n, POS, rng)
    a["gameIdN"][:] = gid
    a["metaNC"][:, rows.META_TURN] = np.arange(n)
    return a


def write_games(base: BaseDir, model: str, name: str, games: dict[int, int], rng) -> str:
    """A tdata file holding the given games (id -> rows) and the SGF file that reports them."""
    base.precreate_selfplay(model)
    path = os.path.join(base.tdata(model), name + ".npz")
    rows.write(base.storage, path, rows.concat([game_rows(g, n, rng) for g, n in games.items() if n]))
    lines = [f"(;GM[1]FF[4]SZ[5]C[gameId={g} rows={n} model={model}])" for g, n in games.items()]
    open(os.path.join(base.sgfs(model), name + ".sgfs"), "w").write("\n".join(lines) + "\n")
    return path


def test_games_lost_duplicated_split_and_unreported_are_told_apart(tmp_path):
    base = BaseDir.open(str(tmp_path))
    rng = np.random.default_rng(1)
    write_games(base, "m", "a", {1: 3, 2: 4}, rng)
    lost = write_games(base, "m", "b", {3: 2, 4: 0}, rng)
    clean = inv.check_games(base)
    assert (clean.reported, clean.reported_with_rows, clean.found, clean.lost, clean.duplicated) == (4, 3, 3, [], [])
    os.remove(lost)  # rows of a reported game gone
    shutil.copy(os.path.join(base.tdata("m"), "a.npz"), os.path.join(base.tdata("m"), "c.npz"))  # rows twice
    rows.write(base.storage, os.path.join(base.tdata("m"), "d.npz"), game_rows(9, 2, rng))  # no SGF: unreported
    rep = inv.check_games(base)
    assert rep.lost == [3] and rep.duplicated == [1, 2] and rep.unreported == 1
    assert rep.split == 2  # games 1 and 2 now sit in two files


def test_corrupt_half_published_and_leftover_files_are_found(tmp_path):
    base = BaseDir.open(str(tmp_path))
    rng = np.random.default_rng(2)
    good = write_games(base, "m", "a", {1: 3}, rng)
    bad = write_games(base, "m", "b", {2: 3}, rng)
    data = open(bad, "rb").read()
    open(bad, "wb").write(data[: len(data) // 2])  # truncated under its final name
    net = random_init_model("b1c16", POS, seed=1)
    for name in ("ok", "half"):
        modelfile.save_model(base.storage, os.path.join(base.models, name), net, modelfile.ModelInfo.for_model(net, name))
    os.remove(os.path.join(base.models, "half", modelfile.WEIGHTS_FILE))  # a half-published model
    os.makedirs(os.path.join(base.shuffleddata, "x.1234.tmp"))
    open(good + ".abcd.tmp", "wb").write(b"partial")
    rep = inv.check_files(base)
    named = sorted(c.split(":")[0] for c in rep.corrupt)
    assert named == sorted([bad, os.path.join(base.models, "half")])
    assert "unreadable npz" in " ".join(rep.corrupt) and "missing" in " ".join(rep.corrupt)
    assert sorted(inv.find_leftovers(base)) == sorted([good + ".abcd.tmp", os.path.join(base.shuffleddata,
                                                                                          "x.1234.tmp")])


def _checkpoint(base: BaseDir, samples: int, level: float, at_row: int, epochs: int, history: list[str]) -> None:
    state = {"bucket": {"level": level, "at_row": at_row}, "global_step_samples": samples, "epochs_done": epochs,
             "epoch": None, "plan": {"shuffle_dir": None, "shuffle_id": None, "queue": [], "history": history}}
    base.storage.makedirs(base.train("t"))
    checkpoint.save(base.storage, base.train("t"), {"model": {"w": torch.zeros(1)},
                                                    "train_state": json.dumps(state)})


def test_training_going_back_or_repeating_a_file_is_found(tmp_path):
    base = BaseDir.open(str(tmp_path))
    watch = inv.TrainerWatch(base, "t", samples_per_epoch=64)
    _checkpoint(base, 128, 64.0, 1000, 2, ["f1", "f2"])
    assert watch.poll().samples == 128
    _checkpoint(base, 192, 0.0, 1000, 3, ["f1", "f2", "f3"])  # an epoch taken: credit unchanged
    assert watch.poll().bucket_credit == 192.0 and watch.backwards == []
    os.utime(os.path.join(base.train("t"), checkpoint.NAME), (1, 1))
    _checkpoint(base, 64, 0.0, 900, 1, ["f1", "f1"])  # an old state coming back
    watch.poll()
    rep = inv.check_training(base, "t", watch)
    assert rep.repeated_files == ["f1"]
    assert any("samples went from 192 to 64" in b for b in rep.backwards)
    assert any("data_rows went from 1000 to 900" in b for b in rep.backwards)
    jsonl = os.path.join(base.train("t"), inv.JSONL)
    open(jsonl, "w").write('{"file": "f1", "batch": 0}\n{"file": "f1", "batch": 1}\n{"file": "f1", "batch": 0}\n{"fi')
    assert inv.check_training(base, "t").repeated_batches == 1


def test_a_model_both_accepted_and_rejected_is_found(tmp_path):
    base = BaseDir.open(str(tmp_path))
    net = random_init_model("b1c16", POS, seed=1)
    for root in (base.models, base.rejectedmodels):
        modelfile.save_model(base.storage, os.path.join(root, "m1"), net, modelfile.ModelInfo.for_model(net, "m1"))
    os.makedirs(os.path.join(base.gatekeepersgf, "m1"))
    open(os.path.join(base.gatekeepersgf, "m1", "result.json"), "w").write(json.dumps(
        {"candidate": "m1", "baseline": "random", "decision": "accepted", "reason": "match"}))
    rep = inv.check_models(base)
    assert rep.both == ["m1"] and rep.record_mismatch == ["m1: record says accepted"]
