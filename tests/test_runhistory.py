"""The report's models and gating decisions: from a digest of the settled ones, the same as reading every
record, read once, and rebuilt whenever the digest no longer describes the directory.

The truth each test compares with is every record read (``decisions.read_all``) and every model listed.
"""

from __future__ import annotations

import logging
import os
import shutil
import time

import pytest

from zeroloop import decisions, digest, layout, report, runhistory
from zeroloop.runstats import RunStats
from zeroloop.storage import BaseDir

OLD = time.time() - 30 * 86400.0


def _decide(base: BaseDir, i: int, decision: str, wins: int, losses: int, when: float) -> None:
    name = f"p-b1c16-s{i:06d}-d{i:06d}"
    rec = decisions.DecisionRecord(name, "random", decision, "match", wins=wins, losses=losses, time=when)
    decisions.write(base.storage, base.gatekeepersgf, rec)
    os.utime(os.path.join(base.gatekeepersgf, name), (when, when))
    if decision == decisions.ACCEPTED:
        os.makedirs(os.path.join(base.models, name))
        os.utime(os.path.join(base.models, name), (when + 1, when + 1))


def _run(tmp_path, n: int = 30) -> BaseDir:
    base = BaseDir.open(str(tmp_path / "run"))
    for i in range(n):
        played = i % 5 != 4
        _decide(base, i, decisions.ACCEPTED if i % 3 == 0 else decisions.REJECTED, 3 if played else 0,
                i % 4 if played else 0, OLD + 600 * i)
    os.makedirs(os.path.join(base.gatekeepersgf, "p-being-tested"))  # no record yet
    return base


def _truth(base: BaseDir) -> tuple:
    recs = decisions.read_all(base.storage, base.gatekeepersgf)
    played = [r for r in recs if r.games]
    models = RunStats(base).accepted_models()
    return (sum(r.decision == "accepted" for r in recs), sum(r.decision == "rejected" and r.games > 0 for r in recs),
            sum(r.decision == "rejected" and r.games == 0 for r in recs), played[-runhistory.LAST:],
            {d: sorted((r.time, r.score) for r in played if r.decision == d) for d in ("accepted", "rejected")},
            len(models), models[-1].name if models else None, sorted(m.name for m in models))


def _got(base: BaseDir) -> tuple:
    stats = RunStats(base)  # a fresh process
    g, m = stats.decision_history(), stats.model_history()
    return (g.accepted, g.rejected_played, g.rejected_unplayed, g.last_played,
            {d: sorted(g.scores[d]) for d in ("accepted", "rejected")}, m.count,
            m.newest.name if m.newest else None, sorted(p.name for p in m.points))


def _reads(monkeypatch, base: BaseDir) -> list[str]:
    read: list[str] = []
    real = base.storage.read_bytes
    monkeypatch.setattr(base.storage, "read_bytes", lambda p: read.append(p) or real(p))
    return read


def test_the_digest_gives_what_every_record_gives_and_a_later_report_reads_only_what_is_new(tmp_path, monkeypatch):
    base = _run(tmp_path)
    assert _got(base) == _truth(base)  # (the first: folds every settled record)
    read = _reads(monkeypatch, base)
    got = _got(base)
    assert sorted(read) == sorted([layout.report_digest(base.root, "decisions"), layout.report_digest(
        base.root, "models"), os.path.join(base.gatekeepersgf, "p-being-tested", decisions.RECORD_NAME)])
    read.clear()
    assert got == _truth(base) and len(read) == 30  # (the truth reads every record)
    # A new decision, just taken: read as recent, then folded once it settles.
    _decide(base, 100, decisions.ACCEPTED, 5, 0, time.time())
    read.clear()
    assert _got(base) == _truth(base)
    assert _got(base)[6] == "p-b1c16-s000100-d000100"
    new = os.path.join(base.gatekeepersgf, "p-b1c16-s000100-d000100", decisions.RECORD_NAME)
    assert read.count(new) == 2 + 1 + 2  # (each fresh process: as a recent record and for its model; the truth once)
    os.utime(os.path.dirname(new), (OLD + 10**6, OLD + 10**6))
    os.utime(os.path.join(base.models, "p-b1c16-s000100-d000100"), (OLD + 10**6, OLD + 10**6))
    assert _got(base) == _truth(base)  # (folded: it settled)
    read.clear()
    got = _got(base)
    assert new not in read and got == _truth(base)


