"""SGF writing and reading with sgfmill."""

from __future__ import annotations

import numpy as np
import pytest
from sgfmill import sgf as sgfmill

from zeroloop.go import sgf
from zeroloop.go.game import BLACK, WHITE, Game
from zeroloop.go.rules import Rules

from test_features import random_game


def test_round_trip_of_a_finished_game():
    g = random_game(9, Rules("situational", True, 6.5), 150, seed=3)
    while not g.is_over:
        g.play(g.to_move, None)
    data = sgf.game_to_sgf(g, black_name="zeroloop", white_name="GNU Go 3.8", comment="a test",
                                 move_comments={1: "first"})
    root = sgfmill.Sgf_game.from_bytes(data).get_root()
    assert root.get("SZ") == 9 and root.get("KM") == 6.5
    assert root.get("RU") == "koSITUATIONALscoreAREAsui1"
    assert root.get("RE") == g.result() and root.get("PB") == "zeroloop" and root.get("PW") == "GNU Go 3.8"
    assert root.get("C") == "a test"
    record = sgf.parse_sgf(data)
    assert record.moves == g.moves and record.result == g.result() and record.komi == 6.5
    assert Rules.from_sgf_name(record.rules_name, record.komi) == g.rules
    back = sgf.replay(record, g.rules)
    np.testing.assert_array_equal(back.grid(), g.grid())
    assert back.captures(BLACK) == g.captures(BLACK) and back.captures(WHITE) == g.captures(WHITE)
    assert back.result() == g.result()


def test_result_override_and_file_io(tmp_path):
    g = Game(5)
    g.play(BLACK, (2, 2))
    path = tmp_path / "g.sgf"
    sgf.write_sgf(path, g, result="W+T")
    assert sgf.read_sgf(path).result == "W+T"


def test_setup_stones_and_player_to_move_round_trip():
    g = Game(9, Rules(komi=0.5))
    g.setup([(2, 2), (6, 6)], [(4, 4)], to_move=WHITE)
    g.play(WHITE, (3, 3))
    record = sgf.parse_sgf(sgf.game_to_sgf(g))
    assert sorted(record.setup_black) == [(2, 2), (6, 6)] and record.setup_white == [(4, 4)]
    assert record.first_to_move == WHITE
    back = sgf.replay(record, g.rules)
    np.testing.assert_array_equal(back.grid(), g.grid())
    assert back.to_move == BLACK


GNUGO_CASE = b"(;GM[1]FF[4]SZ[9]KM[6.5];B[ee];W[cc];B[gg];W[cg])"


@pytest.mark.parametrize("until,vertex,black,white,to_move", [
    (3, None, [(4, 4)], [(2, 2)], BLACK),  # before move 3, as GNU Go's loadsgf FILE 3
    (1, None, [], [], BLACK),
    (0, None, [(4, 4), (6, 6)], [(2, 2), (2, 6)], BLACK),  # 0: every move
    (99, None, [(4, 4), (6, 6)], [(2, 2), (2, 6)], BLACK),
    (None, (6, 6), [(4, 4)], [(2, 2)], BLACK),  # G3: before the first move there
    (None, (2, 6), [(4, 4), (6, 6)], [(2, 2)], WHITE),
])
def test_replay_until_like_gnugo(until, vertex, black, white, to_move):
    g = sgf.replay(sgf.parse_sgf(GNUGO_CASE), Rules(), until_move=until, until_vertex=vertex)
    assert sorted(g.stones(BLACK)) == sorted(black) and sorted(g.stones(WHITE)) == sorted(white)
    assert g.to_move == to_move
    assert g.rules.komi == 7.0  # the caller's rules: komi is the caller's to take from the record


def test_handicap_record_without_pl_gives_white_the_move():
    record = sgf.parse_sgf(b"(;GM[1]SZ[9]HA[2]AB[cc][gg])")
    assert sgf.replay(record, Rules()).to_move == WHITE


@pytest.mark.parametrize("data,message", [
    (b"", "not a valid SGF"),
    (b"hello world", "not a valid SGF"),
    (b"(;GM[1]SZ[9];B[ee]", "not a valid SGF"),
    (b"(;GM[2]SZ[9];B[ee])", "not a Go record"),
    (b"(;GM[1]SZ[25];B[ee])", "board size 25"),
    (b"(;GM[1]SZ[1])", "board size 1"),
    (b"(;GM[1]SZ[9]KM[lots];B[ee])", "malformed komi"),
    (b"(;GM[1]SZ[9];B[ee];W[ee])", "move 2 (W E5) is illegal: occupied"),
    (b"(;GM[1]SZ[9];B[ee]AB[aa])", "setup stones after or with a move"),
    (b"(;GM[1]SZ[9];B[ee];AB[aa])", "setup stones after or with a move"),
    (b"(;GM[1]SZ[9]AB[ab][ba]AW[aa])", "setup stones"),
    (b"(;GM[1]SZ[9];B[ee]W[dd])", "node 1: a black and a white move"),
])
def test_malformed_or_illegal_records_are_refused(data, message):
    with pytest.raises(sgf.SgfError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sgf.replay(sgf.parse_sgf(data), Rules())


def test_suicide_in_a_record_names_the_rule():
    data = b"(;GM[1]SZ[5]AW[ba][ab];B[aa])"
    with pytest.raises(sgf.SgfError, match="move 1 .* suicide"):
        sgf.replay(sgf.parse_sgf(data), Rules())


def test_unreadable_file(tmp_path):
    with pytest.raises(sgf.SgfError, match="cannot read"):
        sgf.read_sgf(tmp_path / "missing.sgf")
