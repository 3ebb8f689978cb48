"""The exporter: training exports become named, checked model dirs for self-play or gating."""

from __future__ import annotations

import os
import posixpath
import signal
import subprocess
import time

import torch

from conftest import cli, cli_env, run_cli
from zeroloop import export
from zeroloop.nn import modelfile
from zeroloop.nn.model import build_model
from zeroloop.storage import BaseDir


def _training_export(base: BaseDir, name: str, extra: bool = False, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = build_model("b1c16", 5).eval()
    base.storage.makedirs(base.toexport(extra))
    info = modelfile.ModelInfo.for_model(net, name, samples_trained=100 + seed, data_rows=1000)
    modelfile.save_model(base.storage, posixpath.join(base.toexport(extra), name), net, info)
    return net


def test_export_without_gating_goes_to_models_and_precreates_selfplay(tmp_path):
    base = BaseDir.open(str(tmp_path))
    net = _training_export(base, "t-s100-d1000")
    written = export.export_pending(base, "run1", gating=False)
    target = posixpath.join(base.models, "run1-t-s100-d1000")
    assert written == [target]
    loaded, info = modelfile.load_model(base.storage, target)
    assert info.name == "run1-t-s100-d1000" and info.samples_trained == 100 and info.data_rows == 1000
    x = torch.zeros(2, 12, 5, 5)
    x[:, 0] = 1
    g = torch.zeros(2, 10)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, g).policy, net(x, g).policy)
    assert os.path.isdir(base.tdata("run1-t-s100-d1000")) and os.path.isdir(base.sgfs("run1-t-s100-d1000"))
    assert os.listdir(base.toexport()) == []  # source removed once published
    assert export.export_pending(base, "run1", gating=False) == []


def test_gating_extra_skips_known_names_and_broken_exports(tmp_path, caplog):
    base = BaseDir.open(str(tmp_path))
    _training_export(base, "t-s1-d1", seed=1)
    _training_export(base, "t-s2-d2", seed=2)
    _training_export(base, "x-s3-d3", extra=True, seed=3)
    os.makedirs(posixpath.join(base.rejectedmodels, "run1-t-s2-d2"))  # already rejected by gating
    broken = posixpath.join(base.toexport(), "t-s4-d4")
    os.makedirs(broken)
    open(posixpath.join(broken, modelfile.WEIGHTS_FILE), "wb").write(b"garbage")
    open(posixpath.join(broken, modelfile.INFO_FILE), "w").write("{}")
    written = export.export_pending(base, "run1", gating=True)
    assert sorted(written) == sorted([posixpath.join(base.modelstobetested, "run1-t-s1-d1"),
                                      posixpath.join(base.models_extra, "run1-x-s3-d3")])
    assert not os.path.exists(posixpath.join(base.toexport(), "t-s2-d2"))  # known name: source dropped
    assert os.path.isdir(broken) and "t-s4-d4" in caplog.text  # broken: left alone, named
    assert not os.path.exists(base.selfplay_model("run1-x-s3-d3"))  # extra models never play
    assert not os.path.exists(base.models) or not os.listdir(base.models)


def test_export_cli_one_shot_and_loop_stops_on_sigterm(tmp_path):
    base = BaseDir.open(str(tmp_path))
    _training_export(base, "t-s1-d1")
    r = run_cli("export", str(tmp_path), "-name-prefix", "r", timeout=120)
    assert r.returncode == 0, r.stderr
    assert os.listdir(base.models) == ["r-t-s1-d1"]
    proc = subprocess.Popen(cli("export", str(tmp_path), "--name-prefix", "r", "--loop", "--poll-seconds", "0.2"),
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    _training_export(base, "t-s2-d2")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "r-t-s2-d2" not in os.listdir(base.models):
        time.sleep(0.1)
    assert "r-t-s2-d2" in os.listdir(base.models)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    assert proc.returncode == 0
    r = run_cli("export", str(tmp_path), "--name-prefix", "bad/name", timeout=120)
    assert r.returncode == 2 and "--name-prefix" in r.stderr
