"""`zeroloop report`: the loss plot reads only the training reports written since the last report."""

from __future__ import annotations

import json
import os

from zeroloop import layout, report, trainlog
from zeroloop.storage import BaseDir


def _append_reports(path: str, first: int, n: int) -> int:
    data = b"".join(json.dumps({"time": 1e9 + i, "samples": (i + 1) * 100, "loss_policy": 3.0 - i / 1000,
                                "loss_value": 1.0}).encode() + b"\n" for i in range(first, first + n))
    with open(path, "ab") as f:
        f.write(data)
    return len(data)


def test_the_second_report_reads_only_new_training_reports(tmp_path, monkeypatch):
    base = BaseDir.open(str(tmp_path / "run"))
    os.makedirs(base.train("b1c16"))
    path = layout.train_metrics(base.root, "b1c16")
    _append_reports(path, 0, 2000)
    logs: list[trainlog.TrainLog] = []

    class Recorded(trainlog.TrainLog):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            logs.append(self)

    monkeypatch.setattr(trainlog, "TrainLog", Recorded)
    out = str(tmp_path / "report")
    text = open(report.make_report(base, out)).read()
    assert "samples trained: 200,000" in text and "policy 1.001" in text
    assert os.path.getsize(os.path.join(out, "losses.png")) > 0
    assert sum(t.bytes_read for t in logs) >= os.path.getsize(path)
    # The next cycle's report, a new process: the persisted summary, then only the 50 new lines.
    logs.clear()
    new = _append_reports(path, 2000, 50)
    text = open(report.make_report(base, out)).read()
    assert "samples trained: 205,000" in text and "policy 0.951" in text
    assert sum(t.bytes_read for t in logs) <= new + 2 * trainlog.CHECK_BYTES
    # A corrupt summary: the report reads the file again and says the same.
    open(layout.train_series(base.root, "b1c16"), "wb").write(b"garbage")  # (what the report reads)
    logs.clear()
    assert open(report.make_report(base, out)).read().split("Made")[0] == text.split("Made")[0]
    assert sum(t.bytes_read for t in logs) >= os.path.getsize(path)


def test_the_last_cycles_are_parsed_from_the_end_only(tmp_path, monkeypatch):
    base = BaseDir.open(str(tmp_path / "run"))
    os.makedirs(layout.loop(base.root))
    with open(layout.loop_cycles(base.root), "w") as f:
        for c in range(1, 2001):
            f.write(json.dumps({"cycle": c, "seconds": 60.0, "games": c}) + "\n")
        f.write(json.dumps({"cycle": 2000, "seconds": 60.0, "games": -1}) + "\n")  # logged again after a kill
    parsed = []

    class Counting:
        @staticmethod
        def loads(data):
            parsed.append(1)
            return json.loads(data)

    monkeypatch.setattr(report, "json", Counting)
    cycles = report._cycles(base)
    assert [c["cycle"] for c in cycles] == list(range(1991, 2001)) and cycles[-1]["games"] == -1
    assert len(parsed) == 11  # (the last ten cycles' lines, one of them twice: not the tail's 2,000)
    monkeypatch.setattr(report, "CYCLES_TAIL_BYTES", 200)  # fewer than ten lines in the tail, the first cut
    tail = report._cycles(base)
    assert 1 <= len(tail) < 10 and [c["cycle"] for c in tail] == list(range(2001 - len(tail), 2001))
