"""The shuffler: window formula, exact permutation, bounded buckets, bad inputs, cleanup."""

from __future__ import annotations

import json
import os
import posixpath

import numpy as np
import pytest

from conftest import run_cli
from zeroloop import exits, rows, shuffled
from zeroloop.bench import synthetic
from zeroloop.errors import UserError
from zeroloop.shuffle import cleanup, main, scatter, window
from zeroloop.storage import BaseDir

SYNC_LOOP = window.WindowParams(min_rows=100_000, expand_window_per_row=0.4,
                                taper_window_exponent=0.65, taper_window_scale=50_000)


def test_window_matches_katago_examples():
    # reference: sync-loop settings give W ~ 278k at N = 1M and ~1.03M at N = 10M
    assert abs(window.window_rows(1_000_000, SYNC_LOOP) - 278_000) < 1_000
    assert abs(window.window_rows(10_000_000, SYNC_LOOP) - 1_030_000) < 2_000
    assert window.window_rows(100_000, SYNC_LOOP) == 100_000  # W(min_rows) = min_rows


def test_window_hand_computed():
    linear = window.WindowParams(min_rows=100, expand_window_per_row=0.5, taper_window_exponent=1.0)
    assert window.window_rows(500, linear) == 300  # (500 - 100) * 0.5 + 100
    capped = window.WindowParams(min_rows=100, max_rows=250, expand_window_per_row=0.5)
    assert window.window_rows(500, capped) == 250
    # e = 0.5, off = min = 100, N = 400: (400^0.5 - 100^0.5) / (0.5 * 100^-0.5) + 100 = 10/0.05 + 100
    sqrt = window.WindowParams(min_rows=100, taper_window_exponent=0.5)
    assert window.window_rows(400, sqrt) == 300
    # add_to_data_rows shifts N
    shifted = window.WindowParams(min_rows=100, expand_window_per_row=0.5, add_to_data_rows=200)
    assert window.window_rows(300, shifted) == 300


def test_random_rows_count_at_most_min_rows_and_selection_is_newest_first():
    files = [window.TdataFile(f"selfplay/random/tdata/{i}.npz", i, 400, True) for i in range(5)]
    files += [window.TdataFile(f"selfplay/m/tdata/{i}.npz", 10 + i, 100, False) for i in range(3)]
    p = window.WindowParams(min_rows=1000, expand_window_per_row=1.0)
    assert window.usable_rows(files, 1000) == 1300  # 2000 random capped at 1000, + 300
    sel = window.select(files, p, keep_target_rows=500)
    assert sel.window_rows == 1300
    assert [f.mtime for f in sel.files] == [12, 11, 10, 4, 3, 2]  # whole files, newest first, >= W rows
    assert sel.rows_used == 1500
    assert sel.row_range == (2300 - 1500, 2300)
    assert sel.keep_prob == pytest.approx(500 / 1500)
    with pytest.raises(window.NotEnoughRows) as e:
        window.select(files[5:], p, None)
    assert (e.value.usable, e.value.needed) == (300, 1000)


def _opts(**kw) -> main.ShuffleOptions:
    defaults = dict(min_rows=100, num_processes=1, worker_group_size=700,
                    approx_rows_per_bucket=900, approx_rows_per_out_file=400, batch_size=32, seed=5)
    defaults.update(kw)
    return main.ShuffleOptions(**defaults)


def _output_ids(base: BaseDir, out_dir: str) -> tuple[np.ndarray, list[int]]:
    summary = shuffled.read_summary(base, out_dir)
    ids, sizes = [], []
    for f in summary.files:
        arrays = rows.read(base.storage, posixpath.join(out_dir, f.name), summary.pos_len)
        ids.append(arrays["gameIdN"])
        sizes.append(len(arrays["gameIdN"]))
        meta = json.loads(base.storage.read_bytes(rows.count_path(posixpath.join(out_dir, f.name))))
        assert meta["num_rows"] == f.num_rows == sizes[-1]
    return np.concatenate(ids), sizes


@pytest.mark.parametrize("processes", [1, 2])
def test_shuffle_is_a_permutation_of_the_window(tmp_path, processes):
    base = BaseDir.open(str(tmp_path))
    rng = np.random.default_rng(0)
    next_id = synthetic.write_tdata(base, "random", 4, 150, 7, rng)
    synthetic.write_tdata(base, "m1", 30, 97, 7, rng, first_id=next_id)
    out = main.shuffle_once(base, _opts(num_processes=processes))
    ids, sizes = _output_ids(base, out.out_dir)
    used = np.concatenate([rows.read(base.storage, f.path)["gameIdN"] for f in out.selection.files])
    assert out.selection.rows_used == len(used) > 2000
    assert len(ids) == len(used) and len(set(ids.tolist())) == len(ids)
    assert sorted(ids.tolist()) == sorted(used.tolist())
    # whole batches in every file but the last; more than one bucket was used
    assert all(s % 32 == 0 for s in sizes[:-1]) and len(sizes) > 3
    assert not np.array_equal(ids, np.sort(ids))
    assert out.summary.range == (3510 - out.selection.rows_used, 3510)  # random files beyond W left out
    assert out.selection.rows_used == 30 * 97 + 150
    assert not os.listdir(base.shufflescratch)  # scratch cleaned up


