"""`zeroloop gtp`: a GTP version 2 engine on stdin/stdout.

The protocol (parsing, ids, errors, the command table) is ``GtpEngine``,
which holds a ``Game`` and asks a ``Player`` for moves; players know nothing
of GTP. Input is cleaned as the GTP 2 specification says (control
characters dropped, ``#`` comments cut, tabs to spaces, blank lines
ignored). Every failure is a ``?`` response with a short message; nothing a
controller sends can end the engine except ``quit`` or end of input.

Beyond the standard commands it answers GNU Go's ``list_stones``,
``is_legal``, ``captures`` and ``final_score``, and ``loadsgf FILE [N|VERTEX]``
with GNU Go's meaning (the position before move N, or before the first move
at VERTEX), keeping the engine's ko and suicide rules and taking the komi
from the file.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import BinaryIO, TextIO

from zeroloop import __version__, cliflags
from zeroloop.errors import ConfigError, UserError
from zeroloop.go import board as B
from zeroloop.go import handicap
from zeroloop.go.coords import COLUMNS, from_gtp, to_gtp
from zeroloop.go.game import BLACK, WHITE, Game, IllegalMove, Move
from zeroloop.go.rules import KO_RULES, Rules, check_komi
from zeroloop.go.sgf import SgfError, read_sgf, replay
from zeroloop.player import RESIGN, Player, RandomPlayer, model_player

log = logging.getLogger(__name__)

PROTOCOL_VERSION = "2"
MAX_LINE_BYTES = 65536
_CONTROL = {c: None for c in range(32) if c not in (9, 10)} | {127: None}


class GtpError(Exception):
    """A command failed; the message is the text after ``?``."""


def clean_line(raw: str) -> str:
    """A line after GTP 2's preprocessing (empty if nothing is left)."""
    line = raw.translate(_CONTROL)
    line = line.split("#", 1)[0]
    return line.replace("\t", " ").strip()


def is_gtp_int(word: str) -> bool:
    """GTP's int: ASCII digits only (str.isdigit also takes '²' and other scripts' digits)."""
    return word.isascii() and word.isdigit()


def parse_colour(word: str) -> int:
    w = word.lower()
    if w in ("b", "black"):
        return BLACK
    if w in ("w", "white"):
        return WHITE
    raise GtpError("syntax error")


