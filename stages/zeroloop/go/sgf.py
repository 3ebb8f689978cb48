"""SGF game records: write finished games, read them back (GTP ``loadsgf``).

sgfmill does the file format; this module maps it to ``Game``. Written
records carry SZ, KM, RU (KataGo's rules string, ``Rules.sgf_name``), RE,
the moves, optional player names and comments, and placed stones (AB/AW)
when the game started from a setup position.

Reading is strict because a record may come from anywhere: a file that is
not SGF, is not Go, has an unsupported size, a malformed komi, setup stones
in the middle of the game, or a move the rules forbid is refused with an
``SgfError`` naming the problem.
"""

from __future__ import annotations

import datetime
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from sgfmill import sgf

from zeroloop import __version__
from zeroloop.errors import UserError
from zeroloop.go import board as B
from zeroloop.go.coords import to_gtp
from zeroloop.go.game import BLACK, WHITE, Game, IllegalMove, Move
from zeroloop.go.rules import Rules

MAX_SGF_BYTES = 10_000_000
_COLOUR = {BLACK: "b", WHITE: "w"}
_FROM_SGF_COLOUR = {"b": BLACK, "w": WHITE}


class SgfError(UserError):
    """An SGF record that cannot be read as a zeroloop game."""


@dataclass
class Record:
    """What an SGF file says about one game (main line only)."""

    size: int
    komi: float | None  # None when the record has no KM
    rules_name: str | None
    setup_black: list[tuple[int, int]] = field(default_factory=list)
    setup_white: list[tuple[int, int]] = field(default_factory=list)
    first_to_move: int | None = None  # PL, when given
    moves: list[tuple[int, Move]] = field(default_factory=list)
    result: str | None = None
    black_name: str | None = None
    white_name: str | None = None


# --- coordinates: ours (x, y) from the top-left; sgfmill (row, col) from the bottom


def _to_sgfmill(move: tuple[int, int], size: int) -> tuple[int, int]:
    x, y = move
    return size - 1 - y, x


def _from_sgfmill(point: tuple[int, int], size: int) -> tuple[int, int]:
    row, col = point
    return col, size - 1 - row


# --- writing --------------------------------------------------------------------


def game_to_sgf(game: Game, *, result: str | None = None, black_name: str | None = None,
                white_name: str | None = None, comment: str | None = None,
                move_comments: dict[int, str] | None = None, date: datetime.date | None = None) -> bytes:
    """The SGF of a game; result defaults to ``game.result()``.

    move_comments maps a move number (1 = first move) to a comment on it.
    """
    record = sgf.Sgf_game(game.size)
    root = record.get_root()
    root.set("KM", float(game.rules.komi))
    root.set("RU", game.rules.sgf_name())
    root.set("RE", result if result is not None else game.result())
    root.set("AP", ("zeroloop", __version__))
    root.set("DT", (date or datetime.date.today()).isoformat())
    if black_name:
        root.set("PB", black_name)
    if white_name:
        root.set("PW", white_name)
    if comment:
        root.set("C", comment)
    black, white = game.placed
    if black or white:
        root.set_setup_stones({_to_sgfmill(p, game.size) for p in black},
                              {_to_sgfmill(p, game.size) for p in white})
        root.set("PL", _COLOUR[game.first_to_move])
    for number, (colour, move) in enumerate(game.moves, start=1):
        node = record.extend_main_sequence()
        node.set_move(_COLOUR[colour], None if move is None else _to_sgfmill(move, game.size))
        if move_comments and number in move_comments:
            node.set("C", move_comments[number])
    return record.serialise()


def write_sgf(path: str | Path, game: Game, **kwargs) -> None:
    Path(path).write_bytes(game_to_sgf(game, **kwargs))


# --- reading --------------------------------------------------------------------


