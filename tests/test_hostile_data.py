"""Hostile data files: the shuffler and trainer name them, carry on, and lose nothing good.

Bad tdata files among good ones (truncated, random bytes, wrong dtype,
wrong shape, an array missing, a pickle that would run code) make
`zeroloop shuffle` warn naming each, move each to BASEDIR/quarantine with a
reason, and shuffle exactly the good rows; the good files are untouched and
the next shuffle is quiet. A corrupted shuffled file or a malformed
train.json makes the trainer warn naming it and train on the rest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle

import numpy as np

from conftest import run_cli
from zeroloop import quarantine, rows, shuffled
from zeroloop.bench import synthetic
from zeroloop.storage import BaseDir

POS = 5


class RunsCode:
    """Unpickling this would create the marker file: nothing may ever unpickle it."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def digests(folder: str) -> dict[str, str]:
    return {n: hashlib.sha256(open(os.path.join(folder, n), "rb").read()).hexdigest()
            for n in sorted(os.listdir(folder))}


def plant_bad_files(base: BaseDir, marker: str) -> dict[str, str]:
    """Bad tdata files in selfplay/bad/tdata; returns name -> words their message must contain."""
    tdata = base.tdata("bad")
    os.makedirs(tdata)
    good = synthetic.random_rows(20, POS, np.random.default_rng(9), first_id=900_000)
    whole = rows.to_bytes(good)

    def put(name: str, data: bytes, count: dict | None = None) -> None:
        open(os.path.join(tdata, name), "wb").write(data)
        if count is not None:
            open(os.path.join(tdata, name[:-4] + ".json"), "w").write(json.dumps(count))

    count = {"num_rows": 20, "pos_len": POS}
    put("truncated.npz", whole[: len(whole) // 2], count)
    put("random.npz", np.random.default_rng(1).bytes(5000))
    put("dtype.npz", npz_bytes({**good, "gameIdN": good["gameIdN"].astype(np.float64)}), count)
    put("shape.npz", npz_bytes({**good, "policyTargetsNCMove": good["policyTargetsNCMove"][:, :, :-1]}), count)
    put("missing.npz", npz_bytes({k: v for k, v in good.items() if k != "metaNC"}), count)
    evil = np.empty(20, dtype=object)
    evil[:] = [RunsCode(marker)] * 20
    put("pickle.npz", npz_bytes({**good, "gameIdN": evil}), count)
    put("pickle-nocount.npz", npz_bytes({**good, "gameIdN": evil}))
    return {"truncated.npz": "unreadable npz", "random.npz": "unreadable npz header",
            "dtype.npz": "gameIdN has dtype float64", "shape.npz": "policyTargetsNCMove has shape",
            "missing.npz": "missing arrays metaNC", "pickle.npz": "allow_pickle=False",
            "pickle-nocount.npz": "allow_pickle=False"}


def shuffled_ids(out_dir: str) -> np.ndarray:
    base = BaseDir.open(os.path.dirname(os.path.dirname(out_dir)))
    summary = shuffled.read_summary(base, out_dir)
    return np.concatenate([rows.read(base.storage, os.path.join(out_dir, f.name))["gameIdN"] for f in summary.files])


def test_shuffle_quarantines_bad_tdata_and_keeps_every_good_row(tmp_path):
    marker = str(tmp_path / "code-ran")
    base = BaseDir.open(str(tmp_path / "base"))
    next_id = synthetic.write_tdata(base, "m1", 4, 50, POS, np.random.default_rng(1))
    next_id = synthetic.write_tdata(base, "m2", 3, 50, POS, np.random.default_rng(2), first_id=next_id)
    before = {m: digests(base.tdata(m)) for m in ("m1", "m2")}
    expect = plant_bad_files(base, marker)
    args = ("shuffle", base.root, "--min-rows", "100", "--num-processes", "1", "--batch-size", "10")
    r = run_cli(*args, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    for name, words in expect.items():
        line = next((x for x in r.stderr.splitlines() if f"/bad/tdata/{name}" in x and "quarantined" in x), None)
        assert line is not None, f"{name} not reported:\n{r.stderr}"
        assert words in line, line
    assert not os.path.exists(marker), "a pickle from the shared volume was unpickled"
    # every good row, exactly once; good files untouched
    assert sorted(shuffled_ids(r.stdout.strip()).tolist()) == list(range(next_id))
    assert {m: digests(base.tdata(m)) for m in ("m1", "m2")} == before
    # the bad files (and their count files) are in quarantine, each with its reason
    moved = quarantine.list_quarantined(base)
    assert sorted(os.path.basename(p) for p in moved) == sorted(expect)
    for p in moved:
        assert expect[os.path.basename(p)] in open(p + quarantine.REASON_SUFFIX).read()
    assert os.listdir(base.tdata("bad")) == []
    # the next shuffle no longer trips on them
    r = run_cli(*args, timeout=120)
    assert r.returncode == 0 and "WARNING" not in r.stderr, r.stderr


def test_trainer_names_a_corrupt_shuffled_file_and_a_bad_summary_and_carries_on(tmp_path):
    base = BaseDir.open(str(tmp_path))
    synthetic.write_tdata(base, "m1", 4, 64, POS, np.random.default_rng(3))
    r = run_cli("shuffle", str(tmp_path), "--min-rows", "100", "--num-processes", "1", "--batch-size", "16",
                "--approx-rows-per-out-file", "64", timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip()
    summary = shuffled.read_summary(base, out)
    victim = os.path.join(out, summary.files[0].name)
    open(victim, "wb").write(np.random.default_rng(4).bytes(3000))
    train = ("train", str(tmp_path), "--name", "t", "--model-kind", "b1c16", "--batch-size", "16",
             "--export-mode", "main", "--samples-per-epoch", "256", "--max-epochs-this-instance", "1",
             "--threads", "1", "--device", "cpu", "--data-poll-seconds", "0.2", "--quit-if-no-data")
    r = run_cli(*train, timeout=180)
    assert r.returncode == 0, r.stderr
    assert victim in r.stderr and "Traceback" not in r.stderr
    assert os.listdir(base.toexport()), "the epoch trained on the other files and exported"
    # a newer shuffle with a malformed train.json: ignored with a warning naming it, no crash
    bad = base.path("shuffleddata", "29990101-000000-000000")
    os.makedirs(bad)
    open(os.path.join(bad, shuffled.SUMMARY_NAME), "w").write('{"range": [0, "many"]')
    r = run_cli(*train, timeout=180)
    assert r.returncode == 0, r.stderr
    assert f"{bad}/{shuffled.SUMMARY_NAME}: malformed shuffle summary" in r.stderr
    assert "Traceback" not in r.stderr


def test_no_pickle_is_ever_loaded_from_outside():
    """Files from the shared volume are never unpickled: scan the code for every way to do it."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sources = [p for d in ("stages", "operator") for p in (root / d).rglob("*.py")]
    assert len(sources) > 50
    problems = []
    for path in sources:
        text = path.read_text()
        for m in re.finditer(r"\b(pickle|cPickle|dill|joblib|shelve|marshal)\.(loads?|Unpickler|open)\b", text):
            problems.append(f"{path.name}: {m.group(0)}")
        for m in re.finditer(r"(?<![\w.])torch\.load\(([^()]|\([^()]*\))*\)", text):
            if "weights_only=True" not in m.group(0):
                problems.append(f"{path.name}: {m.group(0)}")
        for m in re.finditer(r"(?<![\w.])(np|numpy)\.load\(([^()]|\([^()]*\))*\)", text):
            if "allow_pickle=False" not in m.group(0):
                problems.append(f"{path.name}: {m.group(0)}")
        if re.search(r"allow_pickle\s*=\s*True|weights_only\s*=\s*False|pd\.read_pickle|yaml\.(unsafe_)?load\(",
                     text):
            problems.append(f"{path.name}: unsafe loader")
    assert problems == []
    # and the guards hold: numpy refuses object arrays, torch refuses arbitrary objects
    buf = io.BytesIO()
    np.save(buf, np.array([RunsCode("/nonexistent/x")], dtype=object), allow_pickle=True)
    buf.seek(0)
    try:
        np.load(buf, allow_pickle=False)
        raise AssertionError("numpy loaded an object array")
    except ValueError:
        pass
    import torch

    buf = io.BytesIO()
    torch.save({"x": RunsCode("/nonexistent/x")}, buf)
    buf.seek(0)
    try:
        torch.load(buf, weights_only=True)
        raise AssertionError("torch loaded an arbitrary object")
    except pickle.UnpicklingError:
        pass
