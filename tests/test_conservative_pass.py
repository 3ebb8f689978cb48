"""Conservative pass (KataGo's GTP conservativePass): after the opponent's pass, the search does not take its own
pass for the game's end scored as the stones stand; it asks the net about the position after it, history hidden."""

import argparse

import numpy as np

from zeroloop.go import board as B
from zeroloop.go.game import Game
from zeroloop.go.rules import Rules
from zeroloop.search.batch import SearchParams
from zeroloop.search.evaluators import EvalOutput
from zeroloop.search.player import SearchPlayer, from_args

# Black has more stones than White: two passes now would give Black the game by area (Tromp-Taylor),
# while the hand-made net below says White wins (say Black's stones are dead).
BLACK_STONES = [(1, 1), (1, 2), (1, 3), (3, 1)]
WHITE_STONES = [(3, 3)]


class WhiteWins:
    """Uniform policy; the player to move wins if White, loses if Black. Records the globals it is shown."""

    name = "white-wins"
    pos_len = 5

    def __init__(self):
        self.globs: list[np.ndarray] = []

    def evaluate(self, spatial, glob):
        self.globs.extend(np.array(g) for g in glob)
        white_to_move = glob[:, 5] > 0  # the mover's komi: positive for White
        win = np.where(white_to_move, 0.95, 0.05).astype(np.float32)
        value = np.stack([win, 1.0 - win, np.zeros_like(win)], axis=1)
        policy = np.ones((len(spatial), self.pos_len ** 2 + 1), dtype=np.float32)
        return EvalOutput(policy, value, np.zeros(len(spatial), dtype=np.float32))


def after_whites_pass() -> Game:
    game = Game(5, Rules("positional", False, 0.5))
    for b in BLACK_STONES:
        game.play(B.BLACK, b)
    for w in WHITE_STONES:
        game.play(B.WHITE, w)
    game.play(B.WHITE, None)
    assert game.score() > 0  # scored now, Black wins
    return game


def pass_child(player: SearchPlayer) -> tuple[float, float]:
    """(visits, mean utility for Black) of the root's pass."""
    r = player.last_result
    i = int(np.flatnonzero(r.moves == 25)[0])
    return r.visits[i], r.q[i]


def test_without_it_the_search_passes_to_win_as_the_stones_stand():
    B.seed(5)
    player = SearchPlayer(WhiteWins(), visits=60)
    assert player.genmove(after_whites_pass(), B.BLACK) is None
    visits, q = pass_child(player)
    assert q > 0.9  # the two passes are scored by area: a sure win


def test_with_it_the_pass_is_valued_by_the_net_and_the_root_is_honest():
    B.seed(5)
    net = WhiteWins()
    player = SearchPlayer(net, visits=60, params=SearchParams(conservative_pass=True))
    player.genmove(after_whites_pass(), B.BLACK)
    visits, q = pass_child(player)
    assert visits >= 1 and q < -0.5  # the net's view of the position after the pass: lost
    assert player.last_result.root_wl < -0.5


def test_it_hides_the_pass_history_from_the_net_where_a_pass_would_end_the_game():
    for conservative, flag in ((False, 1.0), (True, 0.0)):
        B.seed(6)
        net = WhiteWins()
        player = SearchPlayer(net, visits=30, params=SearchParams(conservative_pass=conservative))
        player.genmove(after_whites_pass(), B.BLACK)
        root = net.globs[0]
        assert root[0] == flag  # global 0: the last move was a pass
        # After both passed (Black's pass, White to move): scored without the net, or shown to it without passes.
        after_two = [g for g in net.globs if g[5] > 0 and g[0] == 1 and g[1] == 1]
        assert not after_two


def test_it_changes_nothing_before_the_opponent_passes():
    game = after_whites_pass()
    game.undo()  # White has not passed
    results = []
    for conservative in (False, True):
        B.seed(7)
        player = SearchPlayer(WhiteWins(), visits=40, params=SearchParams(conservative_pass=conservative))
        move = player.genmove(game, B.WHITE)
        results.append((move, player.last_result.visits.tolist(), player.last_result.root_wl))
    assert results[0] == results[1]


def test_gtp_flag_reaches_the_search_player(tmp_path):
    from zeroloop.nn.model import random_init_model
    from zeroloop.nn.modelfile import ModelInfo, save_model
    from zeroloop.storage import open_location

    net = random_init_model("b1c16", 5, seed=1)
    storage, path = open_location(str(tmp_path / "m"))
    save_model(storage, path, net, ModelInfo.for_model(net, "m"))
    base = dict(model=path, visits=4, threads=1, seed=1, device="cpu", lcb=False)
    assert from_args(argparse.Namespace(**base, conservative_pass=True)).params.conservative_pass
    assert not from_args(argparse.Namespace(**base, conservative_pass=False)).params.conservative_pass
