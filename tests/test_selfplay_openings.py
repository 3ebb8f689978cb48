"""Opening variety in self-play: policy-sampled first moves, early forks, a komi the net finds fair."""

import copy

import numpy as np
import pytest
from fsspec.implementations.local import LocalFileSystem

from zeroloop import config as cfgmod
from zeroloop.errors import ConfigError
from zeroloop.go import board as B
from zeroloop.go.game import Game
from zeroloop.go.rules import Rules
from zeroloop.search.evaluators import EvalOutput, RandomEvaluator
from zeroloop.selfplay import config as spconfig
from zeroloop.selfplay import openings
from zeroloop.selfplay.engine import SelfplayEngine
from zeroloop.selfplay.models import FixedModel, LoadedModel
from zeroloop.storage import Storage

SMALL = dict(num_games=4, board_sizes=[5], board_size_weights=[1.0], data_board_len=5, max_visits=8,
             cheap_visits=2, full_search_prob=0.5, max_rows_per_file=1000, max_moves_per_area=3.0,
             save_games_in_progress=False)


class FairAtFour(RandomEvaluator):
    """Random policy and value; the score of a net that finds komi 4 fair (Black to move on an empty board),
    and, for the player to move, -1 wherever the opponent has a stone on the top-left point."""

    def evaluate(self, spatial, glob):
        out = super().evaluate(spatial, glob)
        score = 4.0 + 20.0 * glob[:, 5] - spatial[:, 2, 0, 0]
        return EvalOutput(out.policy, out.value, score.astype(np.float32))


class Recording(SelfplayEngine):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.finished, self.fork_of = {}, {}  # fork id -> (its opening, the moves of the game it forks)

    def _finish_game(self, g, *args):
        self.finished[self.slots[g].game_id] = copy.deepcopy(self.slots[g])
        super()._finish_game(g, *args)

    def _fork(self, state):
        before = len(self.forks)
        super()._fork(state)
        if len(self.forks) > before:
            fork = self.forks[-1]
            self.fork_of[fork.game_id] = (list(fork.moves), list(state.moves), state.rules)


def play(tmp_path, games, **overrides):
    B.seed(3)
    cfg = cfgmod.from_dict(spconfig.SelfplayConfig, {**SMALL, **overrides})
    model = LoadedModel("fair4", FairAtFour(5, seed=1))
    engine = Recording(cfg, Storage(LocalFileSystem()), str(tmp_path / "sp"), FixedModel(model),
                       np.random.default_rng(4), max_games_total=games)
    engine.run()
    return engine


def test_policy_init_moves_open_games_and_are_never_recorded(tmp_path):
    engine = play(tmp_path, 8, policy_init_area_prop=0.3)
    inits = [s.policy_init_moves for s in engine.finished.values()]
    assert sum(inits) > 8 and len(set(inits)) > 2  # about 0.3 * 25 moves on average, exponentially spread
    for state in engine.finished.values():
        assert all(rec.turn >= state.policy_init_moves for rec in state.recorded)
    off = play(tmp_path / "off", 4)
    assert all(s.policy_init_moves == 0 for s in off.finished.values())


def test_fork_move_is_the_choice_the_net_scores_best_for_the_mover():
    game = Game(5)
    game.play(B.BLACK, (2, 2))
    # White to move; the stub gives Black (then to move) -1 where White holds the top-left point.
    assert openings.fork_move(game, [7, 0, 13], FairAtFour(5, seed=0), 5) == 0
    assert openings.fork_move(game, [7, 13], FairAtFour(5, seed=0), 5) in (7, 13)


def test_early_forks_start_new_games_from_a_finished_games_opening(tmp_path):
    engine = play(tmp_path, 10, early_fork_game_prob=1.0, early_fork_expected_move_prop=0.2)
    assert engine.counters.games_forked > 0 and engine.counters.games_started == 10
    played = [gid for gid in engine.fork_of if gid in engine.finished]
    assert played
    for gid in played:
        opening, original, rules = engine.fork_of[gid]
        fork = engine.finished[gid]
        turn = len(opening) - 1
        # The original's first moves, then one legal move of the fork's own; rows only after the opening.
        assert opening[:turn] == original[:turn] and fork.moves[:len(opening)] == opening
        assert all(rec.turn >= len(opening) for rec in fork.recorded)
        assert fork.rules == rules  # the same rules and komi


def test_komi_auto_centres_the_komi_on_what_the_net_finds_fair(tmp_path):
    assert openings.fair_komi(FairAtFour(5, seed=0), 5, 5, Rules(), 7.0) == 4.0
    engine = play(tmp_path, 6, komi_auto=True, komi_stdev=0.0, komi_big_stdev_prob=0.0)
    assert {s.komi for s in engine.finished.values()} == {4.0}
    spread = play(tmp_path / "spread", 6, komi_auto=True, komi_stdev=2.0, komi_big_stdev_prob=0.0)
    komis = [s.komi for s in spread.finished.values()]
    assert len(set(komis)) > 1 and abs(np.mean(komis) - 4.0) < 3.0
    assert {s.komi for s in play(tmp_path / "off", 4, komi_stdev=0.0, komi_big_stdev_prob=0.0)
            .finished.values()} == {7.0}


def test_config_checks_the_fork_choices():
    with pytest.raises(ConfigError, match="fork_min_choices"):
        cfgmod.from_dict(spconfig.SelfplayConfig, {**SMALL, "fork_min_choices": 13})


def test_handicap_games_give_black_extra_stones_on_9x9_and_up(tmp_path):
    small = dict(board_sizes=[5, 9], board_size_weights=[1.0, 1.0], data_board_len=9, max_moves_per_area=0.6,
                 max_visits=4, cheap_visits=2)
    B.seed(3)
    cfg = cfgmod.from_dict(spconfig.SelfplayConfig, {**SMALL, **small, "handicap_prob": 1.0})
    engine = Recording(cfg, Storage(LocalFileSystem()), str(tmp_path / "sp"),
                       FixedModel(LoadedModel("fair4", FairAtFour(9, seed=1))), np.random.default_rng(5),
                       max_games_total=8)
    engine.run()
    sizes = {s.size for s in engine.finished.values()}
    assert sizes == {5, 9}
    for state in engine.finished.values():
        if state.size == 5:
            assert state.handicap_stones == 0
            continue
        assert state.handicap_stones == 1 and state.policy_init_moves >= 2
        assert state.moves[0] != 81 and state.moves[1] == 81  # Black's extra stone, White's pass
        assert all(rec.turn >= 2 for rec in state.recorded)
