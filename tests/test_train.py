"""The trainer end to end on tiny nets: bucket, no-repeat, waiting, exports, resume after kill -9."""

from __future__ import annotations

import json
import logging
import os
import posixpath
import shutil
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
import torch

from conftest import cli, cli_env, run_cli
from zeroloop import exits, shuffled
from zeroloop.bench import synthetic
from zeroloop.nn import modelfile
from zeroloop.shuffle import main as shuffle_main
from zeroloop.storage import BaseDir
from zeroloop.train import checkpoint
from zeroloop.train.loop import Trainer, TrainState
from zeroloop.train.options import TrainOptions

POS = 5


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: OpenMP spinning would cost more than it gives
    yield
    torch.set_num_threads(old)


def add_rows(base: BaseDir, n: int, seed: int, first_id: int) -> int:
    return synthetic.write_tdata(base, f"m{seed}", n // 64, 64, POS, np.random.default_rng(seed), first_id)


def shuffle(base: BaseDir, seed: int, batch: int = 16) -> str:
    opts = shuffle_main.ShuffleOptions(min_rows=64, num_processes=1, approx_rows_per_out_file=64,
                                       approx_rows_per_bucket=100_000, batch_size=batch, seed=seed,
                                       cleanup_grace_seconds=0, keep_shuffled_dirs=5)
    return shuffle_main.shuffle_once(base, opts).out_dir


def opts(**kw) -> TrainOptions:
    d = dict(name="t", model_kind="b1c16", batch_size=16, samples_per_epoch=128, device="cpu", seed=3,
             lr_warmup_samples=0, swa_period_samples=32, data_poll_seconds=0.05, print_every_batches=4,
             checkpoint_interval_seconds=1e9, export_mode="main")
    d.update(kw)
    return TrainOptions(**d)


def exports(base: BaseDir) -> list[str]:
    d = base.toexport()
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_bucket_limits_training_across_shuffles_and_exports_each_epoch(tmp_path):
    base = BaseDir.open(str(tmp_path))
    nid = add_rows(base, 640, 1, 0)
    shuffle(base, 1)
    o = opts(max_train_bucket_per_new_data=1.0, stop_when_train_bucket_limited=True)
    t = Trainer(base, o)
    assert t.run() == 0
    # first data only records the row count: one epoch (the initial bucket), then limited
    assert (t.state.global_step_samples, t.state.bucket.level, t.state.bucket.at_row) == (128, 0, 640)
    assert exits.read_stop(base.storage, base.train_stop("t")).reason == exits.BUCKET_LIMITED
    add_rows(base, 320, 2, nid)
    shuffle(base, 2)
    t = Trainer(base, o)
    assert t.run() == 0
    # +320 rows * 1.0 = 320 samples: two epochs of 128, 64 left (< 0.99 epoch)
    assert (t.state.global_step_samples, t.state.bucket.level, t.state.epochs_done) == (384, 64, 3)
    assert exports(base) == ["t-s128-d640", "t-s256-d960", "t-s384-d960"]
    lines = [json.loads(x) for x in open(base.path("train", "t", "metrics_train.jsonl"))]
    reports = [x for x in lines if "loss_policy" in x]
    assert reports and all(np.isfinite(x[f"loss_{k}"]) for x in reports
                           for k in ("policy", "opponent_policy", "value", "score", "ownership"))
    assert {"lr", "samples_per_s", "bucket", "samples", "data_rows"} <= set(reports[-1])
    assert reports[-1]["data_rows"] == 960


def test_no_repeat_trains_each_file_once_then_quits(tmp_path, caplog):
    base = BaseDir.open(str(tmp_path))
    add_rows(base, 960, 1, 0)
    d = shuffle(base, 1)
    files = shuffled.read_summary(base, d).files
    assert len(files) == 15 and all(f.num_rows == 64 for f in files)
    caplog.set_level(logging.INFO)
    t = Trainer(base, opts(no_repeat_files=True, quit_if_no_data=True, export_mode="trainonly"))
    assert t.run() == 0
    # 15 files of 4 batches, 8 batches an epoch: 7 epochs, then one file is not enough
    assert t.state.epochs_done == 7 and t.state.global_step_samples == 7 * 128
    assert len(t.state.plan.history) == 14 == len(set(t.state.plan.history))
    assert "not enough unused shuffled rows" in caplog.text and "--quit-if-no-data" in caplog.text
    stopped = exits.read_stop(base.storage, base.train_stop("t"))
    assert stopped.reason == exits.SHUFFLE_USED_UP and "--no-repeat-files" in stopped.summary
    assert exports(base) == []


def test_no_data_quits_promptly_or_waits_saying_where(tmp_path, caplog):
    base = BaseDir.open(str(tmp_path))
    caplog.set_level(logging.INFO)
    t0 = time.monotonic()
    assert Trainer(base, opts(quit_if_no_data=True)).run() == 0
    assert time.monotonic() - t0 < 5
    assert f"no shuffled data yet in {base.shuffleddata}" in caplog.text
    stopped = exits.read_stop(base.storage, base.train_stop("t"))
    assert stopped.reason == exits.NO_SHUFFLE and stopped.message.endswith("quitting (--quit-if-no-data)")
    assert not os.path.exists(base.path("train", "t", checkpoint.NAME))  # no net without data
    stop = threading.Event()
    t = Trainer(base, opts(), stop)
    th = threading.Thread(target=t.run)
    th.start()
    time.sleep(0.5)
    assert th.is_alive() and "waiting: no shuffled data yet" in caplog.text
    stop.set()
    th.join(timeout=5)
    assert not th.is_alive()
    assert exits.read_stop(base.storage, base.train_stop("t")).reason == exits.SIGNALLED


def test_exported_model_matches_the_averaged_model(tmp_path):
    base = BaseDir.open(str(tmp_path))
    add_rows(base, 640, 1, 0)
    shuffle(base, 1)
    t = Trainer(base, opts(max_epochs_this_instance=2, swa_period_samples=16))
    assert t.run() == 0
    name = exports(base)[-1]
    net, info = modelfile.load_model(base.storage, posixpath.join(base.toexport(), name))
    assert (info.samples_trained, info.data_rows, info.name) == (t.state.global_step_samples, 640, name)
    avg = t.averaged.module.eval()
    x = torch.rand(8, 12, POS, POS).round()
    x[:, 0] = 1
    g = torch.randn(8, 10)
    with torch.no_grad():
        a, b = avg(x, g), net(x, g)
        raw = t.model.eval()(x, g)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(a.value, raw.value)  # the export is the average, not the raw net
    # fine-tuning from the exported model starts from its weights
    t2 = Trainer(base, opts(name="ft", initial_checkpoint=posixpath.join(base.toexport(), name),
                            max_epochs_this_instance=0))
    t2._start_fresh(POS)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(t2.model.state_dict()[k], v)


def test_fp16_on_cpu_and_bad_name_are_clear_errors(tmp_path):
    r = run_cli("train", str(tmp_path), "--name", "t", "--batch-size", "16", "--export-mode", "main",
                "--use-fp16", "--device", "cpu", "--quit-if-no-data", timeout=120)
    assert r.returncode == 2 and "--use-fp16 needs a CUDA device" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("train", str(tmp_path), "-name", "a-b", "-batch-size", "16", "-export-mode", "main", timeout=120)
    assert r.returncode == 2 and "--name 'a-b'" in r.stderr


def _train_cmd(basedir: str, *extra: str) -> list[str]:
    return cli("train", basedir, "--name", "k", "--model-kind", "b1c16", "--batch-size", "16",
               "--export-mode", "main", "--samples-per-epoch", "640", "--max-train-bucket-per-new-data", "2",
               "--stop-when-train-bucket-limited", "--swa-period-samples", "64", "--lr-warmup-samples", "0",
               "--print-every-batches", "1", "--threads", "1", "--seed", "7", "--device", "cpu", *extra)


def _reports(basedir: str) -> list[tuple]:
    lines = [json.loads(x) for x in open(os.path.join(basedir, "train", "k", "metrics_train.jsonl"))]
    return [(x["samples"], x.get("file"), x.get("batch"), round(x["loss_policy"], 4))
            for x in lines if "loss_policy" in x]


def _final_state(basedir: str) -> TrainState:
    base = BaseDir.open(basedir)
    payload, _ = checkpoint.load_latest(base.storage, base.train("k"))
    return TrainState.from_json(payload["train_state"])


def test_kill_9_mid_epoch_then_restart_matches_an_uninterrupted_run(tmp_path):
    ref, victim = str(tmp_path / "ref"), str(tmp_path / "victim")
    base = BaseDir.open(ref)
    nid = add_rows(base, 1024, 1, 0)
    shuffle(base, 1)
    for d in (ref,):  # the first shuffle: one epoch (the initial bucket) in both runs
        r = subprocess.run(_train_cmd(d), env=cli_env(), capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    shutil.copytree(ref, victim)  # moved BASEDIR: content identities keep working
    add_rows(base, 1024, 2, nid)
    new = shuffle(base, 2)
    shutil.copytree(new, os.path.join(victim, "shuffleddata", os.path.basename(new)))
    # +1024 rows * 2 = 2048 samples: 3 more epochs of 640
    r = subprocess.run(_train_cmd(ref), env=cli_env(), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    jsonl = os.path.join(victim, "train", "k", "metrics_train.jsonl")
    start = len(open(jsonl).read().splitlines())
    proc = subprocess.Popen(_train_cmd(victim, "--checkpoint-interval-seconds", "0"), env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    killed_at = None
    while time.monotonic() < deadline and proc.poll() is None:
        lines = open(jsonl).read().split("\n")[start:-1]  # complete lines only
        samples = [json.loads(x)["samples"] for x in lines if '"loss_policy"' in x]
        if samples and samples[-1] >= 640 + 640 + 320:  # half way through the second new epoch
            proc.send_signal(signal.SIGKILL)
            killed_at = samples[-1]
            break
        time.sleep(0.05)
    proc.wait(timeout=30)
    assert killed_at is not None, "the trainer finished before it could be killed"
    assert killed_at < 640 * 4
    r = subprocess.run(_train_cmd(victim), env=cli_env(), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "resumed from" in r.stderr and "mid-epoch" in r.stderr, r.stderr
    a, b = _final_state(ref), _final_state(victim)
    assert (b.global_step_samples, b.bucket, b.epochs_done) == (a.global_step_samples, a.bucket, a.epochs_done)
    assert b.plan.history == a.plan.history
    assert a.global_step_samples >= 4 * 640 - 64
    # batch by batch the same sequence of (samples, file, batch): nothing repeated or skipped
    ra, rb = _reports(ref), _reports(victim)
    assert [x[:3] for x in rb] == [x[:3] for x in ra]
    assert len({x[1:3] for x in ra if x[1]}) == len([x for x in ra if x[1]])
    assert [x[3] for x in rb] == pytest.approx([x[3] for x in ra], abs=2e-3)
    assert sorted(os.listdir(os.path.join(victim, "torchmodels_toexport"))) == \
        sorted(os.listdir(os.path.join(ref, "torchmodels_toexport")))


def test_sigterm_finishes_the_step_checkpoints_and_exits_0(tmp_path):
    base = BaseDir.open(str(tmp_path))
    add_rows(base, 2048, 1, 0)
    shuffle(base, 1)
    cmd = cli("train", str(tmp_path), "--name", "s", "--model-kind", "b1c16", "--batch-size", "16",
              "--export-mode", "main", "--samples-per-epoch", "100000", "--print-every-batches", "1",
              "--threads", "1", "--device", "cpu")
    proc = subprocess.Popen(cmd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    jsonl = os.path.join(str(tmp_path), "train", "s", "metrics_train.jsonl")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (os.path.exists(jsonl) and len(open(jsonl).readlines()) >= 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert time.monotonic() - t0 < 15
    state = _final_state_named(str(tmp_path), "s")
    assert state.epoch is not None and state.epoch.samples == state.global_step_samples > 0
    assert "received SIGTERM" in err


def _final_state_named(basedir: str, name: str) -> TrainState:
    base = BaseDir.open(basedir)
    payload, _ = checkpoint.load_latest(base.storage, base.train(name))
    return TrainState.from_json(payload["train_state"])


def test_bench_train_reports_ratio():
    r = run_cli("bench", "train", "--json", "--model-kind", "b1c16", "--batch-size", "32", "--pos-len", "5",
                "--steps", "3", "--rows-per-file", "128", "--threads", "1", timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["ratio"] > 0 and out["samples_per_s_disk"] > 0 and out["steps"] == 3


def test_shuffle_train_export_on_an_fsspec_memory_basedir():
    from zeroloop import export

    base = BaseDir.open("memory://zeroloop-test-train")
    add_rows(base, 640, 1, 0)
    shuffle(base, 1)
    t = Trainer(base, opts(max_epochs_this_instance=2))
    assert t.run() == 0 and t.state.global_step_samples >= 128
    written = export.export_pending(base, "r", gating=False)
    assert len(written) == 2 and all(modelfile.load_model(base.storage, w)[1].name.startswith("r-t-") for w in written)
    t = Trainer(base, opts(max_epochs_this_instance=1))
    assert t.run() == 0 and t.state.epochs_done == 3  # resumed from the checkpoint on the memory filesystem


def test_symmetry_moves_planes_policy_and_ownership_together():
    from zeroloop.train import data

    n, area = 8, POS * POS
    planes = torch.zeros(n, 12, POS, POS, dtype=torch.uint8)
    planes[:, 0] = 1
    policy = torch.zeros(n, 2, area + 1)
    ownership = torch.full((n, POS, POS), -1, dtype=torch.int8)
    for i in range(n):
        r, c = i % POS, (2 * i + 1) % POS
        planes[i, 1, r, c] = 1
        policy[i, 0, r * POS + c] = 1.0
        policy[i, 1, area] = 1.0  # pass stays pass
        ownership[i, r, c] = 1
    hb = data.HostBatch(0, 0, planes, torch.zeros(n, 10), policy, torch.zeros(n, 8), ownership)
    seen = set()
    for sym in range(8):
        b = data.to_device(hb, torch.device("cpu"), sym, POS)
        for i in range(n):
            stone = int(b.spatial[i, 1].flatten().argmax())
            assert int(b.targets.policy[i, 0, :area].argmax()) == stone
            assert int(b.targets.ownership[i].flatten().argmax()) == stone
            assert b.targets.policy[i, 1, area] == 1.0
        seen.add(tuple(int(b.spatial[i, 1].flatten().argmax()) for i in range(n)))
    assert len(seen) == 8  # eight different transforms


def test_initial_checkpoint_from_a_checkpoint_file(tmp_path):
    base = BaseDir.open(str(tmp_path))
    add_rows(base, 640, 1, 0)
    shuffle(base, 1)
    t = Trainer(base, opts(max_epochs_this_instance=1, export_mode="trainonly"))
    t.run()
    t2 = Trainer(base, opts(name="ft", initial_checkpoint=base.path("train", "t", checkpoint.NAME)))
    t2._start_fresh(POS)
    for k, v in t.model.state_dict().items():
        torch.testing.assert_close(t2.model.state_dict()[k], v)
    assert t2.state.global_step_samples == 0  # a new run: weights only
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    r = run_cli("train", str(tmp_path), "--name", "x", "--batch-size", "16", "--export-mode", "main",
                "--model-kind", "b1c16", "--initial-checkpoint", str(bad), "--threads", "1", timeout=120)
    assert r.returncode == 2 and "not a readable checkpoint" in r.stderr and "Traceback" not in r.stderr


def test_checkpoints_rotate_and_a_corrupt_one_falls_back(tmp_path, caplog):
    base = BaseDir.open(str(tmp_path))
    d = base.train("c")
    base.storage.makedirs(d)
    for i in range(6):
        checkpoint.save(base.storage, d, {"i": torch.tensor(i), "note": f"n{i}"})
    names = sorted(os.listdir(d))
    assert names == [checkpoint.NAME] + [checkpoint.prev_name(i) for i in range(4)]
    payload, path = checkpoint.load_latest(base.storage, d)
    assert int(payload["i"]) == 5 and path.endswith(checkpoint.NAME)
    with open(os.path.join(d, checkpoint.NAME), "r+b") as f:
        f.truncate(100)
    payload, path = checkpoint.load_latest(base.storage, d)
    assert int(payload["i"]) == 4 and path.endswith(checkpoint.prev_name(0))
    assert "cannot use checkpoint" in caplog.text
    assert [int(checkpoint.load_file(base.storage, os.path.join(d, checkpoint.prev_name(i)))["i"])
            for i in range(4)] == [4, 3, 2, 1]
