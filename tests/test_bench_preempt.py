"""`zeroloop bench preempt`: what it counts reads right (a stop's moves, cuts and visits lost; CPU seconds)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import numpy as np
import pytest

from conftest import run_cli, tiny_selfplay_config
from test_selfplay_preempt import _config, _engine
from zeroloop.bench import preempt
from zeroloop.search import tree
from zeroloop.selfplay.stopping import StepCost, steps_to_keep


def test_a_stops_counts_are_read_from_the_engines_own_stop_line(tmp_path, caplog):
    engine = _engine(tmp_path, _config(num_games=12, max_visits=40, cheap_visits=10, full_search_prob=0.5,
                                       inprogress_stop_search_seconds=600.0), 3)
    cost = StepCost(1.0, 0.0, 12)  # a fixed step cost: searches far from their end are cut (600 s: time never)
    engine.stop_step_cost = lambda: cost
    s = engine.search
    for _ in range(200):
        engine.tick()
        visits = {g: (s.root_visits(g), int(s.game_i[g, tree.G_TARGET])) for g in range(12) if s.searching(g)}
        horizon = steps_to_keep(np.array([t - v for v, t in visits.values()]),
                                np.array([v for v, _ in visits.values()]), cost)
        far = {g: v for g, (v, t) in visits.items() if t - v > horizon}
        if far and len(far) < len(visits):
            break
    assert far and len(far) < len(visits)
    moves = engine.counters.moves
    engine.request_stop()
    with caplog.at_level(logging.INFO, logger="zeroloop.selfplay.engine"):
        engine._finish_searches()
    made = engine.counters.moves - moves
    assert made == len(visits) - len(far)  # each search near its end made its move
    assert preempt.stop_counts(caplog.text) == (made, len(far), sum(far.values()))
    engine.shutdown()


def _child(body: str) -> preempt._Proc:
    """A Python child that exits 0 on SIGTERM, as self-play does."""
    code = f"import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n{body}\n"
    return preempt._Proc([sys.executable, "-c", code], dict(os.environ))


def test_the_cpu_clock_counts_a_processs_work_not_its_wall_time():
    busy, idle = _child("while True: pass"), _child("print('ready', file=sys.stderr); time.sleep(300)")
    deadline = time.monotonic() + 120
    while busy.cpu() < 0.3 or not idle.lines:
        assert time.monotonic() < deadline, "the children got no CPU in 120 s"
        time.sleep(0.05)
    seen = busy.cpu()
    time.sleep(1.0)
    idle_cpu = idle.cpu()
    busy.stop(), idle.stop()
    assert busy.cpu_s >= seen >= 0.3  # its rusage at exit: at least what /proc said while it ran
    assert idle_cpu < 0.5 and idle.cpu_s < 0.5  # a second and more of wall time, hardly any CPU
    assert busy.proc.returncode == idle.proc.returncode == 0


@pytest.mark.soak
def test_bench_preempt_on_the_cpu_clock_restarts_and_counts_its_stops(tmp_path):
    """A minute or more on a loaded machine: run with -m soak."""
    config = tmp_path / "sp.toml"
    config.write_text(tiny_selfplay_config(num_games=6, max_visits=8, full_search_prob=1.0))
    proc = run_cli("bench", "preempt", "--json", "--config", str(config), "--net", "b1c16", "--duration", "8",
                   "--period", "4", "--clock", "cpu", "--save-games", "4", "--save-board-size", "5",
                   "--save-moves", "5", "--seed", "1", timeout=1200)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["clock"] == "cpu" and out["restarts"] >= 1
    assert out["cpu_s_uninterrupted"] >= 7 and out["cpu_s_interrupted"] >= 7  # each run got its CPU budget
    assert out["rows_uninterrupted"] > 0 and out["start_cpu_s"] > 0
    assert out["stop_moves"] is not None and out["stop_visits_lost"] is not None
