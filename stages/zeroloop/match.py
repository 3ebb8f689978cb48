"""`zeroloop match`: two GTP engines play N games, refereed and rated.

Engine A is ``--black``'s command and engine B ``--white``'s for the first
game; with ``--alternate`` (the default) they swap colours every game. The
referee is zeroloop's own ``Game``: every move an engine sends is checked
against the rules (``--ko-rule``, default positional superko), the other
engine is told it, and a game that ends with two passes or at the move cap
is scored by Tromp-Taylor area with the komi. Tromp-Taylor counts every
stone on the board as alive, while engines like GNU Go pass with dead
stones left standing; so, as on KGS, when both have passed the game goes on
in a cleanup phase (engines that know ``kgs-genmove_cleanup`` use it, others
``genmove``) until both pass again (``--no-cleanup`` scores at once). Every engine that knows
``final_score`` is asked for its own count of each scored game; the summary counts the games where it
differs from the referee's (GNU Go removes the stones it judges dead, and its cleanup moves do not always
capture them all). An engine that resigns, sends
an illegal or unreadable move, refuses a legal move of its opponent,
crashes or times out loses that game (the SGF's RE says ``+R``, ``+F`` or
``+T``); a crashed engine is restarted for the next game and the match goes
on. ``--parallel N`` plays N games at once, each on its own pair of engine
processes (games keep their numbers and colours; results come back in game
order). ``--opening-moves K`` starts every game from K random moves
(``random_openings``: away from the first line, legal, from
``--opening-seed``) played for both engines before either is asked for a
move; with colours alternating, games 2i and 2i+1 share opening i, so an
opening that favours one colour favours each engine once (a balanced pair).
Nets and GNU Go are nearly deterministic: without openings, games between
the same two engines repeat.

Rating (pure functions below): engine A's score rate p = (wins + draws/2)/N
gives the Elo difference 400*log10(p/(1-p)). Its 95% interval maps the
Wilson score interval of p through the same formula. Wilson stays inside
(0, 1) and is sensible for small N and lopsided results (a 10-0 sweep gets a
finite lower bound and an infinite upper one); counting a draw as half a
win in a binomial overstates the variance a little, so with draws the
interval is slightly conservative.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import posixpath
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field


from zeroloop import cliflags
from zeroloop.errors import UserError
from zeroloop.gating import Tally
from zeroloop.go import board as B
from zeroloop.go.coords import from_gtp, to_gtp
from zeroloop.go.game import BLACK, WHITE, Game
from zeroloop.go.rules import KO_RULES, Rules
from zeroloop.go.sgf import game_to_sgf
from zeroloop.gtp_client import EngineError, GtpClient, GtpFailure
from zeroloop.storage import Storage, open_fs, stamp, unique_name

log = logging.getLogger(__name__)

COLOUR_WORD = {BLACK: "b", WHITE: "w"}
COLOUR_NAME = {BLACK: "black", WHITE: "white"}


# --- results and rating (pure) ------------------------------------------------------


@dataclass(frozen=True)
class GameResult:
    """One finished game, engines named by their seat label ("A" or "B")."""

    black: str
    white: str
    winner: str | None  # a label, or None for a draw
    result: str  # SGF RE: B+3.5, W+R, B+F, W+T, 0
    reason: str  # score, resign, illegal move, crash, timeout, ...
    moves: int
    engine_counts: dict[str, str] = field(default_factory=dict)  # label -> the engine's own final_score


@dataclass(frozen=True)
class Record(Tally):
    """Wins, losses and draws of one engine, overall and by colour ([wins, losses, draws] each)."""

    by_colour: dict[str, list[int]] = field(default_factory=lambda: {"black": [0, 0, 0], "white": [0, 0, 0]})


def tally(results: list[GameResult], label: str) -> Record:
    """The record of the engine with this label over the results."""
    by_colour = {"black": [0, 0, 0], "white": [0, 0, 0]}
    for r in results:
        if label not in (r.black, r.white):
            continue
        colour = "black" if r.black == label else "white"
        by_colour[colour][2 if r.winner is None else 0 if r.winner == label else 1] += 1
    wins, losses, draws = (by_colour["black"][k] + by_colour["white"][k] for k in range(3))
    return Record(wins, losses, draws, by_colour)


def elo_from_score(p: float) -> float:
    """Elo difference for an expected score p (+-inf at 1 and 0)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"score rate {p} outside 0..1")
    if p == 1.0:
        return math.inf
    if p == 0.0:
        return -math.inf
    return 400.0 * math.log10(p / (1.0 - p))


