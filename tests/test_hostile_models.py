"""Hostile model files: every reader names the file and the fault, and keeps what it had.

A running self-play process that finds, one after another, newer models
with NaN weights, a wrong feature version, a truncated weights file and
weights of another net size logs each by path and reason, keeps playing
with its good model (whose files and data stay intact), and still switches
to the next good model. `zeroloop gtp --model` and `zeroloop train
--initial-checkpoint` refuse the same files in one line.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import signal
import subprocess
import threading
import time

import torch
from safetensors.torch import load_file, save_file

from conftest import cli, cli_env, run_cli, save_tiny_model, tiny_selfplay_config
from zeroloop import features
from zeroloop.nn import modelfile

POS = 5
CONFIG = tiny_selfplay_config(model_poll_seconds=0.1)


def save(models: str, name: str, seed: int = 0, kind: str = "b1c16") -> str:
    return save_tiny_model(models, name, seed, kind, POS)


def nan_weights(path: str) -> str:
    p = os.path.join(path, modelfile.WEIGHTS_FILE)
    t = load_file(p)
    t["conv_spatial.weight"] = t["conv_spatial.weight"] * float("nan")
    save_file(t, p)
    return "holds NaN or infinite values"


def future_features(path: str) -> str:
    p = os.path.join(path, modelfile.INFO_FILE)
    d = json.load(open(p))
    d["feature_version"] = features.FEATURE_VERSION + 1
    open(p, "w").write(json.dumps(d))
    return "feature version"


def truncated(path: str) -> str:
    p = os.path.join(path, modelfile.WEIGHTS_FILE)
    data = open(p, "rb").read()
    open(p, "wb").write(data[: len(data) // 3])
    return "not a valid safetensors file"


def other_net(path: str) -> str:
    p = os.path.join(path, modelfile.INFO_FILE)
    d = json.load(open(p))
    d.pop("config")
    d["config_name"] = "b2c32"
    open(p, "w").write(json.dumps(d))
    return "does not match config b2c32"


DAMAGE = {"nan": nan_weights, "features": future_features, "truncated": truncated, "othernet": other_net}


def tree_digest(folder: str) -> str:
    h = hashlib.sha256()
    for p in sorted(glob.glob(os.path.join(folder, "**"), recursive=True)):
        if os.path.isfile(p):
            h.update(p.encode() + open(p, "rb").read())
    return h.hexdigest()


class Lines:
    """A child's stderr, collected by a thread, searchable while it runs."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    def wait_for(self, text: str, proc: subprocess.Popen, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            assert proc.poll() is None, "".join(self.lines)
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r}:\n{''.join(self.lines)}")


def test_selfplay_skips_each_bad_model_by_name_and_keeps_playing(tmp_path):
    models, out = str(tmp_path / "models"), str(tmp_path / "selfplay")
    save(models, "good1", 1)
    good1_files = tree_digest(os.path.join(models, "good1"))
    (tmp_path / "sp.toml").write_text(CONFIG)
    proc = subprocess.Popen(cli("selfplay", "--output-dir", out, "--models-dir", models, "--config",
                                str(tmp_path / "sp.toml"), "--seed", "2", "--threads", "1"),
                            env=cli_env(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    log = Lines(proc.stderr)
    try:
        log.wait_for("loaded model good1", proc, 120)
        for i, (name, damage) in enumerate(DAMAGE.items()):
            staged = save(str(tmp_path / "staging"), name, seed=10 + i)
            reason = damage(staged)
            os.rename(staged, os.path.join(models, name))  # appears whole, newest, and bad
            line = log.wait_for(f"skipping model: model file {os.path.join(models, name)}", proc)
            assert reason in line, line
            time.sleep(0.3)  # a few more polls: each bad model is reported once, not every poll
        written = len(glob.glob(os.path.join(out, "good1", "tdata", "*.npz")))
        log.wait_for("wrote " + os.path.join(out, "good1", "tdata"), proc)
        save(models, "good2", 2)
        log.wait_for("loaded model good2", proc)
        log.wait_for("wrote " + os.path.join(out, "good2", "tdata"), proc)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(log.lines)
    text = "".join(log.lines)
    assert "Traceback" not in text
    for name in DAMAGE:
        assert text.count(f"skipping model: model file {os.path.join(models, name)}") == 1
    assert sorted(os.listdir(out)) == ["good1", "good2"]  # no data under a bad model's name
    assert len(glob.glob(os.path.join(out, "good1", "tdata", "*.npz"))) > written >= 0
    assert tree_digest(os.path.join(models, "good1")) == good1_files
    net, _ = modelfile.load_model_at(os.path.join(models, "good1"))
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_gtp_and_trainer_refuse_bad_models_in_one_line(tmp_path):
    # (every kind of damage is refused by nn.modelfile's own tests; here each command meets two)
    for i, (name, damage) in enumerate(DAMAGE.items()):
        path = save(str(tmp_path / "models"), name, seed=i)
        reason = damage(path)
        if i % 2 == 0:
            r = run_cli("gtp", "--model", path, "--board-size", "5", "--visits", "2", input="name\nquit\n",
                        timeout=120)
            assert r.returncode == 2, r.stderr
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and path in lines[0] and reason in lines[0], r.stderr
            continue
        base = str(tmp_path / f"run-{name}")
        os.makedirs(base)
        r = run_cli("train", base, "--name", "t", "--model-kind", "b1c16", "--batch-size", "16",
                    "--export-mode", "main", "--initial-checkpoint", path, "--threads", "1", "--device", "cpu",
                    "--quit-if-no-data", timeout=120)
        # refused at once, before any waiting for data
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert path in lines[-1] and reason in lines[-1] and "Traceback" not in r.stderr, r.stderr
        assert not os.listdir(os.path.join(base, "train", "t"))  # no checkpoint from a bad start