class GtpEngine:
    """GTP commands over one game; ``handle`` answers one input line."""

    def __init__(self, player: Player, size: int = 19, rules: Rules = Rules(), name: str = "zeroloop"):
        self.player = player
        self.rules = rules
        self.name = name
        self.game = Game(size, rules)
        self.quitting = False
        self.commands: dict[str, Callable[[list[str]], str]] = {
            "protocol_version": lambda a: PROTOCOL_VERSION,
            "name": lambda a: self.name,
            "version": lambda a: f"{__version__} ({player.name})",
            "known_command": self.cmd_known_command,
            "list_commands": lambda a: "\n".join(self.commands),
            "quit": self.cmd_quit,
            "boardsize": self.cmd_boardsize,
            "clear_board": self.cmd_clear_board,
            "komi": self.cmd_komi,
            "play": self.cmd_play,
            "genmove": self.cmd_genmove,
            "undo": self.cmd_undo,
            "showboard": self.cmd_showboard,
            "final_score": lambda a: self.game.result(),
            "loadsgf": self.cmd_loadsgf,
            "list_stones": self.cmd_list_stones,
            "is_legal": self.cmd_is_legal,
            "captures": self.cmd_captures,
            "fixed_handicap": self.cmd_fixed_handicap,
            "place_free_handicap": self.cmd_fixed_handicap,  # the engine's choice: the fixed points
            "set_free_handicap": self.cmd_set_free_handicap,
            "time_settings": lambda a: "",  # accepted; the random player needs no clock
            "time_left": lambda a: "",
        }

    # --- protocol ---------------------------------------------------------

    def handle(self, raw: str) -> str | None:
        """The full response to one input line, or None for a line GTP ignores."""
        line = clean_line(raw)
        if not line:
            return None
        words = line.split()
        cid = ""
        if is_gtp_int(words[0]):
            cid = words.pop(0)
            if not words:
                return f"?{cid} missing command\n\n"
        name, args = words[0], words[1:]
        command = self.commands.get(name)
        try:
            if command is None:
                raise GtpError("unknown command")
            result = command(args)
        except GtpError as e:
            return f"?{cid} {e}\n\n"
        except Exception as e:  # a bug must not end the engine
            log.exception("gtp: %s failed", name)
            return f"?{cid} internal error: {type(e).__name__}: {e}".replace("\n", " ") + "\n\n"
        return f"={cid} {result}\n\n"

    def serve(self, inp: BinaryIO, out: TextIO) -> int:
        """Answer lines from inp until quit or end of input."""
        while not self.quitting:
            raw = inp.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # drop the rest of the line
                    raw = inp.readline(MAX_LINE_BYTES)
                out.write("? command too long\n\n")
                out.flush()
                continue
            response = self.handle(raw.decode("utf-8", errors="replace"))
            if response is not None:
                out.write(response)
                out.flush()
        return 0

    # --- argument helpers -------------------------------------------------------

    def _vertex(self, word: str) -> Move:
        if word.lower() == "pass":
            return None
        w = word.upper()
        if len(w) < 2 or w[0] not in COLUMNS or not is_gtp_int(w[1:]):
            raise GtpError("syntax error")
        try:
            return from_gtp(w, self.game.size)
        except ValueError:
            raise GtpError("illegal move") from None  # a vertex, but off this board

    @staticmethod
    def _args(args: list[str], count: int) -> list[str]:
        if len(args) < count:
            raise GtpError("syntax error")
        return args

    def _vertex_name(self, move: Move) -> str:
        return to_gtp(move, self.game.size)

    # --- commands ------------------------------------------------------------

    def cmd_known_command(self, args: list[str]) -> str:
        return "true" if args and args[0] in self.commands else "false"

    def cmd_quit(self, args: list[str]) -> str:
        self.quitting = True
        return ""

    def cmd_boardsize(self, args: list[str]) -> str:
        (word, *_) = self._args(args, 1)
        if not is_gtp_int(word.lstrip("-")):
            raise GtpError("syntax error")
        size = int(word)
        if not B.MIN_SIZE <= size <= B.MAX_SIZE:
            raise GtpError("unacceptable size")
        self.game = Game(size, self.rules)
        return ""

    def cmd_clear_board(self, args: list[str]) -> str:
        self.game = Game(self.game.size, self.rules)
        return ""

    def cmd_komi(self, args: list[str]) -> str:
        (word, *_) = self._args(args, 1)
        try:
            if not word.isascii():
                raise ValueError(word)
            komi = float(word)
        except ValueError:
            raise GtpError("syntax error") from None
        try:
            check_komi(komi)
        except ConfigError:
            raise GtpError("unacceptable komi") from None
        self.rules = self.rules.with_komi(komi)
        self.game.rules = self.rules
        return ""

    def cmd_play(self, args: list[str]) -> str:
        colour_word, vertex_word, *_ = self._args(args, 2)
        colour = parse_colour(colour_word)
        move = self._vertex(vertex_word)
        try:
            self.game.play(colour, move)
        except IllegalMove as e:
            log.debug("gtp: play %s %s refused: %s", colour_word, vertex_word, e)
            raise GtpError("illegal move") from None
        return ""

    def cmd_genmove(self, args: list[str]) -> str:
        (colour_word, *_) = self._args(args, 1)
        colour = parse_colour(colour_word)
        decision = self.player.genmove(self.game, colour)
        if decision == RESIGN:
            self.game.resign(colour)
            return "resign"
        try:
            self.game.play(colour, decision)
        except IllegalMove as e:
            raise GtpError(f"player chose an illegal move {self._vertex_name(decision)}: {e}") from None
        return self._vertex_name(decision)

    def cmd_undo(self, args: list[str]) -> str:
        try:
            self.game.undo()
        except IndexError:
            raise GtpError("cannot undo") from None
        return ""

    def cmd_showboard(self, args: list[str]) -> str:
        n = self.game.size
        grid = self.game.grid()
        letters = "   " + " ".join(COLUMNS[:n])
        rows = [letters]
        for y in range(n):
            row = " ".join(".XO"[c] for c in grid[y])
            rows.append(f"{n - y:2d} {row} {n - y:2d}")
        rows.append(letters)
        g = self.game
        rows.append(f"to move: {'black' if g.to_move == BLACK else 'white'}, captures: black {g.captures(BLACK)} "
                    f"white {g.captures(WHITE)}, komi {g.rules.komi:g}, rules {g.rules.sgf_name()}")
        return "\n" + "\n".join(rows)

    def cmd_loadsgf(self, args: list[str]) -> str:
        path, *rest = self._args(args, 1)
        until_move = until_vertex = None
        if rest:
            if is_gtp_int(rest[0].lstrip("-")):
                until_move = int(rest[0])
            else:
                until_vertex = self._vertex(rest[0])
        try:
            record = read_sgf(path)
            rules = self.rules if record.komi is None else self.rules.with_komi(record.komi)
            game = replay(record, rules,
                          until_move=until_move, until_vertex=until_vertex)
        except (SgfError, ConfigError) as e:
            raise GtpError(f"cannot load {path}: {e}") from None
        self.game = game
        self.rules = game.rules
        return "black" if game.to_move == BLACK else "white"

    def cmd_list_stones(self, args: list[str]) -> str:
        (colour_word, *_) = self._args(args, 1)
        colour = parse_colour(colour_word)
        return " ".join(self._vertex_name(p) for p in self.game.stones(colour))

    def cmd_is_legal(self, args: list[str]) -> str:
        colour_word, vertex_word, *_ = self._args(args, 2)
        colour = parse_colour(colour_word)
        try:
            move = self._vertex(vertex_word)
        except GtpError as e:
            if str(e) == "illegal move":
                return "0"
            raise
        return "1" if self.game.is_legal(colour, move) else "0"

    def cmd_captures(self, args: list[str]) -> str:
        (colour_word, *_) = self._args(args, 1)
        return str(self.game.captures(parse_colour(colour_word)))


