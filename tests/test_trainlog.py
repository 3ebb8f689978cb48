"""The summary of a training run's metrics: read only where the file grew, bounded, rebuilt when stale or corrupt.

Each test compares a summary with the truth: the same file read from its
start by a log with no persisted summary.
"""

from __future__ import annotations

import json
import logging
import os

import pytest

from zeroloop import layout, trainlog
from zeroloop.storage import BaseDir


def _lines(first: int, n: int, shift: float = 0.0) -> bytes:
    out = []
    for i in range(first, first + n):
        out.append({"time": 1000.0 + i, "samples": (i + 1) * 64, "loss_policy": 2.0 - i / 1000 + shift,
                    "loss_value": 0.5 + (i % 7) / 100})
        if i % 10 == 9:
            out.append({"time": 1000.5 + i, "event": "export", "samples": (i + 1) * 64})
    return b"".join(json.dumps(d).encode() + b"\n" for d in out)


def _base(tmp_path) -> tuple[BaseDir, str]:
    base = BaseDir.open(str(tmp_path / "run"))
    os.makedirs(base.train("b1c16"))
    return base, layout.train_metrics(base.root, "b1c16")


def _append(path: str, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def _truth(tmp_path, path: str, max_points: int) -> trainlog.Summary:
    """The file read from its start, with no summary (a copy of it in another BASEDIR)."""
    base = BaseDir.open(str(tmp_path / "truth"))
    os.makedirs(base.train("b1c16"), exist_ok=True)
    with open(path, "rb") as src, open(layout.train_metrics(base.root, "b1c16"), "wb") as dst:
        dst.write(src.read())
    return trainlog.TrainLog(base, "b1c16", max_points=max_points).update()


def _same(a: trainlog.Summary, b: trainlog.Summary) -> None:
    assert (a.offset, a.samples, a.last_losses, a.last_time) == (b.offset, b.samples, b.last_losses, b.last_time)
    assert a.series.stride == b.series.stride
    assert [p.n for p in a.series.points] == [p.n for p in b.series.points]
    for term in ("policy", "value"):
        assert a.series.curve(term) == (pytest.approx(b.series.curve(term)[0]), pytest.approx(b.series.curve(term)[1]))


def test_a_fresh_process_reads_only_what_was_appended(tmp_path):
    base, path = _base(tmp_path)
    _append(path, _lines(0, 300))
    first = trainlog.TrainLog(base, "b1c16", max_points=16)
    s = first.update()
    assert first.bytes_read >= os.path.getsize(path) and s.samples == 300 * 64 and len(s.series.points) <= 16
    assert os.path.exists(layout.train_summary(base.root, "b1c16"))
    size = os.path.getsize(path)
    new = _lines(300, 40) + b'{"time": 5000, "samples": 1'  # a line still being written: read next time
    _append(path, new)
    again = trainlog.TrainLog(base, "b1c16", max_points=16)  # another process: the persisted summary
    s = again.update()
    assert again.bytes_read <= len(new) + 2 * trainlog.CHECK_BYTES  # the new tail and the two checks only
    assert s.offset == size + len(_lines(300, 40)) and s.samples == 340 * 64
    _same(s, _truth(tmp_path, path, 16))
    # Asked again with nothing new: one stat, nothing read.
    before = again.bytes_read
    assert again.update() is s and again.bytes_read == before


def test_the_series_is_bounded_and_independent_of_how_it_was_read(tmp_path):
    base, path = _base(tmp_path)
    log = trainlog.TrainLog(base, "b1c16", max_points=8)
    for first in range(0, 200, 13):  # read in many small pieces, each by a fresh process
        _append(path, _lines(first, min(13, 200 - first)))
        log = trainlog.TrainLog(base, "b1c16", max_points=8)
        log.update()
    s = log.summary
    assert len(s.series.points) <= 8 and s.series.stride == 32
    assert all(p.n == s.series.stride for p in s.series.points[:-1])
    _same(s, _truth(tmp_path, path, 8))
    xs, ys = s.series.curve("policy")
    assert xs[0] == pytest.approx(sum((i + 1) * 64 for i in range(32)) / 32)  # the mean of the first 32 reports
    assert ys[0] == pytest.approx(sum(2.0 - i / 1000 for i in range(32)) / 32)
    assert s.last_losses == {"policy": pytest.approx(2.0 - 199 / 1000), "value": pytest.approx(0.5 + (199 % 7) / 100)}


@pytest.mark.parametrize("rewrite", ["restart", "shorter", "same_size_start", "same_size_end"])
def test_a_rewritten_file_is_read_again(tmp_path, rewrite, caplog):
    caplog.set_level(logging.INFO, "zeroloop")
    base, path = _base(tmp_path)
    _append(path, _lines(0, 120))
    trainlog.TrainLog(base, "b1c16", max_points=16).update()
    data = open(path, "rb").read()
    if rewrite == "restart":  # the trainer restarted from a checkpoint: truncated, then new lines written
        with open(path, "r+b") as f:
            f.truncate(len(_lines(0, 90)))
        _append(path, _lines(90, 60, shift=0.25))
    elif rewrite == "shorter":  # a new run under the same name
        open(path, "wb").write(_lines(0, 20, shift=1.0))
    else:  # the same length, other bytes in the first or the last lines
        i = 0 if rewrite == "same_size_start" else len(data) - 200
        open(path, "wb").write(data[:i] + data[i:].replace(b"0.5", b"0.6", 1))
        assert open(path, "rb").read() != data
    s = trainlog.TrainLog(base, "b1c16", max_points=16).update()
    assert "stale" in caplog.text
    _same(s, _truth(tmp_path, path, 16))


@pytest.mark.parametrize("series", [True, False])
@pytest.mark.parametrize("damage", ["garbage", "cut", "altered", "other_training"])
def test_a_corrupt_summary_is_rebuilt(tmp_path, damage, series, caplog):
    base, path = _base(tmp_path)
    _append(path, _lines(0, 120))
    trainlog.TrainLog(base, "b1c16", max_points=16).update()  # (writes both files)
    cache = trainlog.TrainLog(base, "b1c16", series=series).cache_path
    data = open(cache, "rb").read()
    if damage == "garbage":
        data = b"\x00not a summary"
    elif damage == "cut":
        data = data[: len(data) // 2]
    elif damage == "altered":
        data = data.replace(b'"samples":7680', b'"samples":9999')
        assert b"9999" in data
    else:  # a sealed summary of another training run, copied over this one's
        body = json.loads(data.partition(b"\n")[2])
        body["training"] = "b2c32"
        from zeroloop import sealed

        data = sealed.seal(body)
    open(cache, "wb").write(data)
    log = trainlog.TrainLog(base, "b1c16", max_points=16, series=series)
    s = log.update()
    assert "corrupt" in caplog.text and log.bytes_read >= os.path.getsize(path)
    if series:
        _same(s, _truth(tmp_path, path, 16))
    else:
        _same_scalars(s, _truth(tmp_path, path, 16))
    again = trainlog.TrainLog(base, "b1c16", max_points=16, series=series)  # written anew: trusted again
    again.update()
    assert again.bytes_read <= 2 * trainlog.CHECK_BYTES


def _same_scalars(a: trainlog.Summary, b: trainlog.Summary) -> None:
    assert (a.offset, a.samples, a.last_losses, a.last_time) == (b.offset, b.samples, b.last_losses, b.last_time)


def test_the_scalars_are_read_from_a_small_file_apart_from_the_series(tmp_path):
    base, path = _base(tmp_path)
    _append(path, _lines(0, 3000))
    trainlog.TrainLog(base, "b1c16", max_points=64).update()  # the report: both files
    scalars, series = layout.train_summary(base.root, "b1c16"), layout.train_series(base.root, "b1c16")
    assert os.path.getsize(scalars) < 1024 < os.path.getsize(series)
    os.remove(series)  # the scalars do not need it
    _append(path, _lines(3000, 5))
    log = trainlog.TrainLog(base, "b1c16", series=False)  # run statistics in a fresh process
    s = log.update()
    assert s.series is None and log.bytes_read <= len(_lines(3000, 5)) + 2 * trainlog.CHECK_BYTES
    _same_scalars(s, _truth(tmp_path, path, 64))
    assert not os.path.exists(series) and os.path.getsize(scalars) < 1024  # (written anew, small)
    # The series file, missing, is rebuilt from the log by the next that wants it; the scalars stay right.
    t = trainlog.TrainLog(base, "b1c16", max_points=64)
    _same(t.update(), _truth(tmp_path, path, 64))
    assert t.bytes_read >= os.path.getsize(path) and os.path.exists(series)


@pytest.mark.parametrize("series", [True, False])
def test_a_summary_of_version_1_is_read_once_and_written_anew(tmp_path, series):
    base, path = _base(tmp_path)
    _append(path, _lines(0, 500))
    whole = trainlog.TrainLog(base, "b1c16", max_points=16).update()
    old = whole.to_json("b1c16", series=True)
    del old["series"]
    old["version"] = 1  # one file, the series in it, at the scalars' path
    from zeroloop import sealed

    os.remove(layout.train_series(base.root, "b1c16"))
    open(layout.train_summary(base.root, "b1c16"), "wb").write(sealed.seal(old))
    log = trainlog.TrainLog(base, "b1c16", max_points=16, series=series)
    s = log.update()
    assert log.bytes_read <= 2 * trainlog.CHECK_BYTES  # (the checks only: the old summary was used)
    _same(s, whole) if series else _same_scalars(s, whole)
    body = json.loads(open(layout.train_summary(base.root, "b1c16"), "rb").read().partition(b"\n")[2])
    assert body["version"] == trainlog.VERSION and "points" not in body
    assert os.path.exists(layout.train_series(base.root, "b1c16")) == series


def test_no_file_no_reports(tmp_path):
    base, path = _base(tmp_path)
    s = trainlog.TrainLog(base, "b1c16").update()
    assert (s.samples, s.last_losses, s.series.points) == (0, {}, [])
    assert not os.path.exists(layout.train_summary(base.root, "b1c16"))