@pytest.mark.parametrize("change", ["rewritten", "removed", "moved_in_old", "renamed"])
def test_a_settled_entry_that_changed_rebuilds_the_digest(tmp_path, change, caplog):
    caplog.set_level(logging.INFO, "zeroloop")
    base = _run(tmp_path)
    _got(base)
    d = os.path.join(base.gatekeepersgf, "p-b1c16-s000003-d000003")
    if change == "rewritten":  # tested again after a crash: its record rewritten
        decisions.write(base.storage, base.gatekeepersgf, decisions.DecisionRecord(
            "p-b1c16-s000003-d000003", "x", "rejected", "match", losses=9, time=OLD + 5))
        os.utime(d, (OLD + 7, OLD + 7))  # (and still older than the watermark)
    elif change == "removed":
        shutil.rmtree(d)
    elif change == "moved_in_old":  # a record from elsewhere, its old mtime kept
        shutil.copytree(d, d + "-copy", copy_function=shutil.copy2)
        os.rename(d + "-copy", os.path.join(base.gatekeepersgf, "p-other"))
        os.utime(os.path.join(base.gatekeepersgf, "p-other"), (OLD + 3, OLD + 3))
    else:
        os.rename(d, d + "x")
    assert _got(base) == _truth(base)
    assert "no longer describes" in caplog.text


@pytest.mark.parametrize("damage", ["garbage", "cut", "altered", "other_digest", "resealed_not_a_record",
                                    "resealed_bad_point"])
def test_a_corrupt_digest_is_rebuilt(tmp_path, damage, caplog):
    base = _run(tmp_path)
    truth = _got(base)
    path = layout.report_digest(base.root, "decisions")
    data = open(path, "rb").read()
    if damage == "garbage":
        data = b"\x00not a digest"
    elif damage == "cut":
        data = data[: len(data) // 2]
    elif damage == "altered":
        data = data.replace(b'"accepted":10', b'"accepted":11', 1)
        assert b'"accepted":11' in data
    elif damage == "other_digest":  # the models' digest copied over the decisions'
        data = open(layout.report_digest(base.root, "models"), "rb").read()
    else:  # sealed again, with a state that is not one (its seal right)
        from zeroloop import sealed

        body = sealed.unseal(data, path)
        if damage == "resealed_not_a_record":
            body["state"]["last"][0] = {"candidate": "x", "bogus": 1}
        else:
            body["state"]["scores"]["accepted"]["points"][0] = ["soon", None]
        data = sealed.seal(body)
    open(path, "wb").write(data)
    assert _got(base) == truth == _truth(base)
    assert "corrupt digest" in caplog.text
    caplog.clear()
    assert _got(base) == truth and "corrupt" not in caplog.text  # (written anew: trusted again)


def test_the_digest_is_bounded_and_its_points_do_not_depend_on_how_it_was_folded(tmp_path, monkeypatch):
    monkeypatch.setattr(runhistory, "MAX_POINTS", 8)
    base = _run(tmp_path, n=100)
    whole = RunStats(base).decision_history()  # every record folded at once
    path = layout.report_digest(base.root, "decisions")
    os.remove(path)
    for upto in range(0, 100 * 600 + 1, 7 * 600):  # settling a few at a time, each by a fresh process
        d = runhistory.decision_digest(base.storage, base.gatekeepersgf, path)
        d.view(now=OLD + upto + digest.SETTLE_S)
    parts = RunStats(base).decision_history()
    assert parts == whole
    assert all(len(v) <= 8 for v in whole.scores.values()) and len(whole.last_played) == runhistory.LAST
    assert os.path.getsize(path) < 8 * 1024


def test_the_report_of_a_run_reads_the_same_from_its_digests(tmp_path):
    import json

    base = _run(tmp_path)
    os.makedirs(layout.loop(base.root))
    with open(layout.loop_cycles(base.root), "w") as f:  # (the last cycles' table: its own gating column)
        f.write(json.dumps({"cycle": 1, "time": OLD, "seconds": 60.0, "games": 5, "rows": 9, "samples": 64,
                            "model": "m", "gating": [{"decision": "accepted", "score": 0.75, "games": 4}]}) + "\n")
    out = str(tmp_path / "report")
    first = open(report.make_report(base, out)).read().split("Made")[1].partition("\n")[2]
    shutil.rmtree(base.path("summaries"))  # a cache: the report without it is the same
    again = open(report.make_report(base, out)).read().split("Made")[1].partition("\n")[2]
    assert first == again
    assert "accepted models: 10 (newest p-b1c16-s000027-d000027)" in first
    assert "- gating decisions: 10 accepted, 16 rejected after a match, 4 rejected unplayed" in first
    assert "## Gating matches (last 10)" in first and "| 1 | 1.0 | 5 | 9 | 64 | m | accepted (0.75) |" in first
    assert first.count("| p-b1c16-s0000") == 10 and "| p-b1c16-s000028-d000028 |" in first  # the last ten matches