def test_keep_target_rows_keeps_a_subset_without_duplicates(tmp_path):
    base = BaseDir.open(str(tmp_path))
    synthetic.write_tdata(base, "m1", 20, 100, 5, np.random.default_rng(1))
    out = main.shuffle_once(base, _opts(keep_target_rows=600))
    ids, _ = _output_ids(base, out.out_dir)
    assert abs(len(ids) - 600) <= 5  # rounded per worker group
    assert len(set(ids.tolist())) == len(ids) and set(ids.tolist()) <= set(range(2000))


def test_split_sizes_whole_batches():
    assert scatter.split_sizes(1000, 300, 32) == ([352, 320, 320], 8)  # 31 batches in 3 files
    assert scatter.split_sizes(20, 300, 32) == ([], 20)
    sizes, rest = scatter.split_sizes(5000, 400, 64)
    assert all(s % 64 == 0 for s in sizes) and sum(sizes) + rest == 5000 and rest < 64


def test_bad_input_files_are_skipped_and_named(tmp_path, caplog):
    base = BaseDir.open(str(tmp_path))
    synthetic.write_tdata(base, "m1", 6, 100, 7, np.random.default_rng(2))
    tdata = base.tdata("m1")
    good = sorted(p for p in os.listdir(tdata) if p.endswith(".npz"))
    # truncated body with an intact count file
    data = open(os.path.join(tdata, good[0]), "rb").read()
    open(os.path.join(tdata, good[0]), "wb").write(data[: len(data) // 2])
    # wrong shape: a 9x9 row claiming (in its count file) to be 7x7
    bad = synthetic.random_rows(50, 9, np.random.default_rng(3))
    path = os.path.join(tdata, "wrongshape.npz")
    open(path, "wb").write(rows.to_bytes(bad))
    open(rows.count_path(path), "w").write(json.dumps({"num_rows": 50, "pos_len": 7}))
    # garbage without a count file
    open(os.path.join(tdata, "garbage.npz"), "wb").write(b"not a zip")
    out = main.shuffle_once(base, _opts())
    skipped = {os.path.basename(p) for p, _ in out.skipped}
    assert skipped == {good[0], "wrongshape.npz", "garbage.npz"}
    for name in skipped:
        assert name in caplog.text
    ids, _ = _output_ids(base, out.out_dir)
    assert len(ids) == 500


def test_only_unreadable_files_publish_nothing(tmp_path):
    base = BaseDir.open(str(tmp_path))
    synthetic.write_tdata(base, "m1", 3, 100, 7, np.random.default_rng(2))
    for name in os.listdir(base.tdata("m1")):
        if name.endswith(".npz"):
            open(os.path.join(base.tdata("m1"), name), "wb").write(b"PK\x03\x04 truncated")
    with pytest.raises(window.NotEnoughRows):
        main.shuffle_once(base, _opts())
    assert os.listdir(base.shuffleddata) == []
    assert os.listdir(base.shufflescratch) == []


def test_mixed_board_lengths_refused_or_filtered(tmp_path):
    base = BaseDir.open(str(tmp_path))
    synthetic.write_tdata(base, "m1", 3, 100, 7, np.random.default_rng(4))
    synthetic.write_tdata(base, "m2", 2, 100, 9, np.random.default_rng(5), first_id=10_000)
    with pytest.raises(UserError, match="300 rows at pos_len 7, 200 rows at pos_len 9"):
        main.shuffle_once(base, _opts())
    out = main.shuffle_once(base, _opts(pos_len=9))
    ids, _ = _output_ids(base, out.out_dir)
    assert out.summary.pos_len == 9 and sorted(ids.tolist()) == list(range(10_000, 10_200))


def test_below_min_rows_cli_says_so_and_writes_nothing(tmp_path):
    base = BaseDir.open(str(tmp_path))
    synthetic.write_tdata(base, "m1", 2, 100, 5, np.random.default_rng(6))
    r = run_cli("shuffle", str(tmp_path), "--min-rows", "1000", "-num-processes", "1", timeout=120)
    assert r.returncode == exits.NOT_ENOUGH_ROWS == 3
    assert "200 usable rows, need at least 1000" in r.stderr
    assert not os.path.exists(base.shuffleddata) or not os.listdir(base.shuffleddata)
    # the trainer neither hangs nor leaves a net behind: it says what it waited for and exits 0
    r = run_cli("train", str(tmp_path), "--name", "t", "--model-kind", "b1c16", "--batch-size", "16",
                "--export-mode", "main", "-quit-if-no-data", "--threads", "1", timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"no shuffled data yet in {base.shuffleddata}" in r.stderr and "--quit-if-no-data" in r.stderr
    r = run_cli("shuffle", str(tmp_path), "-min-rows", "150", "--num-processes", "1", "--batch-size", "16",
                timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip()
    assert os.path.isfile(os.path.join(out, "train.json")) and not out.endswith(".tmp")


def test_cleanup_keeps_newest_young_and_in_use(tmp_path):
    assert cleanup.to_delete([("a", 0), ("b", 0), ("c", 0), ("d", 0), ("e", 95)], keep_newest=2,
                             grace_s=10, in_use={"b"}, now=100) == ["c", "a"]
    base = BaseDir.open(str(tmp_path))
    for name in ("20260101-000000-000000", "20260101-000001-000000", "20260101-000002-000000"):
        d = base.path("shuffleddata", name)
        os.makedirs(d)
        open(os.path.join(d, "train.json"), "w").write("{}")
    os.makedirs(base.path("shuffleddata", "20260101-000003-000000.tmp"))
    shuffled.mark_in_use(base, "t1", base.path("shuffleddata", "20260101-000000-000000"))
    shuffled.mark_in_use(base, "t2", base.path("shuffleddata", "20260101-000001-000000"), now=1.0)  # expired
    cleanup.clean_shuffles(base, keep_newest=1, grace_s=0, in_use_expiry_s=3600)
    assert sorted(os.listdir(base.shuffleddata)) == ["20260101-000000-000000", "20260101-000002-000000"]


def test_bench_shuffle_reports_its_keys():
    r = run_cli("bench", "shuffle", "--json", "--window-rows", "2000", "--rows-per-file", "500",
                "--approx-rows-per-bucket", "1000", "--worker-group-size", "1000", "--pos-len", "5", timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["window_x4_rows"] == 8000 and out["rows_per_s"] > 0
    assert 0.5 < out["memory_growth_ratio"] < 1.5


def _write_v7_tdata(base: BaseDir, model: str, num_files: int, rows_per_file: int, pos_len: int,
                    first_id: int) -> int:
    """tdata files whose rows hold KataGo v7 inputs (feature version 2); return the next free row id."""
    from zeroloop import features, layout

    base.precreate_selfplay(model)
    rng = np.random.default_rng(first_id)
    for _ in range(num_files):
        v1 = synthetic.random_rows(rows_per_file, pos_len, rng, first_id)
        v2 = rows.empty(rows_per_file, pos_len, features.KATAGO_V7)
        for key in rows.SPECS:
            if key not in ("binaryInputNCHWPacked", "globalInputNC"):
                v2[key][:] = v1[key]
        rows.write(base.storage, layout.tdata_file(base.selfplay, model, f"{first_id:012x}"), v2)
        first_id += rows_per_file
    return first_id


@pytest.mark.parametrize("group_rows", [700, 100])  # both versions in one worker group, or in separate ones
def test_rows_of_two_feature_versions_are_refused_not_mixed(tmp_path, group_rows):
    """A window holding rows of feature versions 1 and 2 (12 and 22 input planes) is refused with both versions
    named, a file of each and what to do; nothing is published. With the other version moved away, it shuffles."""
    base = BaseDir.open(str(tmp_path))
    next_id = synthetic.write_tdata(base, "m1", 3, 100, 7, np.random.default_rng(7))
    _write_v7_tdata(base, "m2", 2, 100, 7, next_id)
    with pytest.raises(scatter.MixedFeatureVersions) as refused:
        main.shuffle_once(base, _opts(worker_group_size=group_rows))
    message = str(refused.value)
    assert "version 1: 300 rows" in message and "version 2: 200 rows" in message
    assert "selfplay/m1/tdata/" in message and "selfplay/m2/tdata/" in message and "move the other" in message
    assert isinstance(refused.value, UserError)  # one line from the CLI, exit status 2
    assert os.listdir(base.shuffleddata) == [] and os.listdir(base.shufflescratch) == []
    os.rename(os.path.join(base.selfplay, "m1"), os.path.join(str(tmp_path), "m1-version1"))
    out = main.shuffle_once(base, _opts(worker_group_size=group_rows, min_rows=150))
    ids, _ = _output_ids(base, out.out_dir)
    assert sorted(ids.tolist()) == list(range(next_id, next_id + 200))
    planes = rows.read(base.storage, posixpath.join(out.out_dir, out.summary.files[0].name))
    assert rows.feature_version_of(planes) == 2
