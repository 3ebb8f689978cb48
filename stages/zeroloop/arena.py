"""Batched games between two players: many games at once, each net batched on its own.

Each player (``Contestant``: a name and an evaluator) has its own
``BatchSearch`` over the same game slots, as KataGo's gatekeeper gives each
bot its own search. Every move is played in both searches, so each player
keeps the subtree of its own last search (tree reuse) and never sees the
other's evaluations; the player not to move is held (no pondering). Each
step runs both searches: one batched evaluation of the games where it is A's
turn with A's net, one of those where it is B's turn with B's net. Then
every game whose mover has finished its search makes its move.

Moves are drawn from the visit counts with a temperature that decays from
``move_temperature_early`` to ``move_temperature`` (KataGo's gatekeeper:
0.5 -> 0.2), so that games differ. A player resigns after
``resign_consec_turns`` consecutive own searches valued below
``resign_threshold`` (win-loss, -1..1), once the game is area/5 moves
old; otherwise a game ends after two passes or at the move cap and is
scored by Tromp-Taylor area with the komi.

Colours alternate: player A is black in even-numbered games. ``play``
hands each finished game to a callback, which may end the match (the
gatekeeper's early stop); games still in progress are then dropped, as
they are when ``should_stop`` (a signal) ends it.

The gatekeeper and the ladder both play through here; the GTP referee in
``zeroloop.match`` is for engines that are not zeroloop nets.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sgfmill import sgf

from zeroloop.go import board as B
from zeroloop.go.rules import MAX_KOMI, Rules
from zeroloop.search import puct, tree
from zeroloop.search.batch import BatchSearch, SearchParams
from zeroloop.search.evaluators import Evaluator

log = logging.getLogger(__name__)

A, B_ = "A", "B"  # contestant labels (B_ : B is the board module)
LABELS = (A, B_)


@dataclass(frozen=True)
class Contestant:
    name: str
    evaluator: Evaluator


@dataclass(frozen=True)
class ArenaSettings:
    """How match games are played (the gatekeeper's and the ladder's configs map onto this)."""

    num_games_at_once: int = 32
    board_sizes: tuple[int, ...] = (9,)
    board_size_weights: tuple[float, ...] = (1.0,)
    komi_mean: float = 7.0
    komi_stdev: float = 0.0
    ko_rules: tuple[str, ...] = ("positional",)
    multi_stone_suicide_prob: float = 0.0
    max_moves_per_area: float = 4.0
    max_visits: int = 50
    resign_threshold: float = -0.9
    resign_consec_turns: int = 5  # 0: never resign
    move_temperature_early: float = 0.5
    move_temperature: float = 0.2
    temperature_halflife: float = 19.0
    search: SearchParams = field(default_factory=SearchParams)

    def max_moves(self, size: int) -> int:
        return max(1, int(round(self.max_moves_per_area * size * size)))


@dataclass(frozen=True)
class ArenaGame:
    """A finished game; players are named by label, A or B."""

    index: int  # game number in the match: A is black when it is even
    size: int
    rules: Rules
    a_black: bool
    winner: str | None  # A, B or None (draw)
    result: str  # SGF RE: B+3.5, W+R, 0
    reason: str  # score, resign or move cap
    moves: tuple[int, ...]  # policy indices (y*n+x, n*n pass), black first

    def label(self, colour: int) -> str:
        return A if (colour == B.BLACK) == self.a_black else B_

    def outcome_for(self, label: str) -> str:
        """'win', 'loss' or 'draw' from label's side."""
        if self.winner is None:
            return "draw"
        return "win" if self.winner == label else "loss"

    def sgf(self, names: dict[str, str], comment: str = "") -> str:
        """The game as one line of SGF (KataGo's .sgfs files hold one game per line)."""
        n = self.size
        game = sgf.Sgf_game(n)
        root = game.get_root()
        root.set("KM", self.rules.komi)
        root.set("RU", self.rules.sgf_name())
        root.set("RE", self.result)
        root.set("PB", names[self.label(B.BLACK)])
        root.set("PW", names[self.label(B.WHITE)])
        root.set("GN", str(self.index))
        if comment:
            root.set("C", comment)
        node = root
        for i, m in enumerate(self.moves):
            node = node.new_child()
            node.set_move("b" if i % 2 == 0 else "w", None if m == n * n else (n - 1 - m // n, m % n))
        return game.serialise(wrap=None).decode().strip()


@dataclass
class _Slot:
    index: int
    size: int
    rules: Rules
    max_moves: int
    a_black: bool
    moves: list[int] = field(default_factory=list)
    low_value_turns: dict[int, int] = field(default_factory=lambda: {B.BLACK: 0, B.WHITE: 0})


@dataclass
class ArenaOutcome:
    games: list[ArenaGame]
    stopped: bool  # ended by should_stop (a signal) with games left to play
    decided: bool  # ended early by the callback


class Arena:
    """Two contestants, ``settings.num_games_at_once`` game slots, one search each."""

    def __init__(self, a: Contestant, b: Contestant, settings: ArenaSettings, rng: np.random.Generator):
        self.contestants = (a, b)
        self.settings = settings
        self.rng = rng
        s = settings
        size = max(s.board_sizes)
        for c in (a, b):
            if c.evaluator.pos_len < size:
                raise ValueError(f"{c.name} is a net for boards up to {c.evaluator.pos_len}x"
                                 f"{c.evaluator.pos_len}; this match plays {size}x{size}")
        self.searches = tuple(BatchSearch(s.num_games_at_once, size, c.evaluator.pos_len, s.max_visits,
                                          s.max_moves(size), s.search, getattr(c.evaluator, "feature_version", 1))
                              for c in (a, b))
        self._size_p = np.asarray(s.board_size_weights, dtype=np.float64)
        self._size_p = self._size_p / self._size_p.sum()
        self.nn_evals = [0, 0]

    def _evaluate(self, side: int):
        ev = self.contestants[side].evaluator

        def evaluate(spatial: np.ndarray, glob: np.ndarray, _games: np.ndarray):
            return ev.evaluate(spatial, glob)

        return evaluate

    def _komi(self) -> float:
        s = self.settings
        komi = s.komi_mean + (self.rng.normal() * s.komi_stdev if s.komi_stdev > 0 else 0.0)
        return float(min(MAX_KOMI, max(-MAX_KOMI, round(komi * 2) / 2)))

    def _side_of(self, slot: _Slot, colour: int) -> int:
        return 0 if (colour == B.BLACK) == slot.a_black else 1

    def _start(self, g: int, index: int) -> _Slot:
        s = self.settings
        size = int(self.rng.choice(s.board_sizes, p=self._size_p))
        rules = Rules(str(self.rng.choice(s.ko_rules)), bool(self.rng.random() < s.multi_stone_suicide_prob),
                      self._komi())
        slot = _Slot(index, size, rules, s.max_moves(size), a_black=index % 2 == 0)
        for search in self.searches:
            search.new_game(g, size, rules.ko_code, rules.multi_stone_suicide, rules.komi, slot.max_moves)
        self._search_next(g, slot)
        return slot

    def _search_next(self, g: int, slot: _Slot) -> int:
        """Start the mover's search in slot g, hold the other's; returns the mover's side."""
        colour = self.searches[0].to_move(g)
        side = self._side_of(slot, colour)
        self.searches[side].start_search(g, self.settings.max_visits)
        self.searches[1 - side].hold(g)
        return side

    def play(self, num_games: int, on_game: Callable[[ArenaGame], bool] | None = None,
             should_stop: Callable[[], bool] | None = None) -> ArenaOutcome:
        """Play games 0..num_games-1; on_game returning True ends the match early."""
        slots: list[_Slot | None] = [None] * self.settings.num_games_at_once
        mover = np.full(len(slots), -1, dtype=np.int64)  # side to move per slot, -1 free
        games: list[ArenaGame] = []
        next_index = 0
        while True:
            if should_stop is not None and should_stop():
                self._drop(slots, mover)
                return ArenaOutcome(games, stopped=len(games) < num_games, decided=False)
            for g in np.flatnonzero(mover < 0):
                if next_index >= num_games:
                    break
                slots[g] = slot = self._start(int(g), next_index)
                mover[g] = self._side_of(slot, B.BLACK)
                next_index += 1
            if not np.any(mover >= 0):
                return ArenaOutcome(games, stopped=False, decided=False)
            for side, search in enumerate(self.searches):
                self.nn_evals[side] += search.step(self._evaluate(side))
            for side, search in enumerate(self.searches):
                done = np.flatnonzero((mover == side)
                                      & (search.node_i[:, 0, tree.N_VISITS] >= search.game_i[:, tree.G_TARGET]))
                for g in done:
                    g = int(g)
                    slot = slots[g]
                    assert slot is not None
                    finished = self._move(g, slot, side)
                    if finished is None:
                        mover[g] = self._side_of(slot, self.searches[0].to_move(g))
                        continue
                    games.append(finished)
                    slots[g] = None
                    mover[g] = -1
                    for s in self.searches:
                        s.release(g)
                    if on_game is not None and on_game(finished):
                        self._drop(slots, mover)
                        return ArenaOutcome(games, stopped=False, decided=True)

    def _drop(self, slots: list[_Slot | None], mover: np.ndarray) -> None:
        for g in range(len(slots)):
            if slots[g] is not None:
                for s in self.searches:
                    s.release(g)
                slots[g] = None
        mover[:] = -1

    def _move(self, g: int, slot: _Slot, side: int) -> ArenaGame | None:
        """The mover of slot g has searched: resign, or choose and play; the game if it ended."""
        s = self.settings
        search = self.searches[side]
        colour = search.to_move(g)
        r = search.root_result(g)
        area = slot.size * slot.size
        if s.resign_consec_turns > 0 and len(slot.moves) >= area / 5 and r.root_wl < s.resign_threshold:
            slot.low_value_turns[colour] += 1
            if slot.low_value_turns[colour] >= s.resign_consec_turns:
                winner_colour = B.WHITE if colour == B.BLACK else B.BLACK
                result = f"{'B' if winner_colour == B.BLACK else 'W'}+R"
                return self._finished(slot, self._label(slot, winner_colour), result, "resign")
        else:
            slot.low_value_turns[colour] = 0
        weights = r.play_weights(s.search) if np.any(r.visits > 0) else r.priors
        temp = puct.decayed_temperature(len(slot.moves), s.move_temperature_early, s.move_temperature,
                                        s.temperature_halflife, area)
        move = int(r.moves[puct.choose_with_temperature(weights, temp, self.rng)])
        for other in self.searches:
            other.play(g, move, reuse=True)
        slot.moves.append(move)
        if self.searches[0].game_over(g):
            return self._score(g, slot)
        self._search_next(g, slot)
        return None

    def _label(self, slot: _Slot, colour: int) -> str:
        return A if (colour == B.BLACK) == slot.a_black else B_

    def _score(self, g: int, slot: _Slot) -> ArenaGame:
        board = self.searches[0].board(g).copy()
        own = np.zeros(slot.size * slot.size, dtype=np.int64)
        score_black = float(B.area_ownership(board, own)) - slot.rules.komi
        reason = "score" if board[B.H_PASSES] >= 2 else "move cap"
        if score_black == 0:
            return self._finished(slot, None, "0", reason)
        colour = B.BLACK if score_black > 0 else B.WHITE
        result = f"{'B' if score_black > 0 else 'W'}+{abs(score_black):g}"
        return self._finished(slot, self._label(slot, colour), result, reason)

    def _finished(self, slot: _Slot, winner: str | None, result: str, reason: str) -> ArenaGame:
        return ArenaGame(slot.index, slot.size, slot.rules, slot.a_black, winner, result, reason, tuple(slot.moves))


def score_rate(games: list[ArenaGame], label: str) -> float:
    """label's points (win 1, draw 1/2) per game (nan without games)."""
    if not games:
        return math.nan
    return sum({"win": 1.0, "draw": 0.5, "loss": 0.0}[g.outcome_for(label)] for g in games) / len(games)
