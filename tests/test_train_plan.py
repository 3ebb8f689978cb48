"""The train bucket and the epoch file plan, on scripted sequences (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from zeroloop import shuffled
from zeroloop.train import bucket as B
from zeroloop.train import files as F


def test_bucket_scripted_sequence():
    rule = B.BucketRule(samples_per_epoch=1000, per_new_data=2.0, max_size=5000)
    b = B.Bucket.initial(rule)
    assert (b.level, b.at_row) == (1000, None)
    b = B.on_new_data(b, rule, 10_000)  # first shuffle only records the row count
    assert (b.level, b.at_row) == (1000, 10_000)
    assert B.can_take_epoch(b, rule)
    b = B.take_epoch(b, rule)
    assert b.level == 0 and not B.can_take_epoch(b, rule)
    b = B.on_new_data(b, rule, 10_300)  # 300 rows * 2 = 600 < 0.99 epoch
    assert (b.level, b.at_row) == (600, 10_300) and not B.can_take_epoch(b, rule)
    assert B.on_new_data(b, rule, 10_300) == b  # same total: nothing
    b = B.on_new_data(b, rule, 10_500)
    assert b.level == 1000 and B.can_take_epoch(b, rule)
    b = B.take_epoch(b, rule)
    b = B.on_new_data(b, rule, 20_000)  # 19000 capped at max(max_size, epoch)
    assert b.level == 5000
    epochs = 0
    while B.can_take_epoch(b, rule):
        b = B.take_epoch(b, rule)
        epochs += 1
    assert epochs == 5 and b.level == 0
    b = B.on_new_data(b, rule, 15_000)  # fewer rows (a reset run): only at_row moves
    assert (b.level, b.at_row) == (0, 15_000)
    # 0.99 tolerance: 990.5 is enough for an epoch of 1000
    assert B.can_take_epoch(B.Bucket(990.5, 0), rule) and not B.can_take_epoch(B.Bucket(990.0, 0), rule)


def test_bucket_cap_is_at_least_one_epoch_and_no_bucket_means_unlimited():
    rule = B.BucketRule(samples_per_epoch=1000, per_new_data=10.0, max_size=10)
    b = B.on_new_data(B.on_new_data(B.Bucket(0, None), rule, 0), rule, 500)
    assert b.level == 1000
    free = B.BucketRule(samples_per_epoch=1000)
    b = B.Bucket(0.0, 5)
    assert B.can_take_epoch(b, free) and B.take_epoch(b, free) == b


def _summary(ids: list[str], rows: int = 64) -> shuffled.ShuffleSummary:
    files = tuple(shuffled.ShuffledFile(f"train/data0_{i}.npz", rows, h.ljust(64, "0")) for i, h in enumerate(ids))
    return shuffled.ShuffleSummary((0, 1000), "s-" + "".join(ids), 5, rows * len(ids), files)


def test_no_repeat_uses_each_file_once_then_waits_and_skips_known_content():
    rng = np.random.default_rng(0)
    s1 = _summary([f"a{i}" for i in range(6)])
    plan = F.on_new_shuffle(F.FilePlan(), "d1", s1, rng)
    dir_files = [F.FileRef.of(f) for f in s1.files]
    seen = []
    for _ in range(3):  # 4 batches per file, 8 per epoch: exactly two files
        chosen, plan = F.choose_epoch(plan, dir_files, 8, 16, rng, no_repeat=True)
        assert len(chosen) == 2
        seen += [f.id for f in chosen]
    assert sorted(seen) == sorted(f.id for f in dir_files)
    assert F.choose_epoch(plan, dir_files, 8, 16, rng, no_repeat=True) is None
    # a new shuffle that repeats two known files (same content, new names): only the new ones are queued
    s2 = _summary(["a0", "a1", "b0", "b1", "b2"])
    plan = F.on_new_shuffle(plan, "d2", s2, rng)
    assert sorted(f.id for f in plan.queue) == sorted(F.FileRef.of(f).id for f in s2.files[2:])
    chosen, plan = F.choose_epoch(plan, [F.FileRef.of(f) for f in s2.files], 8, 16, rng, no_repeat=True)
    assert not {f.id for f in chosen} & set(seen)
    assert list(plan.history[:6]) == seen


def test_repeat_refills_with_recent_files_kept_out_of_the_first_third():
    rng = np.random.default_rng(1)
    s = _summary([f"c{i:02d}" for i in range(12)])
    dir_files = [F.FileRef.of(f) for f in s.files]
    plan = F.on_new_shuffle(F.FilePlan(), "d", s, rng)
    chosen, plan = F.choose_epoch(plan, dir_files, 48, 16, rng, no_repeat=False)  # all 12 files
    assert len(chosen) == 12 and not plan.queue
    last_third = {f.id for f in chosen[-4:]}
    for _ in range(20):
        order = F.spaced_order(dir_files, [f.id for f in chosen], rng)
        assert sorted(f.id for f in order) == sorted(f.id for f in dir_files)
        assert not {f.id for f in order[:4]} & last_third
    more, plan = F.choose_epoch(plan, dir_files, 16, 16, rng, no_repeat=False)
    assert len(more) == 4 and not {f.id for f in more} & last_third


def test_overshooting_file_is_skipped_with_its_overshoot_probability():
    rng = np.random.default_rng(2)
    s = _summary([f"d{i}" for i in range(4)])
    dir_files = [F.FileRef.of(f) for f in s.files]
    sizes = []
    for _ in range(2000):
        plan = F.FilePlan("d", s.shuffle_id, tuple(dir_files), ())
        chosen, _ = F.choose_epoch(plan, dir_files, 6, 16, rng, no_repeat=True)
        sizes.append(sum(f.rows // 16 for f in chosen))
    assert set(sizes) == {4, 8}  # the second file overshoots 6 by half of it
    assert np.mean(sizes) == pytest.approx(6.0, abs=0.15)  # right on average


def test_plan_and_epoch_round_trip_through_json():
    s = _summary(["e0", "e1"])
    plan = F.on_new_shuffle(F.FilePlan(), "d", s, np.random.default_rng(3))
    assert F.FilePlan.from_dict(plan.to_dict()) == plan
    ep = F.Epoch("d", plan.queue, 1, 2, 48)
    assert F.Epoch.from_dict(ep.to_dict()) == ep
