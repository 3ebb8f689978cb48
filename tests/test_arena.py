"""Batched two-player games: colours, separate evaluators, outcomes, early stop, SGF."""

from __future__ import annotations

import numpy as np
from sgfmill import sgf

from zeroloop.arena import A, Arena, ArenaSettings, Contestant, score_rate
from zeroloop.search.evaluators import EvalOutput, NullEvaluator

SETTINGS = ArenaSettings(num_games_at_once=4, board_sizes=(5,), komi_mean=0.5, max_visits=12,
                         resign_consec_turns=0)


class Passer:
    """Puts all prior on pass and believes it is winning: passes whenever the search lets it."""

    name = "passer"

    def __init__(self, pos_len: int):
        self.pos_len = pos_len
        self.positions = 0

    def evaluate(self, spatial: np.ndarray, glob: np.ndarray) -> EvalOutput:
        b = spatial.shape[0]
        self.positions += b
        policy = np.zeros((b, self.pos_len ** 2 + 1), dtype=np.float32)
        policy[:, -1] = 1.0
        value = np.tile(np.array([0.9, 0.05, 0.05], dtype=np.float32), (b, 1))
        return EvalOutput(policy, value, np.zeros(b, dtype=np.float32))


class Counting(NullEvaluator):
    def __init__(self, pos_len: int, name: str):
        super().__init__(pos_len, name)
        self.positions = 0

    def evaluate(self, spatial, glob):
        self.positions += spatial.shape[0]
        return super().evaluate(spatial, glob)


def test_colours_alternate_and_every_game_is_played_once():
    a, b = Counting(5, "a"), Counting(5, "b")
    arena = Arena(Contestant("a", a), Contestant("b", b), SETTINGS, np.random.default_rng(1))
    out = arena.play(9)
    assert not out.stopped and not out.decided
    assert sorted(g.index for g in out.games) == list(range(9))
    assert all(g.a_black == (g.index % 2 == 0) for g in out.games)
    # Each net evaluated only its own side's positions, roughly half each.
    assert a.positions == arena.nn_evals[0] and b.positions == arena.nn_evals[1]
    assert 0.3 < a.positions / (a.positions + b.positions) < 0.7
    for g in out.games:
        assert g.reason in ("score", "move cap") and len(g.moves) >= 2


def test_the_player_that_searches_beats_the_one_that_only_passes():
    arena = Arena(Contestant("null", NullEvaluator(5)), Contestant("passer", Passer(5)), SETTINGS,
                  np.random.default_rng(2))
    out = arena.play(8)
    # As black the searching player takes the board; as white the komi wins an empty board.
    assert score_rate(out.games, A) == 1.0
    for g in out.games:
        assert g.outcome_for("A") == "win" and g.outcome_for("B") == "loss"
        assert g.result.startswith("B+" if g.a_black else "W+")


def test_callback_ends_the_match_early_and_stop_abandons_it():
    arena = Arena(Contestant("a", NullEvaluator(5)), Contestant("b", NullEvaluator(5)), SETTINGS,
                  np.random.default_rng(3))
    seen = []
    out = arena.play(50, lambda g: seen.append(g) or len(seen) == 3)
    assert out.decided and len(out.games) == 3 and seen == out.games
    steps = []
    out = arena.play(50, should_stop=lambda: steps.append(1) or len(steps) > 20)
    assert out.stopped and len(out.games) < 50
    # The arena is reusable after either: slots were released.
    assert len(arena.play(2).games) == 2


def test_resignation():
    settings = ArenaSettings(num_games_at_once=2, board_sizes=(5,), komi_mean=0.5, max_visits=8,
                             resign_threshold=0.5, resign_consec_turns=2)
    arena = Arena(Contestant("a", NullEvaluator(5)), Contestant("b", NullEvaluator(5)), settings,
                  np.random.default_rng(4))
    # Even values (0) are below a threshold of 0.5: the first player past move area/5 resigns twice in a row.
    out = arena.play(2)
    for g in out.games:
        assert g.reason == "resign" and g.result.endswith("+R")
        assert len(g.moves) == 7  # resigns at its 2nd search from move 5 on (black at moves 5 and 7)


def test_sgf_line_round_trips():
    arena = Arena(Contestant("net-a", NullEvaluator(5)), Contestant("net-b", NullEvaluator(5)), SETTINGS,
                  np.random.default_rng(5))
    out = arena.play(2)
    for g in out.games:
        line = g.sgf({"A": "net-a", "B": "net-b"}, "comment")
        assert "\n" not in line
        game = sgf.Sgf_game.from_string(line)
        root = game.get_root()
        assert root.get("PB") == ("net-a" if g.a_black else "net-b")
        assert root.get("RE") == g.result and root.get("KM") == 0.5
        assert len(game.get_main_sequence()) == len(g.moves) + 1


def test_nets_with_another_board_length_can_meet():
    arena = Arena(Contestant("a", NullEvaluator(5)), Contestant("b", NullEvaluator(7)), SETTINGS,
                  np.random.default_rng(6))
    assert len(arena.play(2).games) == 2
