"""Stop records: what a stage writes when it stops on its own, read back whole or not at all."""

from __future__ import annotations

import time

import pytest

from zeroloop import exits
from zeroloop.errors import UserError
from zeroloop.storage import BaseDir


def test_a_stop_record_reads_back_and_a_stale_or_foreign_one_is_none(tmp_path):
    base = BaseDir.open(str(tmp_path))
    base.storage.makedirs(base.train("t"))
    path = base.train_stop("t")
    assert exits.read_stop(base.storage, path) is None  # never written
    record = exits.StopRecord(exits.BUCKET_LIMITED, "train bucket limited (0 samples, an epoch needs 128)")
    exits.write_stop(base.storage, path, record)
    assert exits.read_stop(base.storage, path) == record
    assert exits.read_stop(base.storage, path, since=record.time + 1) is None  # from an earlier run
    assert record.summary == exits.STOP_REASONS[exits.BUCKET_LIMITED]
    for junk in (b"", b"{", b"[]", b'{"reason": "tired", "message": "", "time": 0, "pid": 1}',
                 b'{"reason": "signalled", "message": "x", "time": "soon", "pid": 1}'):
        base.storage.write_bytes(path, junk)
        assert exits.read_stop(base.storage, path) is None, junk


def test_an_unknown_reason_is_refused_with_its_name():
    with pytest.raises(ValueError, match="'tired'"):
        exits.StopRecord("tired", "", time.time(), 1)


def test_exit_statuses_are_distinct_and_user_errors_use_theirs():
    statuses = [exits.OK, exits.ENVIRONMENT, exits.USER_ERROR, exits.NOT_ENOUGH_ROWS, exits.INTERRUPTED]
    assert len(set(statuses)) == len(statuses) and exits.OK == 0
    assert UserError("x").exit_code == exits.USER_ERROR
