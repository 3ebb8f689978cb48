"""Games in progress survive SIGTERM, SIGKILL and restarts: saved, adopted exactly once, finished."""

import glob
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from fsspec.implementations.local import LocalFileSystem

from conftest import cli, cli_env
from zeroloop import config as cfgmod
from zeroloop import features, rows
from zeroloop.errors import ConfigError
from zeroloop.nn.model import random_init_model
from zeroloop.nn.modelfile import ModelInfo, save_model
from zeroloop.search.evaluators import RandomEvaluator
from zeroloop.selfplay import config as spconfig
from zeroloop.selfplay import snapshot
from zeroloop.selfplay.engine import SelfplayEngine
from zeroloop.selfplay.inprogress import SavedGames
from zeroloop.selfplay.models import FixedModel, LoadedModel
from zeroloop.selfplay.sgfs import parse_game_info, parse_switches
from zeroloop.storage import Storage, open_location

STORAGE = Storage(LocalFileSystem())
# Every move a full search (recorded), so a game's rows are its moves and every game has rows.
SMALL = dict(num_games=6, board_sizes=[5], board_size_weights=[1.0], data_board_len=5, max_visits=8,
             cheap_visits=2, full_search_prob=1.0, max_rows_per_file=30, max_moves_per_area=3.0,
             model_poll_seconds=0.2, log_every_seconds=60.0, inprogress_save_seconds=0.3,
             inprogress_stale_seconds=1.0, inprogress_poll_seconds=0.2)


def toml(**overrides) -> str:
    def value(v):
        return str(v).lower() if isinstance(v, bool) else repr(v)
    return "".join(f"{k} = {value(v)}\n" for k, v in {**SMALL, **overrides}.items())


def save_net(models: Path, name: str, seed: int) -> None:
    net = random_init_model("b1c16", 5, seed=seed)
    storage, path = open_location(str(models / name))
    save_model(storage, path, net, ModelInfo.for_model(net, name))


