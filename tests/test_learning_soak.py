"""The measured learning result (issue 5): a loop run from zero, then its newest model against its first.

Soak only (`pytest -m soak tests/test_learning_soak.py`): it trains for
ZEROLOOP_SOAK_HOURS (default 2) on this machine's CPU with the loop's
defaults, through tools/measure_learning.py, which writes the figures the
README quotes to BASEDIR/measure/learning.json. ZEROLOOP_SOAK_BASEDIR keeps
the run somewhere lasting (default: a temporary directory).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GNUGO, REPO

HOURS = float(os.environ.get("ZEROLOOP_SOAK_HOURS", "2"))


@pytest.mark.soak
@pytest.mark.timeout(int(HOURS * 3600 + 3 * 3600))
@pytest.mark.skipif(GNUGO is None, reason="GNU Go is not installed")
def test_the_newest_model_beats_the_first_in_90_percent_of_100_games(tmp_path):
    base = Path(os.environ.get("ZEROLOOP_SOAK_BASEDIR", tmp_path / "learning"))
    p = subprocess.run([sys.executable, str(REPO / "tools" / "measure_learning.py"), str(base), "--hours", str(HOURS),
                        "--gnugo", GNUGO], capture_output=True, text=True)
    print(p.stdout[-5000:])
    result = json.loads((base / "measure" / "learning.json").read_text())
    assert result["vs_init"]["games"] == 100
    assert result["vs_init"]["score"] >= 0.9, result["vs_init"]
    assert result["vs_gnugo_l1"]["games"] == 100  # reported, not required to win
    assert p.returncode == 0
