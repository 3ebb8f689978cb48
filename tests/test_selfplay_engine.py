"""The self-play engine in process: rows as recorded, targets right, symmetries consistent, config checked."""

import copy
import glob
import os

import numpy as np
import pytest
from fsspec.implementations.local import LocalFileSystem

from zeroloop import config as cfgmod
from zeroloop import features, rows, symmetry
from zeroloop.errors import ConfigError
from zeroloop.go import board as B
from zeroloop.go import passalive
from zeroloop.go.game import Game
from zeroloop.go.rules import Rules
from zeroloop.search.evaluators import RandomEvaluator
from zeroloop.selfplay import config as spconfig
from zeroloop.selfplay.engine import SelfplayEngine
from zeroloop.selfplay.models import FixedModel, LoadedModel
from zeroloop.selfplay.sgfs import parse_game_info
from zeroloop.storage import Storage

SMALL = dict(num_games=4, board_sizes=[5], board_size_weights=[1.0], data_board_len=5, max_visits=12,
             cheap_visits=3, full_search_prob=0.5, max_rows_per_file=40, max_moves_per_area=3.0)


class RecordingEngine(SelfplayEngine):
    """Keeps a copy of every finished game's state."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.finished = {}

    def _finish_game(self, g, *args):
        state = self.slots[g]
        self.finished[state.game_id] = copy.deepcopy(state)
        super()._finish_game(g, *args)


def play(tmp_path, games, **overrides):
    B.seed(5)
    cfg = cfgmod.from_dict(spconfig.SelfplayConfig, {**SMALL, **overrides})
    model = LoadedModel("rnd", RandomEvaluator(cfg.data_board_len, seed=1))
    engine = RecordingEngine(cfg, Storage(LocalFileSystem()), str(tmp_path / "selfplay"), FixedModel(model),
                             np.random.default_rng(2), max_games_total=games)
    engine.run()
    return engine


def read_all(tmp_path, model="rnd"):
    storage = Storage(LocalFileSystem())
    files = sorted(glob.glob(str(tmp_path / "selfplay" / model / "tdata" / "*.npz")))
    data = rows.concat([rows.read(storage, f) for f in files]) if files else None
    sgf_lines = [line for f in glob.glob(str(tmp_path / "selfplay" / model / "sgfs" / "*.sgfs"))
                 for line in open(f).read().splitlines() if line]
    return files, data, sgf_lines


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("selfplay")
    engine = play(tmp, 6)
    return tmp, engine


def row_order(data, gid, state):
    """Row indices of a game's rows, in the order of its recorded moves (files are read in any order)."""
    idx = np.flatnonzero(data["gameIdN"] == gid)
    by_turn = {int(data["metaNC"][i, rows.META_TURN]): int(i) for i in idx}
    assert len(by_turn) == len(idx) == len(state.recorded)
    return [by_turn[rec.turn] for rec in state.recorded]