def wilson_interval(points: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a rate of points/n."""
    if n <= 0:
        return 0.0, 1.0
    p = points / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if points <= 0 else max(0.0, centre - half)
    hi = 1.0 if points >= n else min(1.0, centre + half)
    return lo, hi


def elo_estimate(wins: int, losses: int, draws: int, z: float = 1.959964) -> tuple[float, float, float]:
    """(Elo difference, low, high) of the interval at z (1.96: 95%)."""
    n = wins + losses + draws
    if n == 0:
        return 0.0, -math.inf, math.inf
    points = wins + 0.5 * draws
    lo, hi = wilson_interval(points, n, z)
    return elo_from_score(points / n), elo_from_score(lo), elo_from_score(hi)


Opening = tuple[tuple[int, int], ...]


def random_openings(count: int, size: int, moves: int, seed: int) -> list[Opening]:
    """count openings of moves random legal points each (Black first), off the first line where the board
    leaves room; the same arguments give the same openings."""
    rng = random.Random(seed)
    inner = [(x, y) for y in range(size) for x in range(size)
             if size < 5 or (0 < x < size - 1 and 0 < y < size - 1)]
    out = []
    for _ in range(count):
        game = Game(size, Rules("positional", False, 0.0))
        played = []
        for _ in range(moves):
            legal = [p for p in inner if game.is_legal(game.to_move, p)]
            if not legal:
                break
            move = rng.choice(legal)
            game.play(game.to_move, move)
            played.append(move)
        out.append(tuple(played))
    return out


def opening_for_game(openings: list[Opening], i: int, alternate: bool) -> Opening:
    """Game i's opening: with colours alternating, each opening serves a pair of games (one per colour)."""
    if not openings:
        return ()
    return openings[(i // 2 if alternate else i) % len(openings)]


def parse_result(text: str) -> float | None:
    """Black's margin in an SGF/GTP result ('B+3.5' 3.5, 'W+2' -2, '0' 0), None for anything else
    (resignations, forfeits, unreadable text)."""
    t = text.strip().upper()
    if t in ("0", "DRAW", "JIGO"):
        return 0.0
    if len(t) < 3 or t[0] not in "BW" or t[1] != "+":
        return None
    try:
        margin = float(t[2:])
    except ValueError:
        return None
    return margin if t[0] == "B" else -margin


def count_disagreements(results: list[GameResult], label: str) -> dict[str, int]:
    """Games where the engine's own count of the final position differs from the referee's: in score, and
    in the winner (the referee counts Tromp-Taylor area as the stones stand; an engine such as GNU Go removes
    the stones it judges dead)."""
    asked = score = winner = 0
    for r in results:
        own = parse_result(r.engine_counts.get(label, ""))
        ref = parse_result(r.result)
        if own is None or ref is None:
            continue
        asked += 1
        score += own != ref
        winner += (own > 0) - (own < 0) != (ref > 0) - (ref < 0)
    return {"games": asked, "score_differs": score, "winner_differs": winner}


def format_elo(x: float) -> str:
    return "+inf" if x == math.inf else "-inf" if x == -math.inf else f"{x:+.0f}"


# --- playing -----------------------------------------------------------------------


@dataclass
class Seat:
    """An engine in the match: its label, client and display name."""

    label: str
    client: GtpClient
    name: str = ""
    cleanup_command: str = "genmove"
    counts: bool = False  # knows final_score: asked for its own count of every scored game

    def own_count(self) -> str | None:
        """The engine's final_score of the position it holds ('B+3', 'W+2.5', '0'), or None."""
        if not self.counts:
            return None
        try:
            reply = self.client.send("final_score").strip()
        except (EngineError, GtpFailure):
            return None
        return reply if parse_result(reply) is not None else None

    def identify(self) -> None:
        parts = []
        for command in ("name", "version"):
            try:
                parts.append(self.client.send(command))
            except (EngineError, GtpFailure):
                break
        self.name = " ".join(p for p in parts if p) or self.client.label
        try:
            if self.client.send("known_command kgs-genmove_cleanup") == "true":
                self.cleanup_command = "kgs-genmove_cleanup"
            self.counts = self.client.send("known_command final_score") == "true"
        except (EngineError, GtpFailure):
            pass


@dataclass
class MatchConfig:
    black: str
    white: str
    games: int
    board_size: int
    komi: float = 7.0
    ko_rule: str = "positional"
    multi_stone_suicide: bool = False
    alternate: bool = True
    max_moves: int | None = None  # default 4 * size**2
    move_timeout: float = 60.0
    sgf_dir: str | None = None
    cleanup: bool = True
    parallel: int = 1  # games at once, each with its own pair of engine processes
    opening_moves: int = 0  # random moves that start every game (a pair of games shares one)
    opening_seed: int = 0

    def openings(self) -> list[Opening]:
        if self.opening_moves == 0:
            return []
        return random_openings((self.games + 1) // 2 if self.alternate else self.games, self.board_size,
                               self.opening_moves, self.opening_seed)

    def rules(self) -> Rules:
        return Rules(self.ko_rule, self.multi_stone_suicide, self.komi)

    def check(self) -> None:
        if self.games < 1:
            raise UserError(f"--games {self.games}: must be at least 1")
        if not B.MIN_SIZE <= self.board_size <= B.MAX_SIZE:
            raise UserError(f"--board-size {self.board_size}: must be {B.MIN_SIZE}..{B.MAX_SIZE}")
        if self.max_moves is not None and self.max_moves < 1:
            raise UserError(f"--max-moves {self.max_moves}: must be at least 1")
        if not 1 <= self.parallel <= 64:
            raise UserError(f"--parallel {self.parallel}: must be 1..64")
        if not self.move_timeout > 0:
            raise UserError(f"--move-timeout {self.move_timeout}: must be positive")
        if not 0 <= self.opening_moves <= self.board_size ** 2 // 4:
            raise UserError(f"--opening-moves {self.opening_moves}: must be 0..{self.board_size ** 2 // 4} "
                            f"(a quarter of the board)")
        self.rules()  # komi and ko rule checks


def _lose(game: Game, loser: int, code: str) -> str:
    return f"{'B' if loser == WHITE else 'W'}+{code}"


def play_game(black: Seat, white: Seat, config: MatchConfig,
              opening: Opening = ()) -> tuple[GameResult, Game, str]:
    """One refereed game (after the opening's moves); returns the result, the game and the SGF result string."""
    size = config.board_size
    max_moves = config.max_moves or 4 * size * size
    game = Game(size, config.rules(), max_moves)
    seats = {BLACK: black, WHITE: white}

    def forfeit(loser: int, reason: str, code: str = "F") -> tuple[GameResult, Game, str]:
        winner = seats[3 - loser].label
        re = _lose(game, loser, code)
        log.warning("%s (%s, %s) loses: %s", seats[loser].label, seats[loser].name, COLOUR_NAME[loser], reason)
        return GameResult(black.label, white.label, winner, re, reason, game.move_number), game, re

    for colour, seat in seats.items():
        try:
            for command in (f"boardsize {size}", "clear_board", f"komi {config.komi:g}"):
                seat.client.send(command)
        except GtpFailure as e:
            return forfeit(colour, f"refused {command!r}: {e}")
        except EngineError as e:
            return forfeit(colour, f"crashed or timed out at set-up: {e}", "T" if "timed out" in str(e) else "F")
    for move in opening:
        colour = game.to_move
        game.play(colour, move)
        for other in (BLACK, WHITE):
            try:
                seats[other].client.send(f"play {COLOUR_WORD[colour]} {to_gtp(move, size)}")
            except GtpFailure as e:
                return forfeit(other, f"refused the opening move {COLOUR_WORD[colour]} {to_gtp(move, size)}: {e}")
            except EngineError as e:
                return forfeit(other, f"crash: {e}")
    cleanup = False  # after the first two passes: capture what is dead (KGS's cleanup phase)
    passes = 0
    while game.move_number < max_moves:
        if passes >= 2:
            if cleanup or not config.cleanup:
                break
            cleanup, passes = True, 0
            log.debug("both passed after %d moves: cleanup phase", game.move_number)
        colour = game.to_move
        mover, other = seats[colour], seats[3 - colour]
        command = mover.cleanup_command if cleanup else "genmove"
        try:
            reply = mover.client.send(f"{command} {COLOUR_WORD[colour]}")
        except GtpFailure as e:
            return forfeit(colour, f"genmove failed: {e}")
        except EngineError as e:
            timed_out = "timed out" in str(e)
            return forfeit(colour, f"{'timeout' if timed_out else 'crash'}: {e}", "T" if timed_out else "F")
        word = reply.split()[0].lower() if reply.split() else ""
        if word == "resign":
            game.resign(colour)
            re = game.result()
            return GameResult(black.label, white.label, other.label, re, "resign", game.move_number), game, re
        try:
            move = from_gtp(word, size)
        except ValueError:
            return forfeit(colour, f"unreadable move {reply!r}")
        reason = game.illegal_reason(colour, move)
        if reason is not None:
            return forfeit(colour, f"illegal move {to_gtp(move, size)} ({reason})")
        game.play(colour, move)
        passes = passes + 1 if move is None else 0
        try:
            other.client.send(f"play {COLOUR_WORD[colour]} {to_gtp(move, size)}")
        except GtpFailure as e:
            return forfeit(3 - colour, f"refused the legal move {COLOUR_WORD[colour]} {to_gtp(move, size)}: {e}")
        except EngineError as e:
            return forfeit(3 - colour, f"crash: {e}")
    reason = "score" if passes >= 2 else "move cap"
    winner = game.winner()
    label = None if winner is None else seats[winner].label
    re = game.result()
    counts = {seat.label: c for seat in (black, white) if (c := seat.own_count()) is not None}
    return GameResult(black.label, white.label, label, re, reason, game.move_number, counts), game, re


@dataclass
class MatchResult:
    config: MatchConfig
    names: dict[str, str]
    commands: dict[str, str]
    games: list[GameResult]

    def summary(self) -> dict:
        a, b = tally(self.games, "A"), tally(self.games, "B")
        elo, lo, hi = elo_estimate(a.wins, a.losses, a.draws)
        finite = lambda x: x if math.isfinite(x) else None  # noqa: E731 (JSON has no infinity)
        return {
            "games": len(self.games),
            "board_size": self.config.board_size,
            "komi": self.config.komi,
            "engines": {lab: {"command": self.commands[lab], "name": self.names[lab], **{
                k: v for k, v in asdict(rec).items()}, "points": rec.points,
                "own_count": count_disagreements(self.games, lab)} for lab, rec in (("A", a), ("B", b))},
            "score_a": a.points / max(1, a.games),
            "elo_a_minus_b": finite(elo),
            "elo_95_low": finite(lo),
            "elo_95_high": finite(hi),
            "elo_method": "score rate, Wilson 95% interval",
            "results": [asdict(g) for g in self.games],
        }


def run_match(config: MatchConfig, on_game: Callable[[int, GameResult], None] | None = None) -> MatchResult:
    """Play the whole match; engines are started once per pair and restarted after a crash."""
    config.check()
    storage, sgf_root = None, ""
    if config.sgf_dir:
        fs, sgf_root = open_fs(config.sgf_dir, "--sgf-dir")
        fs.makedirs(sgf_root, exist_ok=True)
        storage = Storage(fs)
    pairs = [(Seat("A", GtpClient(config.black, config.move_timeout, "A")),
              Seat("B", GtpClient(config.white, config.move_timeout, "B")))
             for _ in range(min(config.parallel, config.games))]
    results: list[GameResult | None] = [None] * config.games
    next_game = iter(range(config.games))
    lock, failed = threading.Lock(), threading.Event()
    run_id = unique_name()[:8]
    openings = config.openings()

    def play_games(seat_a: Seat, seat_b: Seat) -> None:
        try:
            while not failed.is_set():
                with lock:
                    i = next(next_game, None)
                if i is None:
                    return
                play_one(i, seat_a, seat_b)
        except BaseException:
            failed.set()  # the other pairs stop after their current game
            raise

    def play_one(i: int, seat_a: Seat, seat_b: Seat) -> None:
        for seat in (seat_a, seat_b):
            if not seat.client.alive:
                log.info("restarting engine %s (%s)", seat.label, seat.client.command)
                seat.client.restart()
        swap = config.alternate and i % 2 == 1
        black, white = (seat_b, seat_a) if swap else (seat_a, seat_b)
        started = time.monotonic()
        result, game, re = play_game(black, white, config, opening_for_game(openings, i, config.alternate))
        winner = "draw" if result.winner is None else f"{result.winner} wins"
        log.info("game %d/%d: black %s (%s), white %s (%s): %s, %s (%s, %d moves, %.1f s)", i + 1, config.games,
                 black.label, black.name, white.label, white.name, re, winner, result.reason, result.moves,
                 time.monotonic() - started)
        if storage is not None:
            name = f"{stamp()}-{run_id}-{i + 1:04d}.sgf"
            data = game_to_sgf(game, result=re, black_name=black.name, white_name=white.name,
                               comment=f"zeroloop match game {i + 1}: {result.reason}")
            storage.write_bytes(posixpath.join(sgf_root, name), data)
        with lock:
            results[i] = result
            if on_game is not None:
                on_game(i, result)

    try:
        for pair in pairs:
            for seat in pair:
                seat.client.start()
                seat.identify()
        if len(pairs) == 1:
            play_games(*pairs[0])
        else:
            with ThreadPoolExecutor(len(pairs), thread_name_prefix="match") as pool:
                try:
                    for done in [pool.submit(play_games, *pair) for pair in pairs]:
                        done.result()  # re-raises a worker's error
                except BaseException:  # Ctrl-C here: the pairs stop after their current game
                    failed.set()
                    raise
    finally:
        for pair in pairs:
            for seat in pair:
                seat.client.close()
    seat_a, seat_b = pairs[0]
    return MatchResult(config, {"A": seat_a.name, "B": seat_b.name}, {"A": config.black, "B": config.white},
                       [r for r in results if r is not None])


def format_summary(summary: dict) -> str:
    lines = [f"{summary['games']} games on {summary['board_size']}x{summary['board_size']}, komi {summary['komi']:g}"]
    for label, e in summary["engines"].items():
        bc, wc = e["by_colour"]["black"], e["by_colour"]["white"]
        lines.append(f"{label} {e['name']}: {e['wins']} wins, {e['losses']} losses, {e['draws']} draws "
                     f"(as black {bc[0]}-{bc[1]}-{bc[2]}, as white {wc[0]}-{wc[1]}-{wc[2]})   [{e['command']}]")
    inf = lambda x, s: format_elo(x if x is not None else s * math.inf)  # noqa: E731
    for label, e in summary["engines"].items():
        c = e.get("own_count", {})
        if c.get("score_differs"):
            lines.append(f"{label}'s own count (final_score) differs from the referee's in {c['score_differs']} of "
                         f"{c['games']} scored games, the winner in {c['winner_differs']}")
    lines.append(f"Elo A - B: {inf(summary['elo_a_minus_b'], 1 if summary['score_a'] >= 0.5 else -1)} "
                 f"(95% interval {inf(summary['elo_95_low'], -1)} .. {inf(summary['elo_95_high'], 1)}), "
                 f"A's score {summary['score_a']:.3f}")
    return "\n".join(lines)


# --- command line ---------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cliflags.flag(parser, "--black", required=True, help="engine A's command (black in the first game)")
    cliflags.flag(parser, "--white", required=True, help="engine B's command (white in the first game)")
    cliflags.flag(parser, "--games", type=int, default=10, help="games to play")
    cliflags.flag(parser, "--board-size", type=int, default=9, help="board size")
    cliflags.flag(parser, "--komi", type=float, default=7.0, help="komi")
    cliflags.flag(parser, "--ko-rule", choices=sorted(KO_RULES), default="positional", help="the referee's ko rule")
    cliflags.flag(parser, "--multi-stone-suicide", action="store_true", help="the referee allows multi-stone suicide")
    cliflags.flag(parser, "--alternate", action=argparse.BooleanOptionalAction, default=True,
                  help="swap colours every game")
    cliflags.flag(parser, "--max-moves", type=int, default=None, help="move cap per game (default 4 * size^2)")
    cliflags.flag(parser, "--move-timeout", type=float, default=60.0, help="seconds an engine may take per command")
    cliflags.flag(parser, "--cleanup", action=argparse.BooleanOptionalAction, default=True,
                  help="after both pass, play on until both pass again, engines that know "
                       "kgs-genmove_cleanup using it, so dead stones are captured before scoring")
    cliflags.flag(parser, "--parallel", type=int, default=1,
                  help="games at once, each on its own pair of engine processes")
    cliflags.flag(parser, "--opening-moves", type=int, default=0,
                  help="start every game from this many random moves (games 2i and 2i+1 share one when colours "
                       "alternate)")
    cliflags.flag(parser, "--opening-seed", type=int, default=0, help="seed of the random openings")
    cliflags.flag(parser, "--sgf-dir", default=None, help="write each game's SGF here (a directory)")
    cliflags.flag(parser, "--json", action="store_true", help="print the summary as one JSON object")
    cliflags.add_common(parser)


def run(args: argparse.Namespace) -> int:
    config = MatchConfig(args.black, args.white, args.games, args.board_size, args.komi, args.ko_rule,
                         args.multi_stone_suicide, args.alternate, args.max_moves, args.move_timeout, args.sgf_dir,
                         args.cleanup, args.parallel, args.opening_moves, args.opening_seed)
    result = run_match(config)
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_summary(summary))
    sys.stdout.flush()
    return 0
