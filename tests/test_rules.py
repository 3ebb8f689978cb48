"""Go rules on known positions: captures, suicide, ko, superko, scoring, undo.

Positions are drawn as rows of ``X`` (black), ``O`` (white) and ``.``
(empty), top row first; points are (x, y) from the top-left. Each position
is placed with ``Game.setup`` (no history), then moves are played.
"""

from __future__ import annotations

import numpy as np
import pytest

from zeroloop.go import board as B
from zeroloop.go.coords import from_gtp, to_gtp
from zeroloop.go.game import BLACK, WHITE, Game, IllegalMove
from zeroloop.go.rules import Rules


def position(diagram: str, ko_rule: str = "positional", suicide: bool = False, komi: float = 7.0,
             to_move: int = BLACK) -> Game:
    rows = [r.replace(" ", "") for r in diagram.strip().splitlines()]
    assert all(len(r) == len(rows) for r in rows), "diagram must be square"
    game = Game(len(rows), Rules(ko_rule, suicide, komi))
    black = [(x, y) for y, r in enumerate(rows) for x, c in enumerate(r) if c == "X"]
    white = [(x, y) for y, r in enumerate(rows) for x, c in enumerate(r) if c == "O"]
    game.setup(black, white, to_move)
    return game


def drawn(game: Game) -> str:
    return "\n".join("".join(".XO"[c] for c in row) for row in game.grid())


def libs(game: Game, stone: tuple[int, int]) -> int:
    return int(B.group_libs(game.board, game.point(stone)))


# --- captures ---------------------------------------------------------------


def test_single_stone_capture():
    g = position("""
        .....
        ..X..
        .XOX.
        .....
        .....""")
    assert g.play(BLACK, (2, 3)) == 1
    assert g.colour_at(2, 2) == B.EMPTY
    assert g.captures(BLACK) == 1 and g.captures(WHITE) == 0
    assert g.illegal_reason(WHITE, (2, 2)) == "suicide"  # now black's eye


def test_multi_stone_capture_restores_liberties():
    g = position("""
        X....
        OX...
        OX...
        OX...
        .....""")
    assert g.play(BLACK, (0, 4)) == 3
    assert g.stones(WHITE) == []
    assert g.captures(BLACK) == 3
    assert libs(g, (0, 4)) == 2  # (1,4) and the freed (0,3)
    assert libs(g, (1, 2)) == 8  # the column gains (0,1), (0,2), (0,3)
    assert libs(g, (0, 0)) == 2


def test_one_move_captures_several_groups():
    g = position("""
        ..O..
        .OXO.
        OX.XO
        .OXO.
        ..O..""", to_move=WHITE)
    assert g.illegal_reason(BLACK, (2, 2)) == "suicide"  # five black stones, no liberty
    assert g.play(WHITE, (2, 2)) == 4
    assert g.stones(BLACK) == []
    assert g.captures(WHITE) == 4
    assert libs(g, (2, 2)) == 4


def test_filling_own_last_liberty_while_capturing_is_legal():
    g = position("""
        .OX..
        OX...
        X....
        .....
        .....""")
    assert g.play(BLACK, (0, 0)) == 2  # both white stones had only (0,0)
    assert libs(g, (0, 0)) == 2
    assert g.board[B.H_KO_POINT] == -1  # two stones taken: no ko


# --- suicide ------------------------------------------------------------------


@pytest.mark.parametrize("suicide", [False, True])
def test_single_stone_suicide_never_legal(suicide):
    g = position("""
        .O...
        O....
        .....
        .....
        .....""", suicide=suicide)
    assert g.illegal_reason(BLACK, (0, 0)) == "suicide"
    with pytest.raises(IllegalMove, match="suicide"):
        g.play(BLACK, (0, 0))
    assert g.move_number == 0 and g.to_move == BLACK


MULTI_SUICIDE = """
    X.O..
    OOO..
    .....
    .....
    ....."""


def test_multi_stone_suicide_forbidden_by_default():
    g = position(MULTI_SUICIDE, suicide=False)
    assert g.illegal_reason(BLACK, (1, 0)) == "suicide"


def test_multi_stone_suicide_legal_when_allowed():
    g = position(MULTI_SUICIDE, suicide=True)
    assert g.play(BLACK, (1, 0)) == -2  # black loses both stones
    assert g.stones(BLACK) == []
    assert g.captures(WHITE) == 2  # as GNU Go counts them: to the opponent
    assert g.to_move == WHITE
    assert libs(g, (2, 0)) == 7  # the white group regains (0,0) and (1,0)


