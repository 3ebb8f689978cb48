"""The recurring looks of a long-running process allocate nothing per history entry: their peak memory is the
same with 20 times the history (tracemalloc, the same measure as ``zeroloop bench scale``)."""

from __future__ import annotations

import logging
import os
import tracemalloc

import pytest

from zeroloop.bench import scale

WARM = ("selfplay_poll", "gatekeeper_poll", "runstats_warm", "loop_cycle")


def _peaks(tmp_path, dirs: int) -> dict[str, int]:
    root = tmp_path / f"h{dirs}"
    root.mkdir()
    history = scale.History(str(root), scale.Layout(dirs=dirs, cycles=20))
    history.make_templates()
    history.grow_to(1, 1)
    for d in ("models", "gatekeepersgf", "selfplay"):  # (published long ago: a fresh directory is listed every look)
        os.utime(root / d, (scale.OLD, scale.OLD))
    ops = scale.Operations(scale._open_base(str(root), 0.0), max_rows=40)
    peaks = {}
    for name in WARM:
        op = getattr(ops, name)
        op()
        op()  # (the first looks build what later looks reuse)
        tracemalloc.start()
        try:
            op()
            peaks[name] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return peaks


@pytest.fixture(autouse=True)
def _quiet_looks():
    """The looks' logging off for this file only: a level left on "zeroloop" would hide later tests' records."""
    logger = logging.getLogger("zeroloop")
    old = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(old)


def test_warm_looks_do_not_allocate_per_history_entry(tmp_path):
    small, large = _peaks(tmp_path, 10), _peaks(tmp_path, 200)
    for name in WARM:  # 200 models, gating records and self-play directories would cost about 50 kB if held
        assert large[name] <= small[name] * 1.1 + 16 * 1024, (name, small[name], large[name])
