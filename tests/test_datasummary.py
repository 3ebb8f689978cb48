"""Summaries of settled self-play directories: used when valid, rebuilt when stale or corrupt, never trusted blindly.

Each test compares a scan through the summaries with the truth: every
tdata file read in full (``Summaries`` with nothing summarised), and the
window chosen from every file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np
import pytest

from zeroloop import datasummary, rows
from zeroloop.bench import synthetic
from zeroloop.shuffle import inputs, window
from zeroloop.storage import BaseDir

OLD = time.time() - 5 * 86400
PARAMS = window.WindowParams(min_rows=40, max_rows=40)


def _history(tmp_path, dirs: int = 6, files: int = 4, n: int = 5) -> BaseDir:
    """dirs self-play directories of files tdata files of n rows; all but the newest settled long ago."""
    base = BaseDir.open(str(tmp_path / "run"))
    rng = np.random.default_rng(0)
    first = 0
    for i in range(dirs):
        model = f"m{i:03d}"
        first = synthetic.write_tdata(base, model, files, n, 7, rng, first)
        when = OLD + i * 600
        tdata = base.tdata(model)
        for name in os.listdir(tdata):
            os.utime(os.path.join(tdata, name), (when, when))
        if i < dirs - 1:
            os.utime(tdata, (when, when))
    return base


def _truth(base: BaseDir) -> window.Selection:
    files = []
    for model in sorted(os.listdir(base.selfplay)):
        tdata = base.tdata(model)
        for name in sorted(os.listdir(tdata)):
            if name.endswith(".npz"):
                path = os.path.join(tdata, name)
                files.append(window.TdataFile(path, os.stat(path).st_mtime, rows.count_rows(base.storage, path),
                                              model == "random"))
    return window.select(files, PARAMS, None)


def _plan(base: BaseDir) -> tuple[inputs.Scan, window.Selection]:
    found = inputs.scan(base, need=lambda total, rnd: window.rows_wanted(total, rnd, PARAMS))
    return found, window.select(found.files, PARAMS, None, found.older_rows, found.older_random_rows)


@pytest.fixture
def reads(monkeypatch):
    """Paths of the tdata count files read (a summary used means no count file read for its directory)."""
    seen: list[str] = []
    real = rows.file_info

    def counting(storage, path):
        seen.append(path)
        return real(storage, path)

    monkeypatch.setattr(datasummary, "TDATA", dataclasses.replace(datasummary.TDATA, count=counting))
    return seen


def _same(a: window.Selection, b: window.Selection) -> None:
    assert [f.path for f in a.files] == [f.path for f in b.files]
    assert (a.window_rows, a.rows_used, a.usable_rows, a.total_rows, a.row_range) == \
           (b.window_rows, b.rows_used, b.usable_rows, b.total_rows, b.row_range)


def test_settled_directories_are_summarised_once_and_the_window_is_unchanged(tmp_path, reads):
    base = _history(tmp_path)
    truth = _truth(base)
    _, first = _plan(base)
    _same(first, truth)
    assert len(reads) == 6 * 4  # every file once
    assert os.path.exists(base.path("summaries", "tdata.json"))
    reads.clear()
    found, again = _plan(base)
    _same(again, truth)
    newest = base.tdata("m005")
    assert reads and all(p.startswith(newest) for p in reads)  # only the unsettled directory is read again
    assert found.older_rows == 6 * 4 * 5 - sum(f.rows for f in found.files)
    assert len({os.path.dirname(f.path) for f in found.files}) < 6  # old file lists were not even opened


def test_a_stale_summary_is_detected_and_rebuilt(tmp_path, reads):
    base = _history(tmp_path)
    _plan(base)
    # A file appears in a settled directory (a slow writer, or one put back by hand): the directory's
    # mtime moves, so its summary no longer describes it.
    rng = np.random.default_rng(1)
    tdata = base.tdata("m004")
    rows.write(base.storage, os.path.join(tdata, "late.npz"), synthetic.random_rows(7, 7, rng, 10_000))
    for name in ("late.npz", "late.json"):
        os.utime(os.path.join(tdata, name), (OLD + 4 * 600 + 1, OLD + 4 * 600 + 1))
    reads.clear()
    _, sel = _plan(base)
    _same(sel, _truth(base))
    assert sel.total_rows == 6 * 4 * 5 + 7
    assert any(p.startswith(tdata) for p in reads)  # read in full again
    # ... and a file removed (quarantined) from a settled directory outside the window
    os.remove(os.path.join(base.tdata("m000"), sorted(n for n in os.listdir(base.tdata("m000"))
                                                     if n.endswith(".npz"))[0]))
    _, sel = _plan(base)
    _same(sel, _truth(base))
    assert sel.total_rows == 6 * 4 * 5 + 7 - 5


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped", "other_dir"])
def test_a_corrupt_summary_is_detected_and_rebuilt(tmp_path, reads, damage, caplog):
    base = _history(tmp_path)
    _plan(base)
    index = base.path("summaries", "tdata.json")
    listing = base.path("summaries", "tdata", "m004.json")
    for path in (index, listing):
        data = open(path, "rb").read()
        if damage == "garbage":
            data = os.urandom(200)
        elif damage == "truncated":
            data = data[: len(data) // 2]
        elif damage == "flipped":  # a count changed, checksum left as it was
            data = data.replace(b'"files":4', b'"files":5').replace(b',5,7,', b',50,7,')
        else:  # a valid summary of another directory
            data = open(base.path("summaries", "tdata", "m003.json"), "rb").read()
            if path == index:
                continue
        with open(path, "wb") as f:
            f.write(data)
    reads.clear()
    _, sel = _plan(base)
    _same(sel, _truth(base))
    assert any(p.startswith(base.tdata("m004")) for p in reads)  # the damaged directory was read again
    assert "corrupt summary" in caplog.text
    # rebuilt: the next scan uses summaries again
    reads.clear()
    _, sel = _plan(base)
    _same(sel, _truth(base))
    assert all(p.startswith(base.tdata("m005")) for p in reads)


def test_an_index_entry_for_a_vanished_directory_is_dropped_and_a_corrupt_file_is_never_summarised(tmp_path):
    base = _history(tmp_path)
    _plan(base)
    import shutil

    shutil.rmtree(base.selfplay_model("m001"))
    bad = os.path.join(base.tdata("m002"), "ffff.npz")
    with open(bad, "wb") as f:
        f.write(b"not an npz")
    os.utime(base.tdata("m002"), (OLD, OLD))
    found, sel = _plan(base)
    _same(sel, _truth_without(base, bad))
    assert [p for p, _ in found.corrupt] == [bad]
    body = json.loads(open(base.path("summaries", "tdata.json"), "rb").read().partition(b"\n")[2])
    assert "m001" not in body["open"] and "m002" not in body["open"]  # gone; holds a corrupt file
    assert "m002" in body["unsettled"] and "m001" not in body["unsettled"]


def _truth_without(base: BaseDir, bad: str) -> window.Selection:
    os.rename(bad, bad + ".aside.tmp")
    try:
        return _truth(base)
    finally:
        os.rename(bad + ".aside.tmp", bad)


def test_summaries_are_a_cache_deleting_them_loses_nothing(tmp_path):
    base = _history(tmp_path)
    _, before = _plan(base)
    import shutil

    shutil.rmtree(base.path("summaries"))
    _, after = _plan(base)
    _same(before, after)


def test_every_index_entry_is_checked_in_turn(tmp_path, monkeypatch):
    """A change to a settled directory outside the window (its rows count toward the total) is found within
    dirs / verify_per_scan scans, each scan a separate process's reading of the index."""
    monkeypatch.setattr(datasummary, "VERIFIED_WRITE_S", 0.0)
    base = _history(tmp_path)
    datasummary.Summaries(base, datasummary.TDATA, verify_per_scan=2).survey()
    victim = base.tdata("m000")
    os.remove(os.path.join(victim, sorted(n for n in os.listdir(victim) if n.endswith(".npz"))[0]))
    os.utime(victim, (OLD - 1, OLD - 1))  # still long settled, but not as summarised
    totals = []
    for _ in range(3):  # 5 settled directories, 2 checked per scan
        totals.append(datasummary.Summaries(base, datasummary.TDATA, verify_per_scan=2).survey().total())
    assert totals[-1] == 6 * 4 * 5 - 5


def test_decisions_of_a_period_come_from_one_streamed_listing(tmp_path):
    from zeroloop import decisions
    from zeroloop.bench.latency import LatencyFileSystem
    from zeroloop.storage import Storage

    fs = LatencyFileSystem(0.0)
    storage, root = Storage(fs), str(tmp_path / "gatekeepersgf")
    for i in range(6):
        decisions.write(storage, root, decisions.DecisionRecord(f"c{i}", "random", "accepted", "match", time=OLD + i))
        os.utime(os.path.join(root, f"c{i}"), (OLD + i * 100, OLD + i * 100))
    open(os.path.join(root, "stray.txt"), "w").close()  # not a directory: left out
    found = dict(storage.scan_subdirs(root))
    assert found == {os.path.join(root, f"c{i}"): OLD + i * 100 for i in range(6)}
    calls = fs.calls
    got = decisions.read_since(storage, root, OLD + 400)
    assert [r.candidate for r in got] == ["c4", "c5"]
    assert fs.calls - calls == 1 + 2  # one listing, then the two records of the period
    assert list(storage.scan_subdirs(str(tmp_path / "missing"))) == []