def selfplay(base: Path, *extra: str, seed: int = 1, env: dict[str, str] | None = None,
             stderr=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen(cli("selfplay", "--output-dir", str(base / "selfplay"), "--models-dir",
                                str(base / "models"), "--config", str(base / "sp.toml"), "--seed", str(seed),
                                "--threads", "1", *extra),
                            env=cli_env(env), stdout=subprocess.PIPE, stderr=stderr, text=True)


# What a self-play process has no use for before its first search step (each costs a fresh start time).
# Not scipy: numba probes for it (the import line appears even where it is not installed).
UNUSED_AT_START = ("matplotlib", "kubernetes", "kopf", "sympy", "pandas", "torch._dynamo", "torch._inductor")


def imported_before(log: str, line: str) -> set[str]:
    """Modules a process logged under PYTHONPROFILEIMPORTTIME=1 before its first line containing `line`."""
    names = set()
    for text in log.splitlines():
        if line in text:
            return names
        if text.startswith("import time:") and "|" in text:
            names.add(text.rsplit("|", 1)[1].strip())
    raise AssertionError(f"no {line!r} in the log")


def finish(proc: subprocess.Popen, timeout: float = 60) -> str:
    try:
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    return err or ""


def wait_for(pattern: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not glob.glob(pattern):
        if proc.poll() is not None:
            raise AssertionError(f"selfplay exited early: {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"nothing matched {pattern}: {proc.communicate()[1]}")
        time.sleep(0.05)


def saved_files(base: Path) -> list[str]:
    return sorted(glob.glob(str(base / "selfplay" / "*" / "inprogress" / "*.npz")))


def read_saved(base: Path) -> list[snapshot.Snapshot]:
    return [snapshot.decode(Path(p).read_bytes(), p) for p in saved_files(base)]


def tdata(base: Path) -> dict[str, np.ndarray]:
    files = glob.glob(str(base / "selfplay" / "*" / "tdata" / "*.npz"))
    return rows.concat([rows.read(STORAGE, f) for f in files])


def sgf_games(base: Path) -> list[str]:
    return [line for f in glob.glob(str(base / "selfplay" / "*" / "sgfs" / "*.sgfs"))
            for line in Path(f).read_text().splitlines() if line]


def rows_per_game(data) -> dict[int, int]:
    ids, counts = np.unique(data["gameIdN"], return_counts=True)
    return {int(i): int(c) for i, c in zip(ids, counts)}


def assert_each_game_once(base: Path) -> dict[int, int]:
    """Every game's SGF is there once and its rows exactly as many times as it recorded them."""
    infos = [parse_game_info(line) for line in sgf_games(base)]
    ids = [gid for gid, _ in infos]
    assert len(ids) == len(set(ids)), "a game was written twice"
    per_game = rows_per_game(tdata(base))
    assert per_game == {gid: n for gid, n in infos if n}
    return per_game


# --- processes --------------------------------------------------------------------


def test_sigterm_saves_games_in_progress_and_a_restart_finishes_each_exactly_once(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "sp.toml").write_text(toml(inprogress_save_seconds=60.0, inprogress_stale_seconds=300.0))
    save_net(tmp_path / "models", "m1", 1)
    with open(tmp_path / "stderr", "w") as err:  # a file: the import lines would fill a pipe
        proc = selfplay(tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"}, stderr=err)
        wait_for(str(tmp_path / "selfplay" / "m1" / "tdata" / "*.npz"), proc)
        proc.send_signal(signal.SIGTERM)
        finish(proc, 10)
    log = (tmp_path / "stderr").read_text()
    assert "games in progress saved for later" in log
    imported = imported_before(log, "first search step")
    assert "torch" in imported and "numba" in imported  # the log does list the imports
    assert not {m for m in imported if m.startswith(UNUSED_AT_START)}, "a fresh start imports what it does not use"
    saved = read_saved(tmp_path)
    assert [Path(p).name.count(".live-") for p in saved_files(tmp_path)] == [0]  # let go: free to adopt
    games = {g.game_id: g for s in saved for g in s.playing}
    assert len(games) >= 3 and not [g for s in saved for g in s.pending]  # finished games were all written
    before = rows_per_game(tdata(tmp_path))
    assert not set(games) & set(before)  # no game both finished in tdata and saved

    save_net(tmp_path / "models", "m2", 2)  # the restarted process plays with a newer model
    log = finish(selfplay(tmp_path, "--max-games-total", "0", seed=2))
    assert f"{len(games)} games in progress" in log and "adopted" in log
    assert saved_files(tmp_path) == []  # finished: nothing left saved
    per_game = assert_each_game_once(tmp_path)
    data = tdata(tmp_path)
    for gid, state in games.items():
        assert per_game[gid] > len(state.recorded)  # every saved game finished, its recorded rows kept
        idx = np.flatnonzero(data["gameIdN"] == gid)
        by_turn = {int(data["metaNC"][i, rows.META_TURN]): i for i in idx}
        for rec in state.recorded:  # the rows recorded before the stop, exactly as saved
            i = by_turn[rec.turn]
            assert np.array_equal(data["binaryInputNCHWPacked"][i], rec.planes)
            assert np.array_equal(data["policyTargetsNCMove"][i, 0], rec.policy)
        switch = len(state.moves)  # m2 took over where m1 stopped: the rows and the SGF say so
        for turn, i in by_turn.items():
            earlier = turn < switch
            assert data["modelN"][i] == (b"m1" if earlier else b"m2")
            assert data["metaNC"][i, rows.META_MODEL_SWITCH] == rows.SWITCH_IN_GAME | (
                rows.SWITCH_EARLIER_MODEL_ROW if earlier else 0)
    m2_sgfs = [line for f in glob.glob(str(tmp_path / "selfplay" / "m2" / "sgfs" / "*")) for line in
               Path(f).read_text().splitlines() if line]
    assert {parse_game_info(line)[0]: parse_switches(line) for line in m2_sgfs} == {
        gid: [(len(g.moves), "m2")] for gid, g in games.items()}
    assert "model switch: m2" in m2_sgfs[0]


def test_two_processes_racing_adopt_each_saved_game_exactly_once(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "sp.toml").write_text(toml(num_games=4, inprogress_stale_seconds=60.0))  # live ones stay theirs
    folder = tmp_path / "selfplay" / "rnd" / "inprogress"
    folder.mkdir(parents=True)
    for seed in range(5):  # five batches of four saved games, each from its own process
        path = Path(_saved_batch(tmp_path / f"gen{seed}", seed, num_games=4))
        path.rename(folder / path.name)
    saved = {g.game_id for s in read_saved(tmp_path) for g in s.playing}
    assert len(saved_files(tmp_path)) == 5 and len(saved) == 20
    a = selfplay(tmp_path, "--max-games-total", "0", seed=3)
    b = selfplay(tmp_path, "--max-games-total", "0", seed=4)
    logs = finish(a, 120) + finish(b, 120)
    assert logs.count("INFO zeroloop.selfplay.inprogress: adopted") == 5  # each batch by one of them
    assert saved_files(tmp_path) == []
    assert set(assert_each_game_once(tmp_path)) >= saved


def test_sigkill_loses_only_what_came_after_the_last_periodic_save(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "sp.toml").write_text(toml(max_rows_per_file=1000))  # finished games wait in memory
    save_net(tmp_path / "models", "m1", 1)
    proc = selfplay(tmp_path)
    deadline = time.monotonic() + 90
    while not any(s.pending for s in _quiet_read(tmp_path)):  # a save with finished, unwritten games
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    written_before = set(rows_per_game(tdata(tmp_path))) if glob.glob(str(tmp_path / "selfplay" / "*" / "tdata" / "*.npz")) else set()
    saved = read_saved(tmp_path)  # the last periodic save: whole, since each save replaces the file atomically
    assert len(saved) == 1 and ".live-" in saved_files(tmp_path)[0]
    playing = {g.game_id: g for g in saved[0].playing}
    pending = {g.game_id: g for g in saved[0].pending}
    assert playing and pending
    time.sleep(1.2)  # the killed process's file goes stale
    log = finish(selfplay(tmp_path, "--max-games-total", "0", seed=2))
    assert "adopted" in log
    per_game = assert_each_game_once(tmp_path)
    # Everything saved is in tdata exactly once: finished games with their rows as saved, games in
    # progress finished; games written before the kill are not written again.
    assert set(per_game) >= set(playing) | set(pending) | written_before
    for gid, g in pending.items():
        assert per_game[gid] == g.num_rows
    for gid, g in playing.items():
        assert per_game[gid] > len(g.recorded)


def _quiet_read(base: Path) -> list[snapshot.Snapshot]:
    out = []
    for p in saved_files(base):
        try:
            out.append(snapshot.decode(Path(p).read_bytes(), p))
        except (OSError, snapshot.SnapshotError):
            pass  # replaced while we read it
    return out


# --- in process -------------------------------------------------------------------


def _engine(base: Path, cfg, seed: int, games: int | None = None, **kw) -> SelfplayEngine:
    model = LoadedModel("rnd", RandomEvaluator(cfg.data_board_len, seed=seed))
    return SelfplayEngine(cfg, STORAGE, str(base / "selfplay"), FixedModel(model), np.random.default_rng(seed),
                          max_games_total=games, **kw)


def _config(**overrides):
    return cfgmod.from_dict(spconfig.SelfplayConfig, {**SMALL, **overrides})


def _saved_batch(base: Path, seed: int = 1, **overrides) -> str:
    """The path of one released batch of saved games (in a fresh directory)."""
    engine = _engine(base, _config(**overrides), seed)
    for _ in range(25):
        engine.tick()
    engine.request_stop()
    engine.shutdown()
    [path] = saved_files(base)
    return path


def test_corrupt_old_and_incompatible_saved_games_are_discarded_not_fatal(tmp_path, caplog):
    good = _saved_batch(tmp_path, 1)
    good_ids = {g.game_id for g in snapshot.decode(Path(good).read_bytes(), good).playing}
    folder = Path(good).parent
    corrupt = folder / "00000000000000c0.npz"
    corrupt.write_bytes(Path(good).read_bytes()[:300])
    snap = snapshot.decode(Path(good).read_bytes(), good)
    snap.batch = "00000000000000f1"
    newer = folder / "00000000000000f1.npz"
    newer.write_bytes(snapshot.encode(snap))
    _set_header(newer, feature_version=features.FEATURE_VERSION + 1)
    snap.batch = "00000000000000a0"
    old = folder / "00000000000000a0.npz"
    old.write_bytes(snapshot.encode(snap))
    os.utime(old, (time.time() - 7 * 3600, time.time() - 7 * 3600))
    snap.batch = "00000000000000b9"
    other_len = folder / "00000000000000b9.npz"
    snap.pos_len = 7
    for g in snap.playing:
        for r in g.recorded:
            r.planes = np.zeros((features.NUM_SPATIAL, rows.packed_len(7)), np.uint8)
            r.policy = np.eye(50, dtype=np.float32)[0]
    other_len.write_bytes(snapshot.encode(snap))
    caplog.set_level(logging.INFO)
    engine = _engine(tmp_path, _config(), 7, games=0)
    engine.run()
    lines = {path: [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
             for path in (corrupt, newer, old, other_len)}
    assert [m for m in lines[corrupt] if m.startswith("discarded saved games") and "unreadable" in m]
    assert [m for m in lines[newer] if m.startswith("discarded saved games") and "feature_version" in m]
    assert [m for m in lines[old] if m.startswith("discarded saved games") and "inprogress_max_age_seconds" in m
            and f"{min(good_ids):016x}" in m]  # names the games
    assert [m for m in lines[other_len] if m.startswith("leaving saved games")]  # for a process that can play it
    assert not corrupt.exists() and not newer.exists() and not old.exists() and other_len.exists()
    assert engine.counters.games_resumed == len(good_ids)  # the good batch was still adopted and played
    finished = rows_per_game(tdata(tmp_path))
    assert set(finished) >= good_ids


def _set_header(path: Path, **changes) -> None:
    import io
    import json
    import zipfile
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    h = json.loads(arrays["header"].tobytes())
    h.update(changes)
    arrays["header"] = np.frombuffer(json.dumps(h).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())
    assert zipfile.is_zipfile(path)


def test_a_crash_around_a_tdata_publish_writes_each_finished_game_once(tmp_path):
    """Saved before the publish (files named) and killed after it, or before it: no row twice or lost."""
    for published in (True, False):
        base = tmp_path / str(published)
        engine = _engine(base, _config(max_rows_per_file=10_000, full_search_prob=0.5), 3)
        # Finished games queued, and games in progress in both kinds of search.
        while (sum(len(w.queue) for w in engine.writers.values()) < 3
               or len({s.full_search for s in engine.slots if s is not None}) < 2):
            engine.tick()
        writer = engine.writers["rnd"]
        expected = {g.game_id: g.num_rows for g in writer.queue}
        plans = writer.plan(everything=True)
        engine.save_games()  # the write-ahead save, as _publish does
        if published:
            writer.write(plans)
        kinds = {g.game_id: g.full_search for snap in read_saved(base) for g in snap.playing}
        assert set(kinds.values()) == {True, False}
        for p in glob.glob(str(base / "selfplay" / "*" / "inprogress" / "*")):  # the process is gone
            os.utime(p, (time.time() - 60, time.time() - 60))
        adopter = _engine(base, _config(), 4, games=0)
        adopter.tick()
        # Each resumed game redoes the kind of search (full or cheap) it was in when saved.
        assert {s.game_id: s.full_search for s in adopter.slots if s is not None} == kinds
        adopter.run()
        per_game = rows_per_game(tdata(base))
        for gid, n in expected.items():
            assert per_game[gid] == n


def test_a_process_whose_batch_was_adopted_drops_those_games(tmp_path):
    engine = _engine(tmp_path, _config(max_rows_per_file=10_000), 5)
    while not engine.writers["rnd"].queue:  # finished games waiting to be written, and games in progress
        engine.tick()
    engine.save_games()
    [live] = saved_files(tmp_path)
    os.utime(live, (time.time() - 60, time.time() - 60))  # looks dead to the others
    other = SavedGames(STORAGE, str(tmp_path / "selfplay"), 5, stale_seconds=1.0, max_age_seconds=3600)
    [snap] = other.claim(100, lambda h: None)
    taken = set(snap.game_ids)
    assert snap.pending and taken <= {s.game_id for s in engine.slots if s is not None} | {
        p.game_id for p in engine.writers["rnd"].queue}
    engine.tick()
    engine._publish(everything=True)  # its save finds the batch gone: nothing of it is written here
    assert not glob.glob(str(tmp_path / "selfplay" / "rnd" / "tdata" / "*.npz"))
    assert not taken & {s.game_id for s in engine.slots if s is not None}
    for _ in range(5):  # it plays on with new games in a new batch file
        engine.tick()
    engine.save_games()
    mine = {g.game_id for p in saved_files(tmp_path) if ".live-" + engine.saved.owner in p
            for g in snapshot.decode(Path(p).read_bytes(), p).playing}
    assert mine and not mine & taken  # never played by both


def test_snapshot_round_trip_and_checks(tmp_path):
    path = _saved_batch(tmp_path, 2)
    data = Path(path).read_bytes()
    snap = snapshot.decode(data, path)
    again = snapshot.decode(snapshot.encode(snap), "again")
    assert [(g.game_id, g.moves, g.rules, g.max_moves, len(g.recorded)) for g in again.playing] == [
        (g.game_id, g.moves, g.rules, g.max_moves, len(g.recorded)) for g in snap.playing]
    snap.playing[0].full_search, snap.playing[1].full_search = True, False
    assert [g.full_search for g in snapshot.decode(snapshot.encode(snap), "kinds").playing[:2]] == [True, False]
    bad = snap.playing[0]
    bad.moves.append(5 * 5 + 1)  # off the board
    with pytest.raises(snapshot.SnapshotError, match="off its 5x5 board"):
        snapshot.decode(snapshot.encode(snap), "bad")
    bad.moves.pop()
    bad.recorded[0].policy = bad.recorded[0].policy * 2
    with pytest.raises(snapshot.SnapshotError, match="does not sum to 1"):
        snapshot.decode(snapshot.encode(snap), "bad")
    with pytest.raises(ConfigError, match="inprogress_stale_seconds"):
        _config(inprogress_save_seconds=10.0, inprogress_stale_seconds=15.0)


def test_snapshot_keeps_weights_surprise_values_and_next_policies_and_reads_files_saved_without_them(tmp_path):
    import io
    import zipfile

    path = _saved_batch(tmp_path, 3, opponent_policy_from_search=True, policy_surprise_data_weight=0.5,
                        reduce_visits=True, reduce_visits_threshold=0.0, reduce_visits_lookback=1,
                        reduced_visits_min=4)
    snap = snapshot.decode(Path(path).read_bytes(), path)
    recs = [r for g in snap.playing for r in g.recorded]
    assert recs and any(r.next_policy is not None for r in recs) and any(r.weight < 1 for r in recs)
    assert any(r.policy_surprise > 0 for r in recs) and all(-1 <= r.nn_value <= 1 for r in recs)
    assert all(len(g.root_values) == len(g.moves) for g in snap.playing)
    again = snapshot.decode(snapshot.encode(snap), "again")
    for a, b in zip(snap.playing, again.playing):
        assert a.root_values == pytest.approx(b.root_values)
        for ra, rb in zip(a.recorded, b.recorded):
            assert (ra.weight, ra.policy_surprise, ra.nn_value) == pytest.approx((rb.weight, rb.policy_surprise,
                                                                                  rb.nn_value))
            assert (ra.next_policy is None and rb.next_policy is None) or np.array_equal(ra.next_policy,
                                                                                          rb.next_policy)
    # A file saved before these were kept: the defaults (weight 1, no next policy, values unknown).
    old = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(snapshot.encode(snap))) as src, zipfile.ZipFile(old, "w") as dst:
        for member in src.namelist():
            if member[:-4] not in ("root_values", "rec_weight", "rec_policy_surprise", "rec_nn_value",
                                   "rec_next_policy"):
                dst.writestr(member, src.read(member))
    plain = snapshot.decode(old.getvalue(), "old")
    assert all(r.weight == 1.0 and r.next_policy is None and np.isnan(r.nn_value)
               for g in plain.playing for r in g.recorded)
    assert all(len(g.root_values) == len(g.moves) and np.isnan(g.root_values).all() for g in plain.playing)
    snap.playing[0].policy_init_moves = 3
    assert snapshot.decode(snapshot.encode(snap), "init").playing[0].policy_init_moves == 3
    snap.playing[0].policy_init_moves = -1
    with pytest.raises(snapshot.SnapshotError, match="policy_init"):
        snapshot.decode(snapshot.encode(snap), "bad")
    snap.playing[0].policy_init_moves = 0
    recs[0].weight = 1.5
    with pytest.raises(snapshot.SnapshotError, match="out of range"):
        snapshot.decode(snapshot.encode(snap), "bad")
    recs[0].weight = 1.0
    recs[0].next_policy = np.full_like(recs[0].policy, 0.5)
    with pytest.raises(snapshot.SnapshotError, match="not a distribution"):
        snapshot.decode(snapshot.encode(snap), "bad")


def test_rows_of_format_1_read_with_no_model_switch(tmp_path):
    data = rows.empty(3, 5)
    data["metaNC"][:, rows.META_TURN] = [1, 2, 3]
    old = {k: v for k, v in data.items()}
    old["metaNC"] = data["metaNC"][:, :6]
    path = tmp_path / "old.npz"
    np.savez(path, **old)
    back = rows.read(STORAGE, str(path))
    assert back["metaNC"].shape == (3, rows.NUM_META)
    assert list(back["metaNC"][:, rows.META_TURN]) == [1, 2, 3] and not back["metaNC"][:, rows.META_MODEL_SWITCH].any()


def test_periodic_save_every_k_moves_and_the_operators_stop_budget(tmp_path):
    engine = _engine(tmp_path, _config(inprogress_save_seconds=1000.0, inprogress_stale_seconds=3000.0,
                                       inprogress_save_moves=3), 6)
    while engine.counters.moves < 3 * 6:  # three moves per game on average, then a save is due
        assert not engine._save_due(time.monotonic())
        engine.tick()
    assert engine._save_due(time.monotonic())
    engine.save_games()
    assert not engine._save_due(time.monotonic())
    # The operator gives a stopping pod's searches a third of its grace period, 5 s at most.
    from zeroloop_operator import stageconfig
    assert stageconfig.stop_search_seconds(60) == 5.0 and stageconfig.stop_search_seconds(9) == 3.0


def test_a_stop_weighs_the_waste_of_its_steps_against_the_visits_of_the_searches_it_cuts():
    from zeroloop.selfplay.stopping import StepCost, searches_to_cut, steps_to_keep

    # Two open searches of four slots: A 10 steps from its end with 90 visits, B 90 steps with 10.
    remaining, visits = np.array([10, 90]), np.array([90, 10])
    fixed_only = StepCost(1.0, 0.0, 4)  # a GPU below capacity: a step of batch b wastes 4 - b evaluations
    # H = 0 loses 100 visits; H = 10 wastes 3 * 10 and loses B's 10; H = 90 wastes 2 * 10 + 3 * 80.
    assert steps_to_keep(remaining, visits, fixed_only) == 10
    assert steps_to_keep(remaining, np.array([90, 300]), fixed_only) == 90  # B's 300 visits are worth 260
    assert steps_to_keep(remaining, visits, StepCost(0.0, 1.0, 4)) == 90  # a CPU: a step wastes nothing
    assert steps_to_keep(remaining, visits, None) == 90  # no fit yet: nothing cut for waste
    assert steps_to_keep(remaining, visits, StepCost(1.0, 1.0, 4)) == 10  # (4 - b) / 5: 6 + 10 against 4 + 48
    assert steps_to_keep(remaining, np.array([2, 1]), fixed_only) == 0  # 3 visits at stake: cut both

    targets = np.array([100, 25, 100, 100, 25, 100])
    v = np.array([10, 10, 60, 90, 0, 50])
    searching = np.array([True, True, True, True, False, True])
    assert list(searches_to_cut(v, targets, searching, None, None, 5.0)) == []
    # At 0.1 s a step with 2 s left, 20 steps fit: 90, 40 and 50 to go do not, 15 and 10 do.
    assert list(searches_to_cut(v, targets, searching, None, 0.1, 2.0)) == [0, 2, 5]
    assert list(searches_to_cut(v, targets, searching, None, 0.1, 0.0)) == [0, 1, 2, 3, 5]
    assert list(searches_to_cut(v, targets, searching & False, None, 0.1, 0.0)) == []
    # Fixed cost only, six slots: only the search 10 steps from its end (90 visits) is worth its steps.
    assert list(searches_to_cut(v, targets, searching, StepCost(1.0, 0.0, 6), None, 5.0)) == [0, 1, 2, 5]


def test_the_step_cost_is_fitted_once_the_batches_differ_enough():
    from zeroloop.selfplay.stopping import fit_step_cost

    batches = np.array([64, 64, 40, 20, 5])
    cost = fit_step_cost(batches, 0.002 + 0.0015 * batches, 64)
    assert cost.fixed == pytest.approx(0.002) and cost.per_eval == pytest.approx(0.0015)
    assert fit_step_cost(np.array([64, 60, 55]), np.array([0.1, 0.09, 0.085]), 64) is None  # too close to tell
    flat = fit_step_cost(batches, np.array([0.05, 0.05, 0.06, 0.05, 0.06]), 64)  # noise: no per-eval cost seen
    assert flat.per_eval == 0 and flat.fixed > 0


@pytest.mark.parametrize("machine", ["fixed step cost", "cost per evaluation"])
def test_a_stop_finishes_the_searches_worth_their_steps_and_saves_the_rest_with_their_kind(tmp_path, machine):
    from zeroloop.search import tree
    from zeroloop.selfplay.stopping import StepCost, steps_to_keep

    engine = _engine(tmp_path, _config(num_games=12, max_visits=40, cheap_visits=10, full_search_prob=0.5,
                                       inprogress_stop_search_seconds=600.0), 3)
    cost = StepCost(1.0, 0.0, 12) if machine == "fixed step cost" else StepCost(0.0, 1.0, 12)
    engine.stop_step_cost = lambda: cost  # counted, not timed: with 600 s, time never cuts
    s = engine.search
    for _ in range(200):  # until searches both worth finishing and not are there to stop
        engine.tick()
        before = {g: (st.turn, st.full_search, s.root_visits(g), int(s.game_i[g, tree.G_TARGET]))
                  for g, st in enumerate(engine.slots) if st is not None and s.searching(g)}
        remaining = np.array([t - v for _, _, v, t in before.values()])
        horizon = steps_to_keep(remaining, np.array([v for _, _, v, _ in before.values()]), cost)
        near = {g for g, (_, _, v, t) in before.items() if t - v <= horizon}
        if machine == "cost per evaluation" or (near and set(before) - near):
            break
    if machine == "fixed step cost":
        assert near and set(before) - near
    else:
        assert near == set(before)  # a step wastes nothing: every search finishes
    engine.request_stop()
    engine._finish_searches()
    assert engine.counters.stop_searches_cut == len(before) - len(near)
    for g, (turn, full, _, _) in before.items():
        state = engine.slots[g]
        if state is None:  # its move ended the game: finished, written at the shutdown
            assert g in near
            continue
        assert state.turn == turn + (g in near)  # worth its steps: its move; else cut, at the same position
        assert not s.searching(g)
        if g not in near:
            assert state.full_search == full  # resumed with the kind of search the stop cut short
    playing = {st.game_id: st.full_search for st in engine.slots if st is not None}
    engine.shutdown()
    saved = {g.game_id: g.full_search for p in saved_files(tmp_path)
             for g in snapshot.decode(Path(p).read_bytes(), p).playing}
    assert set(playing) <= set(saved)
    assert all(saved[gid] == full for gid, full in playing.items() if full is not None)
