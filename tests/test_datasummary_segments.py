"""The segmented summary index: sealed segments are written once and read only when needed, an unchanged
history is not listed again, and a damaged, missing or stale segment is detected and rebuilt, never believed.

Segments hold two directories here (``SEGMENT_SIZE``), so a history of nine holds four sealed segments.
Each test compares a scan through the summaries with the truth (``test_datasummary``: every file read).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from test_datasummary import OLD, _history, _plan, _same, _truth, reads  # noqa: F401 (a fixture)
from zeroloop import datasummary, sealed
from zeroloop.bench import synthetic


@pytest.fixture(autouse=True)
def _small_segments(monkeypatch):
    monkeypatch.setattr(datasummary, "SEGMENT_SIZE", 2)


def _segments(base) -> dict[str, bytes]:
    root = base.path("summaries", "tdata.segments")
    return {n: open(os.path.join(root, n), "rb").read() for n in sorted(os.listdir(root))}


def _index(base) -> dict:
    return json.loads(open(base.path("summaries", "tdata.json"), "rb").read().partition(b"\n")[2])


def _listed_long_ago(base) -> None:
    """selfplay/ and its directories as a run's history has them: changed long ago (selfplay/ last)."""
    models = sorted(os.listdir(base.selfplay))
    for i, model in enumerate(models):
        os.utime(base.selfplay_model(model), (OLD + i * 600, OLD + i * 600))
    os.utime(base.selfplay, (OLD + len(models) * 600, OLD + len(models) * 600))


