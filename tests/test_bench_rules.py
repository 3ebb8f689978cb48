"""`zeroloop bench rules --json` runs and reports its figures (no speed thresholds here)."""

from __future__ import annotations

import json

from conftest import run_cli


def test_bench_rules_json():
    proc = run_cli("bench", "rules", "--json", "--seconds", "0.2", "--batch", "32", timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for key in ("moves_per_s_9x9", "moves_per_s_19x19", "features_per_s_9x9"):
        assert out[key] > 0
    assert out["compile_time_excluded"] is True and out["warmup_compile_s"] >= 0
    assert 60 < out["moves_per_game_9x9"] < 200 and out["moves_per_game_19x19"] > 300  # whole games


def test_bench_rules_bad_flag():
    proc = run_cli("bench", "rules", "--seconds", "0", timeout=300)
    assert proc.returncode == 2 and "--seconds" in proc.stderr and "Traceback" not in proc.stderr