# --- ko -----------------------------------------------------------------------

KO = """
    .......
    ..XO...
    .XO.O..
    ..XO...
    .......
    .......
    ......."""


@pytest.mark.parametrize("ko_rule", ["simple", "positional", "situational"])
def test_immediate_ko_recapture_banned(ko_rule):
    g = position(KO, ko_rule=ko_rule)
    assert g.play(BLACK, (3, 2)) == 1
    assert g.illegal_reason(WHITE, (2, 2)) == ("ko" if ko_rule == "simple" else "superko")
    assert g.is_legal(BLACK, (2, 2))  # the ban is the opponent's only
    g.play(WHITE, (6, 6))
    g.play(BLACK, (0, 6))
    assert g.play(WHITE, (2, 2)) == 1  # after a ko threat white may retake
    assert not g.is_legal(BLACK, (3, 2))  # and now black is banned


def test_pass_lifts_the_simple_ko_ban():
    for ko_rule, legal in (("simple", True), ("positional", False)):
        g = position(KO, ko_rule=ko_rule)
        g.play(BLACK, (3, 2))
        g.play(WHITE, None)
        # Any-colour play (GTP): white again, straight after its pass.
        assert g.is_legal(WHITE, (2, 2)) is legal, ko_rule


def test_taking_two_stones_is_not_a_ko():
    g = position("""
        .XXO.
        XOO..
        .....
        .....
        .....""", ko_rule="simple", to_move=WHITE)
    assert g.play(WHITE, (0, 0)) == 2
    assert libs(g, (0, 0)) == 1
    assert g.board[B.H_KO_POINT] == -1
    assert g.play(BLACK, (1, 0)) == 1  # immediate recapture of one stone is fine


# --- superko -----------------------------------------------------------------

# Three kos on 9x9. "W" state: white stone on the ko's left point (black may
# take it); "B" state: black stone on the right point (white may take it).
KO_ORIGINS = ((0, 0), (5, 0), (0, 5))


def kos(ko_rule: str, states: str) -> Game:
    black: list[tuple[int, int]] = []
    white: list[tuple[int, int]] = []
    for (ox, oy), state in zip(KO_ORIGINS, states):
        black += [(ox + 1, oy), (ox, oy + 1), (ox + 1, oy + 2)]
        white += [(ox + 2, oy), (ox + 3, oy + 1), (ox + 2, oy + 2)]
        if state == "W":
            white.append(left(KO_ORIGINS.index((ox, oy))))
        else:
            black.append(right(KO_ORIGINS.index((ox, oy))))
    g = Game(9, Rules(ko_rule, False, 7.0))
    g.setup(black, white, BLACK)
    return g


def left(i: int) -> tuple[int, int]:
    ox, oy = KO_ORIGINS[i]
    return (ox + 1, oy + 1)


def right(i: int) -> tuple[int, int]:
    ox, oy = KO_ORIGINS[i]
    return (ox + 2, oy + 1)


TRIPLE_KO_CYCLE = [
    (BLACK, right(1)),  # BWW -> BBW
    (WHITE, left(0)),  # -> WBW
    (BLACK, right(2)),  # -> WBB
    (WHITE, left(1)),  # -> WWB
    (BLACK, right(0)),  # -> BWB
    (WHITE, left(2)),  # -> BWW: the start again, black to move
]


@pytest.mark.parametrize("ko_rule", ["positional", "situational"])
def test_triple_ko_cycle_broken_by_superko(ko_rule):
    g = kos(ko_rule, "BWW")
    for colour, move in TRIPLE_KO_CYCLE[:-1]:
        assert g.play(colour, move) == 1
    colour, move = TRIPLE_KO_CYCLE[-1]
    assert g.illegal_reason(colour, move) == "superko"
    assert g.board[B.H_KO_POINT] == g.point(left(0))  # the simple-ko point is elsewhere


def test_triple_ko_cycles_forever_under_simple_ko():
    g = kos("simple", "BWW")
    start = drawn(g)
    for _ in range(3):
        for colour, move in TRIPLE_KO_CYCLE:
            assert g.play(colour, move) == 1
        assert drawn(g) == start
    assert g.captures(BLACK) == 9 and g.captures(WHITE) == 9