# --- command line ---------------------------------------------------------------


    def _handicap_count(self, args: list[str]) -> int:
        (word, *_) = self._args(args, 1)
        if not is_gtp_int(word):
            raise GtpError("syntax error")
        return int(word)

    def _place_handicap(self, points: list[Move]) -> None:
        if self.game.stones(BLACK) or self.game.stones(WHITE) or self.game.moves:
            raise GtpError("board not empty")
        try:
            self.game.setup(points, [], to_move=WHITE)
        except IllegalMove:  # a group of them without a liberty
            raise GtpError("bad vertex list") from None

    def cmd_fixed_handicap(self, args: list[str]) -> str:
        stones = self._handicap_count(args)
        try:
            points = handicap.fixed_handicap(self.game.size, stones)
        except ValueError:
            raise GtpError("invalid number of stones") from None
        self._place_handicap(points)
        return " ".join(self._vertex_name(p) for p in points)

    def cmd_set_free_handicap(self, args: list[str]) -> str:
        try:
            points = [self._vertex(word) for word in args]
        except GtpError as e:
            raise GtpError("syntax error" if str(e) == "syntax error" else "bad vertex list") from None
        if None in points or len(set(points)) != len(points):
            raise GtpError("bad vertex list")
        if not 2 <= len(points) < self.game.size ** 2:
            raise GtpError("invalid number of stones")
        self._place_handicap(points)
        return ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--random", action="store_true",
                     help="play uniformly random legal moves that fill no own eye (the default without --model)")
    cliflags.flag(who, "--model", default=None, help="play with this model and search (needs zeroloop.search)")
    cliflags.flag(parser, "--visits", type=int, default=100, help="search visits per move with --model")
    cliflags.flag(parser, "--lcb", action="store_true",
                  help="with --model: choose the move by the lower confidence bound of its value where that is "
                       "clearly better than the most visited move's (KataGo's useLcbForSelection, 5 stdevs, "
                       "at least 15%% of the top move's visits)")
    cliflags.flag(parser, "--conservative-pass", action=argparse.BooleanOptionalAction, default=False,
                  help="with --model: after the opponent's pass, do not count on its own pass ending the game "
                       "(scored as the stones stand): the search evaluates the position after it with the net, "
                       "history hidden, as KataGo's GTP engine does (conservativePass). Referees with a cleanup "
                       "phase (zeroloop match, KGS) and opponents that pass with dead stones standing play on")
    cliflags.flag(parser, "--board-size", type=int, default=19, help="initial board size (boardsize changes it)")
    cliflags.flag(parser, "--komi", type=float, default=7.0, help="initial komi (komi changes it)")
    cliflags.flag(parser, "--ko-rule", choices=sorted(KO_RULES), default="positional", help="ko rule")
    cliflags.flag(parser, "--multi-stone-suicide", action="store_true",
                  help="allow suicide of two or more stones (single-stone suicide is never legal)")
    cliflags.add_common(parser, device=True)


def run(args: argparse.Namespace) -> int:
    if not B.MIN_SIZE <= args.board_size <= B.MAX_SIZE:
        raise UserError(f"--board-size {args.board_size}: must be {B.MIN_SIZE}..{B.MAX_SIZE}")
    if args.visits < 1:
        raise UserError(f"--visits {args.visits}: must be at least 1")
    rules = Rules(args.ko_rule, args.multi_stone_suicide, args.komi)
    if args.model:
        player = model_player(args)
    else:
        if args.seed is not None:
            B.seed(args.seed % 2**32)
        player = RandomPlayer(args.seed)
    engine = GtpEngine(player, args.board_size, rules)
    log.debug("gtp: %s player, %dx%d, %s", player.name, args.board_size, args.board_size, rules)
    return engine.serve(sys.stdin.buffer, sys.stdout)
