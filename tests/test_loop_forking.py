"""Stages forked from the warm loop behave as started ones: exit status, log, SIGTERM, SIGKILL, the loop's lock
and temporary files left alone; and `zeroloop bench startup` reports consistent figures for both ways.

The forking runs in a child interpreter of the test (a driver script), never in the pytest process itself,
which may have run torch before (a forked OpenMP pool can hang)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import cli_env, run_cli

DRIVER = r'''
import fcntl, json, os, signal, sys, tempfile, time
from zeroloop import layout
from zeroloop.loop import forking, sync
from zeroloop.loop.children import Child, ZEROLOOP_COMMAND
from zeroloop.storage import BaseDir

root = sys.argv[1]
keep = tempfile.TemporaryDirectory(prefix="zeroloop-parent-")  # removed at this process's exit, not a child's
forking.warm_up()
out = {}

def run(name, *args):
    c = Child.start(name, ZEROLOOP_COMMAND + list(args), os.path.join(root, name + ".log"), "test", fork=True)
    assert isinstance(c.proc, forking.ForkedProcess)
    return c

os.makedirs(os.path.join(root, "empty"))
out["shuffle_rc"] = run("shuffle", "shuffle", os.path.join(root, "empty"), "--min-rows", "10").proc.wait(120)
out["badflag_rc"] = run("export", "export", "--no-such-flag").proc.wait(120)
base = BaseDir.open(os.path.join(root, "run"))
base.storage.makedirs(layout.loop(base.root))
with sync.run_lock(base):
    sp = run("selfplay", "selfplay", "--output-dir", base.selfplay, "--models-dir", base.models,
             "--config", "cpu", "--threads", "1", "--seed", "3")
    hang = run("hang", "selfplay", "--output-dir", os.path.join(root, "sp2"), "--models-dir", base.models,
               "--config", "cpu", "--threads", "1", "--seed", "4")
    out["poll_running"] = sp.poll()
# the loop's lock is free once the loop lets it go, though its stages run on
with open(layout.loop_lock(base.root), "a+") as f:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    out["lock_free"] = True
end = time.monotonic() + 300
while b"first search step" not in open(sp.log_path, "rb").read() and time.monotonic() < end:
    time.sleep(0.05)
sp.proc.send_signal(signal.SIGTERM)
out["sigterm_rc"] = sp.proc.wait(120)
hang.proc.kill()
out["sigkill_rc"] = hang.proc.wait(120)
out["parent_tmp_kept"] = os.path.isdir(keep.name)
print(json.dumps(out))
'''


def test_forked_stages_behave_as_started_ones(tmp_path):
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path)], env=cli_env(None), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"shuffle_rc": 3, "badflag_rc": 2, "poll_running": None, "lock_free": True, "sigterm_rc": 0,
                   "sigkill_rc": -9, "parent_tmp_kept": True}
    shuffle_log = (tmp_path / "shuffle.log").read_text()
    assert "=== " in shuffle_log and "not enough rows" in shuffle_log  # the header, then the stage's own lines
    assert "no-such-flag" in (tmp_path / "export.log").read_text()
    selfplay_log = (tmp_path / "selfplay.log").read_text()
    assert "SIGTERM: writing finished games" in selfplay_log and "selfplay stopped" in selfplay_log


def test_bench_startup_figures_are_consistent():
    stages = ["selfplay", "shuffle", "export"]
    proc = run_cli("bench", "startup", "--json", "--repeats", "1", "--model-kind", "b1c16", "--board-size", "5",
                   "--stages", ",".join(stages), "--cycle-seconds", "50", timeout=600)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout.strip().splitlines()[-1])
    assert d["stages"] == stages and d["processes_fresh"] == d["processes_warm"] == len(stages)
    for way in ("fresh", "warm"):
        parts = [d[f"selfplay_first_step_{way}_s"], d[f"selfplay_stop_{way}_s"],
                 d[f"shuffle_start_to_exit_{way}_s"], d[f"export_start_to_exit_{way}_s"]]
        assert all(p > 0 for p in parts)
        assert abs(d[f"fixed_cost_{way}_s"] - sum(parts)) < 0.01
        assert abs(d[f"fixed_share_{way}"] - d[f"fixed_cost_{way}_s"] / 50) < 0.001
        assert d[f"max_start_to_first_step_{way}_s"] == max(parts[0], parts[2], parts[3])
    assert abs(d["warm_over_fresh"] - d["fixed_cost_warm_s"] / d["fixed_cost_fresh_s"]) < 0.01
    assert d["python_s"] > 0 and d["import_torch_s"] > 0 and d["warm_up_s"] > 0
    assert not any(k.startswith(("train_", "gatekeeper_", "report_")) for k in d)


def test_bench_startup_refuses_bad_flags():
    for flags, why in ((["--stages", "selfplay,nap"], "choose from"), (["--repeats", "0"], "need at least 1")):
        proc = run_cli("bench", "startup", "--json", *flags)
        assert proc.returncode == 2 and why in proc.stderr, (flags, proc.stderr)
