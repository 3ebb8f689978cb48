"""The shuffle's plan costs the same at ten times the history: counted in events, not timed.

A plan on a network filesystem costs its round trips; those made one after another (by the planning
thread) set its time, those in worker threads overlap. At 4 self-play directories (every entry in the
index file itself) and at 40 (sealed segments of eight) a plan, in a fresh process each time, makes the
same calls in sequence, reads the same count files (the newest directory's, still being written), and
opens at most one sealed segment (the rotating check's, read beside the rest).
"""

from __future__ import annotations

import os

import pytest

from test_datasummary import _history, _plan, _same, _truth, reads  # noqa: F401 (a fixture)
from test_datasummary_segments import _listed_long_ago
from zeroloop import datasummary
from zeroloop.bench.latency import LatencyFileSystem
from zeroloop.storage import BaseDir, Storage


@pytest.fixture(autouse=True)
def _small_segments(monkeypatch):
    monkeypatch.setattr(datasummary, "SEGMENT_SIZE", 8)


class CountingFS(LatencyFileSystem):
    """No latency; counts the calls, those in sequence, and the sealed segments opened."""

    def __init__(self):
        super().__init__(0.0)
        self.segments_opened = 0

    def _open(self, path, *args, **kwargs):
        if ".segments" in str(path):
            self.segments_opened += 1
        return super()._open(path, *args, **kwargs)


def _events(tmp_path, dirs: int, reads: list[str]) -> list[tuple[int, int, int, int]]:
    """(calls, calls in sequence, segments opened, count files read) of three plans, each a fresh process's."""
    root = tmp_path / f"h{dirs}"
    base = _history(root, dirs=dirs, files=4, n=5)
    _listed_long_ago(base)
    os.utime(base.tdata(f"m{dirs - 1:03d}"))  # the newest directory: still being written
    _plan(base)  # the first plan summarises the settled directories
    out = []
    for _ in range(3):
        fs = CountingFS()
        counted = BaseDir(Storage(fs), base.root)
        reads.clear()
        _, selection = _plan(counted)
        _same(selection, _truth(base))
        out.append((fs.calls, fs.serial_calls, fs.segments_opened, len(reads)))
    return out


def test_a_plan_waits_for_the_same_calls_at_ten_times_the_history(tmp_path, reads):
    small = _events(tmp_path, 4, reads)
    big = _events(tmp_path, 40, reads)
    # the same round trips one after another in every plan, whether or not its rotating check reads a sealed
    # segment: the same time at any latency
    assert len({serial for _, serial, _, _ in small + big}) == 1, (small, big)
    for (calls, _, segments, count_files), (big_calls, _, big_segments, big_count_files) in zip(small, big):
        assert big_count_files == count_files == 4  # only the newest directory's count files are read
        assert segments == 0 and big_segments <= 1  # the window needs none; the rotating check's, if its turn
        assert big_calls <= calls + datasummary.VERIFY_PER_SCAN + 1  # the check: a segment, a stat per entry
