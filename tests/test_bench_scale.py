"""`zeroloop bench scale` on a small history: every figure is there, and the recurring operations' filesystem
calls stay flat while the history grows ten-fold (the design, checked by counting, not by timing)."""

from __future__ import annotations

import json

from conftest import run_cli
from zeroloop import datasummary

FLAT = ("shuffle_plan", "selfplay_poll", "gatekeeper_start", "gatekeeper_poll", "runstats_warm", "export_pass")


def test_bench_scale_figures_and_flat_filesystem_calls(tmp_path):
    proc = run_cli("bench", "scale", "--json", "--scale-down", "25", "--sizes", "1,10", "--repeats", "1",
                   "--operations", ",".join(FLAT + ("loop_cycle",)), "--workdir", str(tmp_path), timeout=600)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout.strip().splitlines()[-1])
    assert d["x1_history"]["tdata_files"] * 10 == d["x10_history"]["tdata_files"] > 0
    for op in FLAT + ("loop_cycle",):
        for size in (1, 10):
            assert d[f"x{size}_{op}_seconds"] > 0 and d[f"x{size}_{op}_peak_mib"] >= 0
        assert d[f"{op}_growth"] > 0
    for op in FLAT:  # ten times the history, the same calls, up to the summaries' bounded checks
        slack = 2 * datasummary.VERIFY_PER_SCAN + 4  # (runstats surveys rows and games)
        assert d[f"x10_{op}_fs_calls"] <= d[f"x1_{op}_fs_calls"] + slack, (op, d[f"x1_{op}_fs_calls"],
                                                                            d[f"x10_{op}_fs_calls"])
        # the calls waited for one after another (the operation's own thread): the same, but for an index
        # rewritten for its check cursor (at most once a minute)
        assert d[f"x10_{op}_serial_calls"] <= d[f"x1_{op}_serial_calls"] + 6, (op, d[f"x1_{op}_serial_calls"],
                                                                                d[f"x10_{op}_serial_calls"])
        assert d[f"x1_{op}_serial_calls"] <= d[f"x1_{op}_fs_calls"]
    assert list(tmp_path.iterdir()) == []  # the synthetic BASEDIR is removed


def test_bench_scale_refuses_bad_flags():
    for flags, why in ((["--sizes", "0,10"], "at least 1"), (["--sizes", "x"], "expected numbers"),
                       (["--operations", "shuffle_plan,nap"], "unknown nap"), (["--latency-ms", "-1"], "not negative")):
        proc = run_cli("bench", "scale", "--json", *flags)
        assert proc.returncode == 2 and why in proc.stderr, (flags, proc.stderr)