def parse_sgf(data: bytes) -> Record:
    """The main line of an SGF record; raises SgfError if it is not a usable Go game."""
    if len(data) > MAX_SGF_BYTES:
        raise SgfError(f"SGF is {len(data)} bytes, more than {MAX_SGF_BYTES}")
    try:
        parsed = sgf.Sgf_game.from_bytes(data)
    except ValueError as e:
        raise SgfError(f"not a valid SGF file: {e}") from None
    root = parsed.get_root()
    if root.has_property("GM") and root.get_raw("GM").strip() != b"1":
        raise SgfError(f"not a Go record (GM[{root.get_raw('GM').decode(errors='replace')}])")
    size = parsed.get_size()
    if not B.MIN_SIZE <= size <= B.MAX_SIZE:
        raise SgfError(f"board size {size} is outside {B.MIN_SIZE}..{B.MAX_SIZE}")
    try:
        komi = parsed.get_komi() if root.has_property("KM") else None
    except ValueError:
        raise SgfError(f"malformed komi KM[{root.get_raw('KM').decode(errors='replace')}]") from None
    record = Record(size, komi, _text(root, "RU"), result=_text(root, "RE"), black_name=_text(root, "PB"),
                    white_name=_text(root, "PW"))
    if root.has_property("PL"):
        record.first_to_move = _FROM_SGF_COLOUR[root.get("PL")]
    for number, node in enumerate(parsed.get_main_sequence()):
        try:
            black, white, empty = node.get_setup_stones()
            colour, point = node.get_move()
        except ValueError as e:
            raise SgfError(f"node {number}: {e}") from None
        if node.has_property("B") and node.has_property("W"):
            raise SgfError(f"node {number}: a black and a white move in one node")
        if black or white or empty:
            if record.moves or colour is not None:
                raise SgfError(f"node {number}: setup stones after or with a move are not supported")
            if empty:
                raise SgfError(f"node {number}: AE (clearing points) is not supported")
            record.setup_black += [_from_sgfmill(p, size) for p in sorted(black)]
            record.setup_white += [_from_sgfmill(p, size) for p in sorted(white)]
        if colour is not None:
            record.moves.append((_FROM_SGF_COLOUR[colour], None if point is None else _from_sgfmill(point, size)))
    return record


def _text(node, prop: str) -> str | None:
    if not node.has_property(prop):
        return None
    try:
        return str(node.get(prop))
    except ValueError:
        return node.get_raw(prop).decode(errors="replace")


def read_sgf(path: str | Path) -> Record:
    """The record in a regular file of at most MAX_SGF_BYTES (never a device or pipe that could block or flood)."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (regular files ignore the flag)
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise SgfError(f"{path} is not a regular file")
            data = f.read(MAX_SGF_BYTES + 1)
    except OSError as e:
        raise SgfError(f"cannot read {path}: {e.strerror or e}") from None
    return parse_sgf(data)


def replay(record: Record, rules: Rules, *, until_move: int | None = None, until_vertex: Move | None = None,
           max_moves: int | None = None) -> Game:
    """The game of a record, under the given rules.

    until_move N stops before move N is played (as GNU Go's ``loadsgf FILE N``;
    N <= 0 plays every move); until_vertex stops before the first move there.
    """
    game = Game(record.size, rules, max_moves)
    first = record.first_to_move
    if first is None:
        first = record.moves[0][0] if record.moves else (WHITE if record.setup_black and not record.setup_white
                                                         else BLACK)
    try:
        game.setup(record.setup_black, record.setup_white, first)
    except IllegalMove as e:
        raise SgfError(f"setup stones: {e}") from None
    for number, (colour, move) in enumerate(record.moves, start=1):
        if (until_move is not None and 0 < until_move <= number) or (until_vertex is not None and move == until_vertex):
            game.to_move = colour  # the record's next mover, as GNU Go reports it
            break
        reason = game.illegal_reason(colour, move)
        if reason is not None:
            name = "pass" if move is None else to_gtp(move, record.size)
            raise SgfError(f"move {number} ({'B' if colour == BLACK else 'W'} {name}) is illegal: {reason}")
        game.play(colour, move)
    return game
