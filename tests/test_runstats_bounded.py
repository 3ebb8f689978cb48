"""What the run statistics and the report hold stays bounded as a run's history grows, and means the same."""

from __future__ import annotations

import os
import time

from test_datasummary import OLD, _history
from zeroloop import datasummary, report
from zeroloop.runstats import RunStats
from zeroloop.storage import BaseDir


def _model(base: BaseDir, name: str, when: float) -> None:
    path = os.path.join(base.models, name)
    os.makedirs(path)
    open(os.path.join(path, "model.safetensors"), "wb").close()
    os.utime(path, (when, when))


def test_the_model_tally_is_the_count_and_newest_of_the_accepted_models(tmp_path):
    base = BaseDir.open(str(tmp_path / "run"))
    for i in range(5):
        _model(base, f"p-b1c16-s{i:06d}-d{i:06d}", OLD + i)
    _model(base, "p-b1c16-s9-d9", time.time() + 86400)  # dated in the future: ranked below the rest
    _model(base, "p-b1c16-s8-d8.tmp-1234", OLD + 10)  # a staging directory
    _model(base, "hand-made", OLD + 20)  # no export name, no model.json: unreadable, left out
    os.utime(base.models, (OLD + 30, OLD + 30))  # models/ last changed long ago: a tally may be kept
    stats = RunStats(base)
    accepted = stats.accepted_models()
    tally = stats.model_tally()
    assert (tally.count, tally.newest) == (len(accepted), accepted[-1]) == (6, accepted[-1])
    assert tally.newest.name == "p-b1c16-s000004-d000004"
    assert stats.model_tally() is tally  # models/ unchanged (and changed over 2 s ago): the same object
    assert RunStats(BaseDir.open(str(tmp_path / "empty"))).model_tally().count == 0


def test_thin_keeps_the_ends_and_at_most_max_points():
    assert report.thin(list(range(10)), 20) == list(range(10))
    got = report.thin(list(range(10_001)), 400)
    assert len(got) == 400 and got[0] == 0 and got[-1] == 10_000 and got == sorted(got)


def test_data_points_are_one_per_sealed_segment_and_sum_to_the_same(tmp_path, monkeypatch):
    base = _history(tmp_path, dirs=9)
    whole = RunStats(base).data_points("tdata")  # nine directories, none sealed
    assert len(whole) == 9
    monkeypatch.setattr(datasummary, "SEGMENT_SIZE", 2)
    import shutil

    shutil.rmtree(base.path("summaries"))
    RunStats(base).rows()  # (summarises: four sealed segments of two, the newest directory unsettled)
    points = RunStats(base).data_points("tdata")
    assert len(points) == 4 + 1
    assert sum(p.count for p in points) == sum(p.count for p in whole) == RunStats(base).rows() == 9 * 4 * 5
    assert min(p.oldest for p in points) == min(p.oldest for p in whole)
    assert max(p.time for p in points) == max(p.time for p in whole)


def test_a_fresh_process_reads_the_training_scalars_from_a_small_file(tmp_path, monkeypatch):
    import json

    from zeroloop import layout

    base = BaseDir.open(str(tmp_path / "run"))
    os.makedirs(base.train("b1c16"))
    with open(layout.train_metrics(base.root, "b1c16"), "w") as f:
        for i in range(4000):
            report = {"time": 1e9 + i, "samples": (i + 1) * 10, "loss_policy": 2.0, "loss_value": 0.5}
            f.write(json.dumps(report) + "\n")
    assert len(RunStats(base).loss_series()["b1c16"].points) == 1000  # (the report: both summaries written)
    read: list[tuple[str, int]] = []
    real = base.storage.read_bytes
    monkeypatch.setattr(base.storage, "read_bytes", lambda p: read.append((p, len(real(p)))) or real(p))
    stats = RunStats(base)  # the loop's next status line, a fresh process
    assert (stats.samples_trained(), stats.last_losses()) == (40_000, {"policy": 2.0, "value": 0.5})
    assert [p for p, _ in read] == [layout.train_summary(base.root, "b1c16")] and read[0][1] < 1024