@pytest.mark.parametrize("ko_rule,legal", [("positional", False), ("situational", True), ("simple", True)])
def test_situational_allows_a_repeat_with_the_other_player_to_move(ko_rule, legal):
    # Two kos and a black pass: black's last capture recreates the start
    # board (black was to move then, white is now).
    g = kos(ko_rule, "BWB")
    start = drawn(g)
    for colour, move in [(BLACK, right(1)), (WHITE, left(0)), (BLACK, None), (WHITE, left(1))]:
        g.play(colour, move)
    assert g.is_legal(BLACK, right(0)) is legal
    if legal:
        g.play(BLACK, right(0))
        assert drawn(g) == start
    else:
        assert g.illegal_reason(BLACK, right(0)) == "superko"


@pytest.mark.parametrize("ko_rule,legal", [("positional", False), ("situational", True)])
def test_multi_stone_suicide_back_to_an_earlier_position(ko_rule, legal):
    # Black plays (0,0), white passes, black kills both stones with (1,0):
    # the board is the start board again. GNU Go 3.8 allows this even under
    # positional superko (it hashes the suicide before removing the stones);
    # zeroloop follows KataGo and bans it. See tests/test_gnugo_diff.py.
    g = position("""
        ..O..
        OO...
        .....
        .....
        .....""", ko_rule=ko_rule, suicide=True)
    start = drawn(g)
    g.play(BLACK, (0, 0))
    g.play(WHITE, None)
    assert g.is_legal(BLACK, (1, 0)) is legal
    if legal:
        assert g.play(BLACK, (1, 0)) == -2
        assert drawn(g) == start
    else:
        assert g.illegal_reason(BLACK, (1, 0)) == "superko"


def test_pass_is_always_legal_under_superko():
    g = position(KO)
    for colour in (BLACK, WHITE, BLACK, WHITE):
        assert g.is_legal(colour, None)
        g.play(colour, None)
    assert g.is_over


# --- scoring ------------------------------------------------------------------

# A seki: black (1,0) and white (0,1) share the liberties (0,0) and (1,1);
# whoever fills one first is captured. White's wall has two eyes, black's
# wall owns the bottom.
SEKI = """
    .XO.O.O
    O.OOOOO
    XXXXXXX
    .......
    .......
    .......
    ......."""


def test_seki_liberties_are_shared_under_tromp_taylor():
    g = position(SEKI, komi=7.0)
    own = g.ownership()
    assert own[0, 0] == 0 and own[1, 1] == 0  # [y, x]: the shared liberties
    assert own[0, 1] == 1 and own[1, 0] == -1  # the seki stones count for their owners
    assert own[0, 3] == -1 and own[0, 5] == -1  # white's eyes
    assert (own[3:, :] == 1).all()
    assert int((own == 1).sum()) == 36 and int((own == -1).sum()) == 11
    assert g.score() == 36 - 11 - 7.0
    assert g.result() == "B+18"


def test_seki_is_a_seki():
    for mover, other, first, second in ((BLACK, WHITE, (0, 0), (1, 1)), (WHITE, BLACK, (0, 0), (1, 1))):
        g = position(SEKI, to_move=mover)
        assert g.play(mover, first) == 0
        assert g.play(other, second) == 2  # filling a shared liberty loses two stones


@pytest.mark.parametrize("komi,result,winner", [(25, "0", None), (24.5, "B+0.5", BLACK), (25.5, "W+0.5", WHITE),
                                                (-3, "B+28", BLACK)])
def test_komi_integer_draws_and_halves(komi, result, winner):
    g = position(SEKI, komi=komi)
    assert g.result() == result
    assert g.winner() == winner


def test_resignation_result():
    g = Game(9)
    g.play(BLACK, (4, 4))
    g.resign(WHITE)
    assert g.is_over and g.result() == "B+R" and g.winner() == BLACK
    with pytest.raises(IllegalMove):
        g.play(WHITE, (3, 3))


def test_move_cap_ends_the_game():
    g = Game(5, max_moves=3)
    for move in ((0, 0), (4, 4), (2, 2)):
        assert not g.is_over
        g.play(g.to_move, move)
    assert g.is_over


# --- undo ---------------------------------------------------------------------


