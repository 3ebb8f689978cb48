"""The search player behind `zeroloop gtp --model`: finds the capture in process, plays legal GTP moves with a net."""

import subprocess

import numpy as np

from conftest import cli, cli_env
from test_search_tree import CAPTURE_SETUP, stone_count_evaluator
from zeroloop.go import board as B
from zeroloop.go.game import Game
from zeroloop.go.rules import Rules
from zeroloop.nn.model import random_init_model
from zeroloop.nn.modelfile import ModelInfo, save_model
from zeroloop.search.player import SearchPlayer
from zeroloop.storage import open_location


class HandMade:
    name = "stones"
    pos_len = 5

    def evaluate(self, spatial, glob):
        return stone_count_evaluator(spatial, glob)


def capture_game() -> Game:
    game = Game(5, Rules("positional", False, 0.5))
    for i, move in enumerate(CAPTURE_SETUP):
        game.play(B.BLACK if i % 2 == 0 else B.WHITE, move)
    return game


def test_search_player_finds_the_capture():
    B.seed(3)
    player = SearchPlayer(HandMade(), visits=100)
    game = capture_game()
    before = (game.board.copy(), game.hist.copy())
    assert player.genmove(game, B.BLACK) == (3, 2)
    assert player.last_result.root_wl > 0.5
    # The player never touches the game.
    assert np.array_equal(game.board, before[0]) and np.array_equal(game.hist, before[1])
    assert player.last_result.root_visits == 100


def test_search_player_resigns_a_lost_position_when_asked():
    B.seed(4)
    player = SearchPlayer(HandMade(), visits=50, resign_below=-0.8)
    game = capture_game()
    game.play(B.BLACK, (3, 2))  # six white stones captured
    assert player.genmove(game, B.WHITE) == "resign"
    assert player.last_result.root_wl < -0.8
    assert SearchPlayer(HandMade(), visits=50).genmove(game, B.WHITE) != "resign"


def test_gtp_plays_with_a_model(tmp_path):
    net = random_init_model("b1c16", 7, seed=4)
    storage, path = open_location(str(tmp_path / "m"))
    save_model(storage, path, net, ModelInfo.for_model(net, "m"))
    script = "boardsize 7\nclear_board\ngenmove b\nplay w D4\ngenmove b\ngenmove w\nfinal_score\nquit\n"
    r = subprocess.run(cli("gtp", "--model", path, "--visits", "12", "--board-size", "7", "--seed", "1"),
                       input=script, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    answers = [a for a in r.stdout.split("\n\n") if a.strip()]
    assert all(a.startswith("=") for a in answers), r.stdout
    moves = [a[1:].strip() for a in answers[2:6] if a[1:].strip()]
    assert len(moves) == 3
    for m in moves:
        assert m == "pass" or (m[0] in "ABCDEFG" and 1 <= int(m[1:]) <= 7)
    assert "D4" not in moves[1:]  # occupied


def test_gtp_refuses_a_missing_model_cleanly(tmp_path):
    r = subprocess.run(cli("gtp", "--model", str(tmp_path / "nope"), "--visits", "4"), input="quit\n",
                       env=cli_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "nope" in r.stderr and "Traceback" not in r.stderr


def test_search_player_plays_on_after_two_passes_in_a_cleanup_phase():
    """A referee's cleanup phase (zeroloop match, KGS) asks for moves after both passed: the search counts the
    passes from there instead of taking the game for over, so it captures what it can before two more passes."""
    game = capture_game()
    game.play(B.BLACK, None)
    game.play(B.WHITE, None)
    assert game.is_over  # counted from the start
    B.seed(3)
    player = SearchPlayer(HandMade(), visits=100)
    assert player.genmove(game, B.BLACK) == (3, 2)  # the capture, not a pass
    assert player.last_result.root_visits == 100 and len(player.last_result.moves) > 1
    game.play(B.WHITE, None)  # a third pass: the opponent passes in the cleanup phase, Black may still capture
    B.seed(3)
    assert player.genmove(game, B.BLACK) == (3, 2)