def replay(state, upto=None):
    game = Game(state.size, Rules(state.rules.ko_rule, state.rules.multi_stone_suicide, state.komi),
                max_moves=state.max_moves)
    n = state.size
    for i, m in enumerate(state.moves[:upto]):
        game.play(B.BLACK if i % 2 == 0 else B.WHITE, None if m == n * n else (m % n, m // n))
    return game


def final_targets(state, final):
    """(Black's score, ownership) a finished game's rows must hold: Tromp-Taylor after two passes or the move
    cap, else the pass-alive area of the settled board that ended it (and no earlier position was settled)."""
    if final.is_over:
        return final.score(), final.ownership()
    settled = passalive.settled_ownership(final.board)
    assert settled is not None, "a game ended before it was over"
    assert passalive.settled_ownership(replay(state, len(state.moves) - 1).board) is None
    return float(settled.sum()) - state.komi, settled.reshape(state.size, state.size)


def test_games_end_once_settled_with_the_targets_of_playing_on(tmp_path):
    """end_when_pass_alive (on by default) ends games at the first settled board; off, they run to two passes."""
    on = play(tmp_path / "on", 8, max_moves_per_area=6.0)
    off = play(tmp_path / "off", 8, max_moves_per_area=6.0, end_when_pass_alive=False)
    assert on.counters.games_settled >= 4 and off.counters.games_settled == 0
    _, data, _ = read_all(tmp_path / "on")
    for gid, state in on.finished.items():
        score_black, own_black = final_targets(state, replay(state))
        for i, rec in zip(row_order(data, gid, state), state.recorded):
            sign = 1 if rec.to_move == B.BLACK else -1
            assert data["globalTargetsNC"][i, rows.GT_SCORE] == pytest.approx(sign * score_black)
            assert np.array_equal(data["valueTargetsNCHW"][i, 0], sign * own_black)


def test_surprise_weights_reduced_visits_and_the_opponent_policy_from_search(tmp_path):
    """KataGo's row weighting and opponent-policy target, switched on: a game's total row weight is its
    rows' reduced-visit weights, shared out by surprise; the opponent-policy target of a row is the next
    turn's search distribution, which is the next row's policy target where that turn was recorded too."""
    engine = play(tmp_path, 6, policy_surprise_data_weight=0.5, value_surprise_data_weight=0.1,
                  opponent_policy_from_search=True, reduce_visits=True, reduce_visits_threshold=0.0,
                  reduce_visits_lookback=1, reduced_visits_min=4, reduced_visits_weight=0.5)
    _, data, _ = read_all(tmp_path)
    reduced = 0
    for gid, state in engine.finished.items():
        idx = row_order(data, gid, state)
        weights = data["globalTargetsNC"][idx, rows.GT_ROW_WEIGHT]
        base = np.array([rec.weight for rec in state.recorded])
        assert np.all((base >= 0.5) & (base <= 1.0))
        reduced += int(np.sum(base < 1.0))
        if base.sum() >= 1.0:
            assert weights.sum() == pytest.approx(base.sum(), rel=1e-5)
            assert len(weights) < 2 or weights.std() > 0  # shared out unevenly
        assert len(state.root_values) == len(state.moves)
        for k, (i, rec) in enumerate(zip(idx, state.recorded)):
            opp = data["policyTargetsNCMove"][i, 1]
            if rec.turn + 1 == len(state.moves):
                assert not opp.any()
                continue
            assert opp.sum() == pytest.approx(1.0) and opp[state.moves[rec.turn + 1]] > 0  # the reply was searched
            if k + 1 < len(idx) and state.recorded[k + 1].turn == rec.turn + 1:
                assert np.array_equal(opp, data["policyTargetsNCMove"][idx[k + 1], 0])
    assert reduced > 0


def test_max_games_total_games_each_written_once(played):
    tmp, engine = played
    files, data, sgf_lines = read_all(tmp)
    assert engine.counters.games_started == 6 and engine.counters.games_finished == 6
    infos = [parse_game_info(line) for line in sgf_lines]
    assert sorted(i[0] for i in infos) == sorted(engine.finished)  # each game's SGF exactly once
    ids, counts = np.unique(data["gameIdN"], return_counts=True)
    assert {int(i): int(c) for i, c in zip(ids, counts)} == {gid: n for gid, n in infos if n}
    storage = Storage(LocalFileSystem())
    games_in = [set(rows.read(storage, f)["gameIdN"].tolist()) for f in files]
    # whole games per file: at most 40 rows unless one game alone has more, and no game in two files
    assert all(rows.count_rows(storage, f) <= 40 or len(g) == 1 for f, g in zip(files, games_in))
    assert sum(len(g) for g in games_in) == len(set().union(*games_in))
    assert not [f for f in os.listdir(tmp / "selfplay" / "rnd" / "tdata") if ".tmp" in f]


def test_rows_read_back_equal_what_was_recorded(played):
    tmp, engine = played
    _, data, _ = read_all(tmp)
    assert len(data["gameIdN"]) == sum(len(s.recorded) for s in engine.finished.values()) > 0
    for gid, state in engine.finished.items():
        idx = row_order(data, gid, state)
        final = replay(state)
        score_black, own_black = final_targets(state, final)
        for i, rec in zip(idx, state.recorded):
            assert np.array_equal(data["binaryInputNCHWPacked"][i], rec.planes)
            assert np.array_equal(data["globalInputNC"][i], rec.glob)
            assert np.array_equal(data["policyTargetsNCMove"][i, 0], rec.policy)
            assert data["policyTargetsNCMove"][i, 0].sum() == pytest.approx(1.0)
            # The recorded inputs are the features of the position before that move.
            pos = replay(state, rec.turn)
            spatial, glb = features.encode(pos.board, pos.hist, state.komi, 5)
            assert np.array_equal(rows.unpack_planes(data["binaryInputNCHWPacked"][i:i + 1], 5)[0], spatial)
            sign = 1 if rec.to_move == B.BLACK else -1
            gt = data["globalTargetsNC"][i]
            assert gt[rows.GT_SCORE] == pytest.approx(sign * score_black)
            assert gt[rows.GT_WIN] == (sign * score_black > 0) and gt[rows.GT_LOSS] == (sign * score_black < 0)
            assert np.array_equal(data["valueTargetsNCHW"][i, 0], sign * own_black)
            # TD targets from every move's search (zeroloop.selfplay.tdtargets; tests/test_td_targets.py)
            assert len(state.root_values) == len(state.root_scores) == len(state.moves)
            assert gt[rows.GT_TD_WEIGHT] == 1.0
            td = gt[rows.GT_TD_VALUE:rows.GT_TD_SCORE].reshape(rows.TD_HORIZONS, 3)
            assert np.all(td >= 0) and td.sum(axis=1) == pytest.approx(1.0, abs=1e-5)
            if rec.turn + 1 < len(state.moves):
                nxt = state.moves[rec.turn + 1]
                assert data["policyTargetsNCMove"][i, 1, nxt] == 1.0 and gt[rows.GT_OPP_POLICY_WEIGHT] == 1.0
            else:
                assert not data["policyTargetsNCMove"][i, 1].any() and gt[rows.GT_OPP_POLICY_WEIGHT] == 0.0
            meta = data["metaNC"][i]
            assert tuple(meta) == (5, rec.turn, round(state.komi * 2), len(state.moves), rec.to_move,
                                   rows.ROW_FORMAT_VERSION, 0)  # one model played the whole game
            assert data["modelN"][i] == b"rnd"
            # Policy mass only on moves that were legal there.
            legal = np.zeros(26, dtype=np.int64)
            B.legal_mask(pos.board, pos.hist, rec.to_move, legal)
            assert np.all(legal[data["policyTargetsNCMove"][i, 0] > 0] == 1)


def test_symmetry_applied_to_a_row_is_the_row_of_the_symmetric_game(played):
    tmp, engine = played
    _, data, _ = read_all(tmp)
    gid, state = next((g, s) for g, s in engine.finished.items() if len(s.recorded) >= 2)
    n = state.size
    idx = row_order(data, gid, state)
    for sym in range(1, 8):
        perm = symmetry.index_map(sym, n)
        inv = np.argsort(perm)  # original index -> transformed index
        mirrored = copy.deepcopy(state)
        mirrored.moves = [int(inv[m]) for m in state.moves]
        final = replay(mirrored)
        for i, rec in zip(idx, state.recorded):
            planes = rows.unpack_planes(data["binaryInputNCHWPacked"][i:i + 1], n)[0]
            pos = replay(mirrored, rec.turn)
            spatial, glb = features.encode(pos.board, pos.hist, state.komi, n)
            assert np.array_equal(symmetry.apply_planes(planes, sym), spatial)
            assert np.array_equal(glb, data["globalInputNC"][i])
            policy = symmetry.apply_policy(data["policyTargetsNCMove"][i], sym, n)
            legal = np.zeros(n * n + 1, dtype=np.int64)
            B.legal_mask(pos.board, pos.hist, rec.to_move, legal)
            assert np.all(legal[policy[0] > 0] == 1)
            if rec.turn + 1 < len(state.moves):
                assert policy[1, mirrored.moves[rec.turn + 1]] == 1.0
            sign = 1 if rec.to_move == B.BLACK else -1
            own = symmetry.apply_planes(data["valueTargetsNCHW"][i, 0], sym)
            assert np.array_equal(own, sign * final.ownership())


def test_bad_config_keys_and_values_are_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("num_games = 4\nmax_vists = 10\n")
    with pytest.raises(ConfigError, match="max_vists"):
        spconfig.load(str(bad))
    bad.write_text("board_sizes = [9, 25]\nboard_size_weights = [1, 1]\n")
    with pytest.raises(ConfigError, match=r"board_sizes\[?.*25.*maximum"):
        spconfig.load(str(bad))
    bad.write_text("board_sizes = [9, 7]\nboard_size_weights = [1]\n")
    with pytest.raises(ConfigError, match="board_size_weights"):
        spconfig.load(str(bad))
    bad.write_text('full_search_prob = "often"\n')
    with pytest.raises(ConfigError, match="full_search_prob"):
        spconfig.load(str(bad))
    bad.write_text('ko_rules = ["japanese"]\n')
    with pytest.raises(ConfigError, match="ko_rules"):
        spconfig.load(str(bad))
    yaml_cfg = tmp_path / "ok.yaml"
    yaml_cfg.write_text("num_games: 3\nboard_sizes: [7]\nboard_size_weights: [2]\ndata_board_len: 9\n")
    assert spconfig.load(str(yaml_cfg)).num_games == 3


def test_packaged_configs_load_and_document_every_key():
    cpu, gpu = spconfig.load("cpu"), spconfig.load("gpu")
    assert cpu.board_sizes == [9] and cpu.data_board_len == 9
    assert gpu.max_board_size == 19 and gpu.data_board_len == 19 and len(gpu.board_sizes) == 13
    text = cfgmod.describe(spconfig.SelfplayConfig)
    for name in spconfig.SelfplayConfig.__dataclass_fields__:
        assert f"\n{name} = " in "\n" + text
    assert "# \n" not in text  # every key has a doc line


def test_nn_precision_reaches_the_evaluator(tmp_path):
    from conftest import save_tiny_model

    from zeroloop.selfplay.models import ModelWatcher

    with pytest.raises(ConfigError, match="nn_precision"):
        cfgmod.from_dict(spconfig.SelfplayConfig, {"nn_precision": "fp8"})
    save_tiny_model(tmp_path / "models", "m1")
    cfg = cfgmod.from_dict(spconfig.SelfplayConfig, {**SMALL, "nn_precision": "bf16"})
    watcher = ModelWatcher(Storage(LocalFileSystem()), str(tmp_path / "models"), max_batch=4,
                           precision=cfg.nn_precision, random_pos_len=5, max_board_size=5)
    loaded = watcher.initial()
    assert loaded.name == "m1" and loaded.evaluator.net.settings["precision"] == "bf16"


def test_mixed_board_sizes_are_padded_top_left(tmp_path):
    engine = play(tmp_path, 6, board_sizes=[5, 7], board_size_weights=[1.0, 1.0], data_board_len=7,
                  max_moves_per_area=1.0, reuse_tree=False)
    _, data, _ = read_all(tmp_path)
    sizes = data["metaNC"][:, rows.META_BOARD_SIZE]
    assert set(sizes.tolist()) == {5, 7}
    planes = rows.unpack_planes(data["binaryInputNCHWPacked"], 7)
    for i, n in enumerate(sizes):
        mask = np.zeros((7, 7))
        mask[:n, :n] = 1
        assert np.array_equal(planes[i, 0], mask)
        assert not data["valueTargetsNCHW"][i, 0][mask == 0].any()
        board_part = data["policyTargetsNCMove"][i, 0, :49].reshape(7, 7)
        assert not board_part[mask == 0].any()
        assert data["metaNC"][i, rows.META_GAME_LENGTH] <= n * n  # max_moves_per_area = 1
    assert engine.counters.games_finished == 6
