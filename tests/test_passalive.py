"""Pass-alive area (Benson's algorithm): positions of known status, the area is what playing on gives,
and it never claims more than GNU Go's unconditional status does."""

import subprocess

import numpy as np
import pytest

from zeroloop.go import board as B
from zeroloop.go import passalive
from zeroloop.go.game import Game
from zeroloop.go.rules import Rules

AREA = {1: "b", -1: "w", 0: "."}


def position(diagram: str, suicide: bool = False) -> Game:
    """A game set up from rows of X (Black), O (White), . (empty), top row first."""
    rows = diagram.split()
    game = Game(len(rows), Rules("positional", suicide, 7.0))
    game.setup([(x, y) for y, r in enumerate(rows) for x, c in enumerate(r) if c == "X"],
               [(x, y) for y, r in enumerate(rows) for x, c in enumerate(r) if c == "O"])
    return game


def area(game: Game) -> tuple[str, int]:
    """(the pass-alive area as rows of b/w/., the count of unsettled points)."""
    n = game.size
    out = np.zeros(n * n, dtype=np.int64)
    unsettled = passalive.pass_alive_area(game.board, out)
    return " ".join("".join(AREA[int(v)] for v in out[y * n:(y + 1) * n]) for y in range(n)), int(unsettled)


@pytest.mark.parametrize("diagram, expected, suicide", [
    # Both sides alive with eyes; White's stone in Black's two-point eye is dead and Black's area.
    (".XO.O XXOOO .XO.O OXOOO .XO.O", "bbwww bbwww bbwww bbwww bbwww", False),
    # Three one-point eyes: alive with them; the big open area below is no one's yet.
    (".X.X. XXXXX ..... ..... .....", "bbbbb bbbbb ..... ..... .....", False),
    # One eye only: not pass-alive.
    (".X... XX... ..... ..... .....", "..... ..... ..... ..... .....", False),
    # Two living walls: the row between them is Black's territory (every point a liberty of both).
    (".X.X. XXXXX ..... XXXXX .X.X.", "bbbbb bbbbb bbbbb bbbbb bbbbb", False),
    # A corner eye holding a White stone that touches no Black stone: vital without suicide ...
    (".XX.. XXX.. XXX.. .XX.. O.X..", "bbb.. bbb.. bbb.. bbb.. bbb..", False),
    # ... but where multi-stone suicide is legal, White's stone there could vanish by its own move: not vital.
    (".XX.. XXX.. XXX.. .XX.. O.X..", "..... ..... ..... ..... .....", True),
    # Both sides alive but a neutral point (dame) between them: not settled until it is filled.
    (".X.O. XXXOO .XOO. XXO.O .XOOO", "bb.ww bbbww bbwww bbwww bbwww", False),
    # The empty board and a lone stone.
    ("..... ..... ..... ..... .....", "..... ..... ..... ..... .....", False),
    ("..... ..... ..X.. ..... .....", "..... ..... ..... ..... .....", False),
])
def test_positions_of_known_status(diagram, expected, suicide):
    got, unsettled = area(position(diagram, suicide))
    assert got == expected
    assert unsettled == expected.count(".")
    settled = passalive.settled_ownership(position(diagram, suicide).board)
    assert (settled is not None) == (unsettled == 0)


def test_settled_board_is_scored_by_its_area_not_as_the_stones_stand():
    game = position(".XO.O XXOOO .XO.O OXOOO .XO.O")
    own = passalive.settled_ownership(game.board)
    assert own is not None and int(own.sum()) == 10 - 15
    # Tromp-Taylor as it stands counts the dead White stone for White and its neighbours for no one.
    assert int(game.ownership().sum()) == 7 - 16


def _random_moves(b, hist, cand, upto):
    while b[B.H_PASSES] < 2 and b[B.H_MOVE_NUM] < upto:
        c = int(b[B.H_TO_MOVE])
        B.play(b, hist, B.random_move(b, hist, c, cand), c)
        yield


@pytest.mark.parametrize("size", [5, 7, 9])
def test_settled_area_is_the_final_area_of_playing_on(size):
    """From the first settled position of a game, random play (no own eyes filled) to two passes ends
    with exactly that area as its Tromp-Taylor ownership: ending there changes no target."""
    B.seed(size)
    cap = 6 * size * size
    cand = np.empty(size * size, dtype=np.int64)
    compared = shorter = 0
    for _ in range(100):
        b = B.new_board(size)
        hist = B.hist_new(cap)
        settled, settled_at = None, 0
        for _ in _random_moves(b, hist, cand, cap):
            if settled is None:
                settled = passalive.settled_ownership(b)
                settled_at = int(b[B.H_MOVE_NUM])
        if settled is None or b[B.H_PASSES] < 2:
            continue
        final = np.zeros(size * size, dtype=np.int64)
        B.area_ownership(b, final)
        assert np.array_equal(settled, final)
        compared += 1
        shorter += settled_at < b[B.H_MOVE_NUM]
    # Many random games settle (the others end unsettled: superko leaves some dead stones uncapturable), and
    # most of those well before their end.
    assert compared >= 30 and shorter >= 0.8 * compared


GTP_COLUMNS = "ABCDEFGHJKLMNOPQRST"


def test_area_is_never_more_than_gnugo_unconditional_status(gnugo):
    """GNU Go's unconditional_status (alive / dead / territory, the owner may also answer) covers every point
    we call pass-alive: stones alive, the opponent's stones in the territory dead, its empty points territory."""
    script, expect = [], []
    for size in (5, 7, 9):
        B.seed(100 + size)
        for k in range(6):
            b = B.new_board(size)
            hist = B.hist_new(6 * size * size)
            cand = np.empty(size * size, dtype=np.int64)
            script += [f"boardsize {size}", "clear_board"]
            for _ in _random_moves(b, hist, cand, (1 + k % 3) * size * size):
                last = int(b[B.H_LAST])
                colour = "b" if b[B.H_TO_MOVE] == B.WHITE else "w"
                script.append(f"play {colour} {'pass' if last == B.PASS else _vertex(b, last)}")
            out = np.zeros(size * size, dtype=np.int64)
            passalive.pass_alive_area(b, out)
            for i in range(size * size):
                p = int(B.move_of_index(b, i))
                script.append(f"unconditional_status {_vertex(b, p)}")
                expect.append((int(B.colour_at(b, p)), int(out[i])))
    text = subprocess.run([gnugo, "--mode", "gtp", "--quiet"], input="\n".join(script) + "\n", capture_output=True,
                          text=True, timeout=120).stdout
    answers = [a.strip()[2:] for a in text.split("\n\n") if a.strip()]
    assert not [a for a in answers if a.startswith("?")]
    statuses = [a for a in answers if a]  # play answers are empty
    assert len(statuses) == len(expect)
    claimed = 0
    for (colour, owner), status in zip(expect, statuses):
        if owner == 0:
            continue
        claimed += 1
        mine = B.BLACK if owner == 1 else B.WHITE
        if colour == B.EMPTY:
            assert status == ("black_territory" if mine == B.BLACK else "white_territory")
        else:
            assert status == ("alive" if colour == mine else "dead")
    assert claimed > len(expect) // 3


def _vertex(b, p: int) -> str:
    n = int(b[B.H_SIZE])
    i = int(B.index_of_move(b, p))
    return f"{GTP_COLUMNS[i % n]}{n - i // n}"
