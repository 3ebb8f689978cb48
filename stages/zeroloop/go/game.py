"""A game of Go for the slow paths (GTP, SGF, tests): history, undo, result.

Wraps the compiled board (``zeroloop.go.board``) with what an engine front
end needs: moves by either colour in any order, legality with reasons, undo
(each move keeps a copy of the board: cheap at these sizes), two passes or a
move cap ending the game, resignation, and Tromp-Taylor area scoring.
Self-play does not use this class in its hot loop; it drives batches of
board arrays directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from zeroloop.go import board as B
from zeroloop.go.rules import Rules

Move = tuple[int, int] | None  # (x, y) from the top-left, None = pass

BLACK, WHITE = B.BLACK, B.WHITE
COLOUR_NAMES = {BLACK: "B", WHITE: "W"}


class IllegalMove(ValueError):
    """A move the rules do not allow (occupied, ko, superko or suicide)."""


def parse_colour(text: str) -> int:
    t = text.strip().lower()
    if t in ("b", "black"):
        return BLACK
    if t in ("w", "white"):
        return WHITE
    raise ValueError(f"invalid color {text!r}")


@dataclass
class _Undo:
    board: np.ndarray
    slot: int
    resigned: int | None


@dataclass
class Game:
    size: int
    rules: Rules = field(default_factory=Rules)
    max_moves: int | None = None

    def __post_init__(self):
        if not B.MIN_SIZE <= self.size <= B.MAX_SIZE:
            raise ValueError(f"board size {self.size} outside {B.MIN_SIZE}..{B.MAX_SIZE}")
        self.board = B.new_board(self.size, self.rules.ko_code, self.rules.multi_stone_suicide)
        cap = self.max_moves if self.max_moves else 4 * self.size * self.size + 64
        self.hist = B.hist_new(cap)
        B.record_position(self.board, self.hist, WHITE)
        self.moves: list[tuple[int, Move]] = []
        self.resigned: int | None = None  # colour that resigned
        self._undo: list[_Undo] = []
        self._slots_valid = True
        self._start = self.board.copy()  # the position moves are counted from
        self.placed: tuple[list[tuple[int, int]], list[tuple[int, int]]] = ([], [])  # setup stones
        self.first_to_move = BLACK

    def setup(self, black: list[tuple[int, int]], white: list[tuple[int, int]], to_move: int = BLACK) -> None:
        """Replace the game by a position of placed stones (SGF AB/AW, tests).

        Like GNU Go's add_stone, this forgets all history: the placed
        position is the first the superko rule knows, with no captures and
        no ko. Every group must keep a liberty.
        """
        b = B.new_board(self.size, self.rules.ko_code, self.rules.multi_stone_suicide)
        scratch = B.hist_new(len(black) + len(white))
        seen: set[tuple[int, int]] = set()
        for colour, points in ((BLACK, black), (WHITE, white)):
            for move in points:
                p = self.point(move)
                if move in seen:
                    raise IllegalMove(f"setup stone {move} is placed twice")
                seen.add(move)
                if B.play(b, scratch, p, colour) != 0:
                    raise IllegalMove(f"setup stones leave a group without liberties (at {move})")
        for i in range(B.N_LAST):
            b[B.H_LAST + i] = B.NO_MOVE
        b[B.H_MOVE_NUM] = 0
        b[B.H_PASSES] = 0
        b[B.H_KO_POINT] = -1
        b[B.H_CAPS_BLACK] = 0
        b[B.H_CAPS_WHITE] = 0
        b[B.H_TO_MOVE] = to_move
        self.board = b
        self.hist[:] = 0
        B.record_position(self.board, self.hist, 3 - to_move)
        self.moves = []
        self.resigned = None
        self._undo = []
        self._slots_valid = True
        self._start = self.board.copy()
        self.placed = (list(black), list(white))
        self.first_to_move = to_move

    # --- state ------------------------------------------------------------

    @property
    def to_move(self) -> int:
        return int(self.board[B.H_TO_MOVE])

    @to_move.setter
    def to_move(self, colour: int) -> None:
        self.board[B.H_TO_MOVE] = colour

    @property
    def move_number(self) -> int:
        return len(self.moves)

    @property
    def passes(self) -> int:
        return int(self.board[B.H_PASSES])

    @property
    def is_over(self) -> bool:
        if self.resigned is not None or self.passes >= 2:
            return True
        return self.max_moves is not None and self.move_number >= self.max_moves

    def point(self, move: Move) -> int:
        if move is None:
            return B.PASS
        x, y = move
        if not (0 <= x < self.size and 0 <= y < self.size):
            raise IllegalMove(f"{move} is off the board")
        return int(B.point_of(self.board, x, y))

    def colour_at(self, x: int, y: int) -> int:
        return int(B.colour_at(self.board, self.point((x, y))))

    def grid(self) -> np.ndarray:
        """(size, size) colours, [y, x] from the top-left: EMPTY, BLACK or WHITE."""
        s = self.size + 2
        return self.board[B.HEADER:B.HEADER + s * s].reshape(s, s)[1:-1, 1:-1].copy()

    def stones(self, colour: int) -> list[tuple[int, int]]:
        """The (x, y) points holding colour's stones, row by row from the top."""
        ys, xs = np.nonzero(self.grid() == colour)
        return [(int(x), int(y)) for y, x in zip(ys, xs)]

    def captures(self, colour: int) -> int:
        """Stones captured by colour so far."""
        return int(self.board[B.H_CAPS_BLACK if colour == BLACK else B.H_CAPS_WHITE])

    def grow_history(self) -> None:
        """Make room in the superko table when a game runs past its sizing."""
        if np.count_nonzero(self.hist) * 2 + 64 < len(self.hist):
            return
        bigger = np.zeros(len(self.hist) * 2, dtype=np.int64)
        for key in self.hist[self.hist != 0]:
            B.hist_add(bigger, key)
        self.hist = bigger
        self._slots_valid = False  # slots moved: undo rebuilds the table instead

    # --- moves --------------------------------------------------------------

    def is_legal(self, colour: int, move: Move) -> bool:
        try:
            p = self.point(move)
        except IllegalMove:
            return False
        return bool(B.is_legal(self.board, self.hist, p, colour))

    def illegal_reason(self, colour: int, move: Move) -> str | None:
        """Why a move is illegal ('occupied', 'ko', 'superko', 'suicide'), or None."""
        if self.is_legal(colour, move):
            return None
        p = self.point(move)
        if B.colour_at(self.board, p) != B.EMPTY:
            return "occupied"
        probe = self.board.copy()
        probe[B.H_KO_RULE] = B.KO_SIMPLE
        probe[B.H_KO_POINT] = -1
        if not B.is_legal(probe, self.hist, p, colour):
            return "suicide"
        return "ko" if self.rules.ko_rule == "simple" else "superko"

    def play(self, colour: int, move: Move) -> int:
        """Play a move (either colour, any order); return stones captured."""
        if self.is_over and self.resigned is not None:
            raise IllegalMove("the game is over (resignation)")
        p = self.point(move)
        if not B.is_legal(self.board, self.hist, p, colour):
            raise IllegalMove(f"illegal move: {self.illegal_reason(colour, move)}")
        self.grow_history()
        snapshot = _Undo(self.board.copy(), -1, self.resigned)
        captured = B.play(self.board, self.hist, p, colour)
        snapshot.slot = int(self.board[B.H_HIST_SLOT])
        self._undo.append(snapshot)
        self.moves.append((colour, move))
        return int(captured)

    def recent_boards(self) -> tuple[np.ndarray, np.ndarray]:
        """The boards before the last move and before the one earlier (the current board where there is none)."""
        prev1 = self._undo[-1].board if self._undo else self.board
        prev2 = self._undo[-2].board if len(self._undo) >= 2 else prev1
        return prev1, prev2

    def resign(self, colour: int) -> None:
        self.resigned = colour

    def undo(self) -> None:
        if not self._undo:
            raise IndexError("no move to undo")
        u = self._undo.pop()
        self.moves.pop()
        self.board = u.board
        self.resigned = u.resigned
        if self._slots_valid:
            B.hist_remove(self.hist, u.slot)  # exact: undo is last-in first-out
        else:
            self._rebuild_history()

    def _rebuild_history(self) -> None:
        board = self._start.copy()
        hist = np.zeros_like(self.hist)
        B.record_position(board, hist, 3 - int(board[B.H_TO_MOVE]))
        for colour, move in self.moves:
            B.play(board, hist, self.point(move), colour)
        self.hist = hist

    # --- scoring ----------------------------------------------------------

    def ownership(self) -> np.ndarray:
        """(size, size) int8: +1 black area, -1 white area, 0 shared."""
        out = np.zeros(self.size * self.size, dtype=np.int64)
        B.area_ownership(self.board.copy(), out)
        return out.reshape(self.size, self.size).astype(np.int8)

    def score(self) -> float:
        """Black's area minus white's area minus komi (positive: black leads)."""
        out = np.zeros(self.size * self.size, dtype=np.int64)
        return float(B.area_ownership(self.board.copy(), out)) - self.rules.komi

    def winner(self) -> int | None:
        """BLACK, WHITE or None (draw) for a finished or scored game."""
        if self.resigned is not None:
            return 3 - self.resigned
        s = self.score()
        return BLACK if s > 0 else WHITE if s < 0 else None

    def result(self) -> str:
        """SGF result: 'B+3.5', 'W+R', '0' (draw)."""
        if self.resigned is not None:
            return f"{COLOUR_NAMES[3 - self.resigned]}+R"
        s = self.score()
        if s == 0:
            return "0"
        return f"{'B' if s > 0 else 'W'}+{abs(s):g}"