def random_moves(game: Game, count: int, rng: np.random.Generator, pass_prob: float = 0.03):
    mask = np.zeros(game.size * game.size + 1, dtype=np.int64)
    for _ in range(count):
        c = game.to_move
        B.legal_mask(game.board, game.hist, c, mask)
        points = np.flatnonzero(mask[:-1])
        if len(points) == 0 or rng.random() < pass_prob:
            move = None
        else:
            i = int(rng.choice(points))
            move = (i % game.size, i // game.size)
        game.play(c, move)


def snapshot(g: Game):
    return (g.board.copy(), g.hist.copy(), list(g.moves), g.captures(BLACK), g.captures(WHITE), g.to_move,
            int(g.board[B.H_KO_POINT]), g.passes)


@pytest.mark.parametrize("ko_rule", ["simple", "positional", "situational"])
def test_undo_restores_everything(ko_rule):
    rng = np.random.default_rng(7)
    g = Game(5, Rules(ko_rule, ko_rule == "situational", 7.0))
    shots = [snapshot(g)]
    for _ in range(120):
        random_moves(g, 1, rng)
        shots.append(snapshot(g))
    assert g.captures(BLACK) + g.captures(WHITE) > 10  # the game had captures
    for expected in reversed(shots[:-1]):
        g.undo()
        got = snapshot(g)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])  # superko table, exactly
        assert got[2:] == expected[2:]
    with pytest.raises(IndexError):
        g.undo()


def game_state(g: Game) -> np.ndarray:
    """The board array minus scratch (mark area, mark counter, table slot)."""
    b = g.board
    keep = np.ones(len(b), dtype=bool)
    keep[[B.H_MARK_GEN, B.H_HIST_SLOT]] = False
    keep[B.HEADER + 5 * B.area_len(g.size):] = False
    return b[keep]


def test_undo_after_the_superko_table_grew():
    rng = np.random.default_rng(3)
    g = Game(9, Rules("positional"), max_moves=1)  # table sized for 1 move: it must grow
    first = len(g.hist)
    random_moves(g, 200, rng)
    assert len(g.hist) > first
    mask, fresh_mask = (np.zeros(82, dtype=np.int64) for _ in range(2))
    for _ in range(200):
        g.undo()
        fresh = Game(9, Rules("positional"))
        for colour, move in g.moves:
            fresh.play(colour, move)
        np.testing.assert_array_equal(game_state(g), game_state(fresh))
        B.legal_mask(g.board, g.hist, g.to_move, mask)
        B.legal_mask(fresh.board, fresh.hist, fresh.to_move, fresh_mask)
        np.testing.assert_array_equal(mask, fresh_mask)


def test_undo_restores_resignation():
    g = Game(5)
    g.play(BLACK, (2, 2))
    g.resign(WHITE)
    g.undo()
    assert g.resigned is None and g.move_number == 0


# --- board sizes and coordinates ---------------------------------------------


def test_2x2_capture_and_score():
    g = Game(2, Rules(komi=0.5))
    g.play(BLACK, (0, 0))
    g.play(WHITE, (1, 1))
    g.play(BLACK, (1, 0))
    assert g.play(WHITE, (0, 1)) == 2
    assert g.stones(BLACK) == [] and g.stones(WHITE) == [(0, 1), (1, 1)]
    assert g.score() == -4.5 and g.result() == "W+4.5"
    assert g.is_legal(BLACK, (0, 0))
    assert g.illegal_reason(WHITE, (1, 1)) == "occupied"
    assert not g.is_legal(BLACK, (2, 0))


def test_19x19_random_game_and_vertex_names():
    g = Game(19)
    assert to_gtp((0, 0), 19) == "A19" and to_gtp((18, 18), 19) == "T1" and to_gtp((8, 9), 19) == "J10"
    assert from_gtp("t19", 19) == (18, 0) and from_gtp("PASS", 19) is None
    for bad in ("I5", "U1", "A20", "A0", "", "5A"):
        with pytest.raises(ValueError):
            from_gtp(bad, 19)
    B.seed(11)
    moves = B.random_game(g.board, g.hist, 2000)
    assert moves > 300 and g.passes >= 2
    own = g.ownership()
    black = int((own == 1).sum())
    white = int((own == -1).sum())
    assert black + white <= 361
    assert g.score() == black - white - g.rules.komi


@pytest.mark.parametrize("size", [1, 20, 0])
def test_sizes_outside_2_to_19_rejected(size):
    with pytest.raises(ValueError):
        Game(size)


def test_setup_rejects_a_group_without_liberties():
    with pytest.raises(IllegalMove, match="liberties"):
        position("""
            XO
            O.""")
