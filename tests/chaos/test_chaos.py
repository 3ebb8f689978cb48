"""The asynchronous loop under injected faults: nothing lost, nothing duplicated, nothing corrupt.

The short variant runs by default: it stops after 20 faults over every stage
and every kind of fault (about two minutes; a 6-minute cap only ends a hung
run, so the count does not depend on the machine's speed); the long one is
``pytest -m chaos`` (30 minutes, a fault every 20 s; ZEROLOOP_CHAOS_SECONDS
and ZEROLOOP_CHAOS_INTERVAL change them), the same run as
``zeroloop bench chaos --duration 1800 --interval 20``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import cli_env

from zeroloop.chaos.harness import KINDS, ChaosRun, ChaosSummary


def check(summary: ChaosSummary, min_faults: int, report: list[str], name: str) -> None:
    report.append(f"{name}: {summary.faults_injected} faults injected, {summary.faults_survived} survived, "
                  f"{summary.games_found} games found of {summary.games_reported_with_rows} reported with rows, "
                  f"{summary.files_quarantined} files quarantined; {summary.line()}")
    print(json.dumps(summary.to_dict(), indent=1))
    assert summary.faults_injected >= min_faults
    assert set(summary.faults_by_kind) == set(KINDS)
    assert set(summary.faults_by_stage) >= {"selfplay-0", "shuffle-export-loop", "train", "gatekeeper"}
    assert summary.failed_faults == [] and summary.faults_survived == summary.faults_injected
    assert summary.stage_crashes == [] and summary.unclean_final_stops == []
    assert summary.faults_without_loop_progress == 0
    assert (summary.lost_games, summary.duplicated_games, summary.corrupt_files) == (0, 0, 0), summary.corrupt
    assert summary.games_found == summary.games_reported_with_rows > 0
    assert summary.tmp_leftovers == []
    assert summary.files_quarantined == summary.hostile_files_injected > 0
    assert summary.trainer_backwards == [] and summary.trainer_checkpoints_seen > 1 and summary.trainer_samples > 0
    assert summary.repeated_shuffled_files == 0 and summary.repeated_batches == 0
    assert summary.models_both == [] and summary.models_unloadable == [] and summary.record_mismatches == []
    assert summary.shuffles > 1 and summary.models_accepted + summary.models_rejected > 0
    assert summary.ok


def test_chaos_short(tmp_path, chaos_report):
    """Through `zeroloop bench chaos --json`, so the bench's report is what is checked."""
    r = subprocess.run([sys.executable, "-m", "zeroloop", "bench", "chaos", "--json", "--faults", "20",
                        "--duration", "360", "--interval", "3.5", "--seed", "11", "--basedir", str(tmp_path / "base")],
                       env=cli_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.stderr.strip().splitlines()[-1] == (f"lost games: {out['lost_games']}, duplicated games: "
                                                 f"{out['duplicated_games']}, corrupt files: {out['corrupt_files']}")
    summary = ChaosSummary(**{k: v for k, v in out.items() if k in ChaosSummary.__dataclass_fields__})
    assert out["ok"] == summary.ok
    check(summary, 20, chaos_report, "chaos (short)")


LONG_SECONDS = float(os.environ.get("ZEROLOOP_CHAOS_SECONDS", "1800"))
LONG_INTERVAL = float(os.environ.get("ZEROLOOP_CHAOS_INTERVAL", "20"))


@pytest.mark.chaos
@pytest.mark.timeout(LONG_SECONDS + 900)
def test_chaos_long(tmp_path, chaos_report):
    summary = ChaosRun(str(tmp_path / "base"), duration_s=LONG_SECONDS, interval_s=LONG_INTERVAL, seed=12,
                       selfplay_processes=2, corrupt_every=5).run()
    check(summary, int(LONG_SECONDS / LONG_INTERVAL * 0.8), chaos_report, "chaos (long)")