def _segment_reads(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = datasummary.Summaries._segment

    def counting(self, index, seg):
        if seg.name not in self._loaded:
            seen.append(seg.name)
        return real(self, index, seg)

    monkeypatch.setattr(datasummary.Summaries, "_segment", counting)
    return seen


def test_sealed_segments_keep_the_window_are_read_newest_first_and_never_rewritten(tmp_path, reads, monkeypatch):
    base = _history(tmp_path, dirs=9)
    _, first = _plan(base)
    _same(first, _truth(base))
    index = _index(base)
    assert len(index["segments"]) == 4 and index["open"] == {} and index["unsettled"] == ["m008"]
    assert sum(s["dirs"] for s in index["segments"]) == 8
    before = _segments(base)
    _listed_long_ago(base)
    # a new directory settles: it goes to the open segment; no sealed segment is written again
    rng = np.random.default_rng(5)
    synthetic.write_tdata(base, "m009", 4, 5, 7, rng, 10_000)
    os.utime(base.tdata("m009"), (OLD + 9 * 600, OLD + 9 * 600))
    segment_reads = _segment_reads(monkeypatch)
    reads.clear()
    found, again = _plan(base)
    _same(again, _truth(base))
    assert _segments(base) == before
    assert list(_index(base)["open"]) == ["m009"]
    assert {os.path.dirname(p) for p in reads} == {base.tdata("m008"), base.tdata("m009")}
    # the window (40 rows: two directories) is covered before any sealed segment is needed (the one read is
    # the rotating check's)
    assert len(segment_reads) <= 1 and found.total_rows == 10 * 4 * 5


def test_an_unchanged_history_is_not_listed_again(tmp_path, monkeypatch):
    base = _history(tmp_path, dirs=9)
    _plan(base)
    _listed_long_ago(base)
    _plan(base)  # (records the mtime it listed)
    listings = []
    storage_cls = type(base.storage)
    for name in ("scan_subdirs", "list_names"):
        real = getattr(storage_cls, name)
        monkeypatch.setattr(storage_cls, name, lambda self, parent, _real=real, _name=name:
                            listings.append((_name, parent)) or _real(self, parent))
    survey = datasummary.Summaries(base, datasummary.TDATA).survey()
    assert survey.total() == 9 * 4 * 5
    assert [p for _, p in listings if p == base.selfplay] == []
    # a new directory: one streamed listing finds it, without reading any sealed segment
    seen = _segment_reads(monkeypatch)
    synthetic.write_tdata(base, "m009", 4, 5, 7, np.random.default_rng(5), 10_000)
    survey = datasummary.Summaries(base, datasummary.TDATA, verify_per_scan=0).survey()
    assert survey.total() == 10 * 4 * 5 and "m009" in survey.read
    assert listings == [("scan_subdirs", base.selfplay)] and seen == []


def _damage(path: str, how: str, other: str) -> None:
    data = open(path, "rb").read()
    if how == "missing":
        os.remove(path)
        return
    if how == "garbage":
        data = os.urandom(300)
    elif how == "truncated":
        data = data[: len(data) // 2]
    elif how == "resealed":  # a count altered and sealed again: the seal holds, the name (its hash) does not
        body = json.loads(data.partition(b"\n")[2])
        entry = next(iter(body["dirs"].values()))
        entry["counts"] = {k: v + 1 for k, v in entry["counts"].items()}
        data = sealed.seal(body)
    else:  # another segment's content under this name
        data = open(other, "rb").read()
    with open(path, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("how", ["missing", "garbage", "truncated", "resealed", "swapped"])
def test_a_damaged_segment_is_detected_and_its_directories_read_again(tmp_path, reads, how, caplog):
    base = _history(tmp_path, dirs=9)
    _plan(base)
    root = base.path("summaries", "tdata.segments")
    oldest, newest = (os.path.join(root, s["name"] + ".json") for s in
                      sorted(_index(base)["segments"], key=lambda s: s["newest"])[::3])
    _damage(newest, how, oldest)  # the newest sealed segment: the window needs it
    reads.clear()
    found, sel = _plan(base)
    _same(sel, _truth(base))
    assert found.total_rows == 9 * 4 * 5
    assert "summary segment" in caplog.text
    assert {os.path.dirname(p) for p in reads} >= {base.tdata("m006"), base.tdata("m007")}  # read in full again
    # rebuilt: the next scan reads only the unsettled directory, and the totals hold
    reads.clear()
    found, sel = _plan(base)
    _same(sel, _truth(base))
    assert {os.path.dirname(p) for p in reads} == {base.tdata("m008")}
    assert sum(s["dirs"] for s in _index(base)["segments"]) + len(_index(base)["open"]) == 8


def test_a_damaged_segment_outside_the_window_is_found_by_the_checks(tmp_path, caplog, monkeypatch):
    """The run statistics never read a segment's entries for their totals; the rotating check reads each
    segment in turn, and a damaged one is dropped and its directories counted again from their files."""
    monkeypatch.setattr(datasummary, "VERIFIED_WRITE_S", 0.0)
    base = _history(tmp_path, dirs=9)
    _listed_long_ago(base)
    datasummary.Summaries(base, datasummary.TDATA).survey()
    oldest = min(_index(base)["segments"], key=lambda s: s["newest"])
    path = base.path("summaries", "tdata.segments", oldest["name"] + ".json")
    _damage(path, "truncated", "")
    totals = [datasummary.Summaries(base, datasummary.TDATA, verify_per_scan=2).survey().total() for _ in range(5)]
    assert set(totals) == {9 * 4 * 5}
    assert "corrupt summary segment" in caplog.text
    # its directories, read again, sealed again: the same content, so the same name, whole again
    assert oldest["name"] in {s["name"] for s in _index(base)["segments"]}
    sealed.unseal(open(path, "rb").read(), path)


def test_a_stale_entry_of_a_sealed_segment_is_taken_out_by_writing_the_segment_anew(tmp_path, monkeypatch):
    monkeypatch.setattr(datasummary, "VERIFIED_WRITE_S", 0.0)
    base = _history(tmp_path, dirs=9)
    datasummary.Summaries(base, datasummary.TDATA, verify_per_scan=2).survey()
    before = _segments(base)
    named = {s["name"] for s in _index(base)["segments"]}
    victim = base.tdata("m000")
    os.remove(os.path.join(victim, sorted(n for n in os.listdir(victim) if n.endswith(".npz"))[0]))
    os.utime(victim, (OLD - 1, OLD - 1))  # still long settled, but not as summarised
    totals = [datasummary.Summaries(base, datasummary.TDATA, verify_per_scan=2).survey().total() for _ in range(4)]
    assert totals[-1] == 9 * 4 * 5 - 5
    now_named = {s["name"] for s in _index(base)["segments"]}
    assert len(named - now_named) == 1  # only the segment that held m000 was replaced ...
    assert set(before) <= set(_segments(base))  # ... by a new file: a sealed file is never changed
    _same(_plan(base)[1], _truth(base))


def test_a_writer_killed_before_its_index_and_an_orphan_segment(tmp_path, monkeypatch):
    """Segments written whose index never was (the writer SIGKILLed in between): the next reader reads the
    directories again. A segment no index names (a writer that lost a race) is removed once an hour old."""
    base = _history(tmp_path, dirs=9)
    real = datasummary.Summaries._write_index
    monkeypatch.setattr(datasummary.Summaries, "_write_index", lambda self, index: None)
    datasummary.Summaries(base, datasummary.TDATA).survey()  # segments written, no index
    monkeypatch.setattr(datasummary.Summaries, "_write_index", real)
    assert _segments(base) and not os.path.exists(base.path("summaries", "tdata.json"))
    _same(_plan(base)[1], _truth(base))
    root = base.path("summaries", "tdata.segments")
    orphan = os.path.join(root, "0" * 64 + ".json")
    with open(orphan, "wb") as f:
        f.write(next(iter(_segments(base).values())))
    for i in (9, 10):
        synthetic.write_tdata(base, f"m{i:03d}", 4, 5, 7, np.random.default_rng(i), 10_000 * i)
        os.utime(base.tdata(f"m{i:03d}"), (OLD + i * 600, OLD + i * 600))
    _same(_plan(base)[1], _truth(base))  # seals a segment: the orphan is not an hour old yet
    assert os.path.exists(orphan)
    monkeypatch.setattr(datasummary, "ORPHAN_AGE_S", 0.0)
    for i in (11, 12):
        synthetic.write_tdata(base, f"m{i:03d}", 4, 5, 7, np.random.default_rng(i), 10_000 * i)
        os.utime(base.tdata(f"m{i:03d}"), (OLD + i * 600, OLD + i * 600))
    _same(_plan(base)[1], _truth(base))
    assert set(_segments(base)) == {s["name"] + ".json" for s in _index(base)["segments"]}


def test_two_writers_racing_the_last_index_written_wins_and_what_it_lost_is_found_again(tmp_path):
    """Writer B lists selfplay/, writer A settles a newer directory and writes the index, then B writes its
    index (without A's directory) last: the next survey finds the directory again."""
    base = _history(tmp_path, dirs=9)
    _listed_long_ago(base)
    datasummary.Summaries(base, datasummary.TDATA).survey()
    index = base.path("summaries", "tdata.json")
    synthetic.write_tdata(base, "m009", 4, 5, 7, np.random.default_rng(9), 90_000)
    os.utime(base.tdata("m009"), (OLD + 9 * 600, OLD + 9 * 600))
    datasummary.Summaries(base, datasummary.TDATA).survey()  # B
    written_by_b = open(index, "rb").read()
    synthetic.write_tdata(base, "m010", 4, 5, 7, np.random.default_rng(10), 100_000)
    os.utime(base.tdata("m010"), (OLD + 10 * 600, OLD + 10 * 600))
    assert datasummary.Summaries(base, datasummary.TDATA).survey().total() == 11 * 4 * 5  # A
    with open(index, "wb") as f:  # B's write lands last
        f.write(written_by_b)
    assert datasummary.Summaries(base, datasummary.TDATA).survey().total() == 11 * 4 * 5
    _same(_plan(base)[1], _truth(base))


def test_an_index_of_the_old_format_is_rebuilt_once(tmp_path, reads, caplog):
    """An upgrade: the first plan reads every directory in full (saying why), the next only the newest."""
    base = _history(tmp_path, dirs=3)
    os.makedirs(base.path("summaries"))
    with open(base.path("summaries", "tdata.json"), "wb") as f:
        f.write(sealed.seal({"version": 1, "kind": "tdata", "dirs": {}}))
    _same(_plan(base)[1], _truth(base))
    assert _index(base)["version"] == datasummary.VERSION
    assert "older format, rebuilt once" in caplog.text and "corrupt" not in caplog.text
    assert {os.path.dirname(p) for p in reads} == {base.tdata(f"m{i:03d}") for i in range(3)}
    reads.clear()
    _same(_plan(base)[1], _truth(base))
    assert {os.path.dirname(p) for p in reads} == {base.tdata("m002")}
