"""A self-play game in progress, as plain data, and the training rows it makes.

``GameState`` holds everything a game needs beyond its search tree: rules,
komi, the moves so far (policy indices: y*n+x, n*n for pass; Black moves
first and colours alternate), and each recorded move's inputs and search
target. Nothing here refers to the tree or the board arrays: the board is
the replay of ``moves``, so a game can be saved and resumed later, by
another process, from this object alone (``zeroloop.selfplay.snapshot``).
A game resumed with a different model records the switch in ``switches``
(turn, model): its rows and SGF say so, as KataGo's do for a mid-game net
switch.

``build_rows`` turns a finished game into rows of ``zeroloop.rows`` (the
one format shuffle and train read), with the final result, score and
ownership from each row's mover's view, the opponent's reply as the
auxiliary policy target, and the short-term value targets from the
searches' root values (``zeroloop.selfplay.tdtargets``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from zeroloop import features, rows
from zeroloop.go import board as B
from zeroloop.go.rules import Rules
from zeroloop.selfplay import tdtargets


@dataclass
class RecordedMove:
    """One full-search move: the position's inputs and the search's target."""

    turn: int  # moves played before this one
    to_move: int  # B.BLACK or B.WHITE
    planes: np.ndarray  # (NUM_SPATIAL, packed) uint8 at the data board length
    glob: np.ndarray  # (NUM_GLOBAL,) float32
    policy: np.ndarray  # (P*P+1,) float32, the pruned visit distribution, sums to 1
    model: str = ""  # the model whose search made it ("": the game's model)
    weight: float = 1.0  # the row's weight before surprise weighting (below 1 after reduced visits)
    policy_surprise: float = 0.0  # KL of the policy target from the root's priors
    nn_value: float = math.nan  # the net's own win-loss value at the root, the mover's view
    next_policy: np.ndarray | None = None  # (P*P+1,) the next turn's search distribution, once searched


@dataclass
class GameState:
    game_id: int
    size: int
    rules: Rules
    max_moves: int
    model: str  # the model that started the game
    moves: list[int] = field(default_factory=list)
    recorded: list[RecordedMove] = field(default_factory=list)
    switches: list[tuple[int, str]] = field(default_factory=list)  # (turn, model) where another model took over
    # Whether the search in progress is a full one (None: no search drawn yet). Saved with the game: a
    # resumed game redoes the same kind of search, or stopping would favour cheap ones (full searches
    # take longer, so a stop finds most games in one) and record fewer rows.
    full_search: bool | None = None
    # The root's mean win-loss value after each move's search, Black's view (nan: not known, a game saved
    # before these were kept): reduced visits look at the last few, value surprise at all of them.
    root_values: list[float] = field(default_factory=list)
    # The root's mean score after each move's search, Black's view (nan: not known): the TD targets.
    root_scores: list[float] = field(default_factory=list)
    policy_init_moves: int = 0  # the first moves, played from the net's policy and not recorded
    # Handicap: the first 2*handicap_stones of those are Black's extra stones, each followed by White's pass
    handicap_stones: int = 0

    @property
    def komi(self) -> float:
        return self.rules.komi

    @property
    def final_model(self) -> str:
        """The model playing the game now (the one credited with it)."""
        return self.switches[-1][1] if self.switches else self.model

    def switch_model(self, model: str) -> None:
        """From the next move on, model plays this game."""
        if model != self.final_model:
            self.switches.append((self.turn, model))

    @property
    def turn(self) -> int:
        return len(self.moves)


def policy_index_to_data(move: int, size: int, pos_len: int) -> int:
    """A board policy index (y*n+x, n*n pass) in the data layout (y*P+x, P*P pass)."""
    if move == size * size:
        return pos_len * pos_len
    y, x = divmod(move, size)
    return y * pos_len + x


def data_policy(moves: np.ndarray, weights: np.ndarray, size: int, pos_len: int) -> np.ndarray:
    """Child weights (moves: board policy indices) as a distribution in the data layout."""
    policy = np.zeros(pos_len * pos_len + 1, dtype=np.float32)
    total = float(np.sum(weights))
    for m, w in zip(moves, weights):
        if w > 0:
            policy[policy_index_to_data(int(m), size, pos_len)] = w / total
    return policy


def record_position(board: np.ndarray, hist: np.ndarray, komi: float, pos_len: int, turn: int,
                    moves: np.ndarray, weights: np.ndarray, model: str = "",
                    feature_version: int = features.FEATURE_VERSION,
                    prev: tuple[np.ndarray, np.ndarray] | None = None) -> RecordedMove:
    """A row's inputs (encoded at pos_len; prev: the boards before the last two moves) and its policy target."""
    size = int(board[B.H_SIZE])
    spatial, glob = features.encode(board, hist, komi, pos_len, feature_version, prev)
    planes = rows.pack_planes(spatial[None])[0]
    return RecordedMove(turn, int(board[B.H_TO_MOVE]), planes, glob, data_policy(moves, weights, size, pos_len),
                        model)


def build_rows(state: GameState, ownership_black: np.ndarray, score_black: float, pos_len: int,
               row_weights: np.ndarray | None = None, opponent_policy_from_search: bool = False) -> dict[str, np.ndarray]:
    """Training rows of a finished game (one per recorded move).

    ownership_black: (size, size) +1 Black's area, -1 White's, 0 neither;
    score_black: Black's area minus White's minus komi; row_weights: one per
    recorded move (None: each its own weight); opponent_policy_from_search:
    the opponent-policy target is the next turn's search distribution where
    it was kept, else (and by default) a one-hot of the move played.
    """
    n = len(state.recorded)
    version = features.FEATURE_VERSION
    if n:
        num_spatial = state.recorded[0].planes.shape[0]
        version = next(v for v, shape in features.SHAPES.items() if shape[0] == num_spatial)
    out = rows.empty(n, pos_len, version)
    size = state.size
    length = len(state.moves)
    final = state.final_model
    td, td_known = tdtargets.td_targets(tdtargets.per_turn(state.root_values, state.root_scores),
                                        tdtargets.outcome(score_black), size * size)
    for i, rec in enumerate(state.recorded):
        sign = 1 if rec.to_move == B.BLACK else -1
        out["binaryInputNCHWPacked"][i] = rec.planes
        out["globalInputNC"][i] = rec.glob
        out["policyTargetsNCMove"][i, 0] = rec.policy
        gt = out["globalTargetsNC"][i]
        if rec.turn + 1 < length:
            if opponent_policy_from_search and rec.next_policy is not None:
                out["policyTargetsNCMove"][i, 1] = rec.next_policy
            else:
                reply = state.moves[rec.turn + 1]
                out["policyTargetsNCMove"][i, 1, policy_index_to_data(reply, size, pos_len)] = 1.0
            gt[rows.GT_OPP_POLICY_WEIGHT] = 1.0
        score = sign * score_black
        gt[rows.GT_WIN] = 1.0 if score > 0 else 0.0
        gt[rows.GT_LOSS] = 1.0 if score < 0 else 0.0
        gt[rows.GT_DRAW] = 1.0 if score == 0 else 0.0
        gt[rows.GT_SCORE] = score
        gt[rows.GT_POLICY_WEIGHT] = 1.0
        gt[rows.GT_ROW_WEIGHT] = rec.weight if row_weights is None else row_weights[i]
        gt[rows.GT_OWNERSHIP_WEIGHT] = 1.0
        if rec.turn < len(td) and td_known[rec.turn]:
            own_td = tdtargets.mover_view(td[rec.turn], rec.to_move == B.BLACK)
            gt[rows.GT_TD_WEIGHT] = 1.0
            gt[rows.GT_TD_VALUE:rows.GT_TD_SCORE] = own_td[:, :3].reshape(-1)
            gt[rows.GT_TD_SCORE:rows.GT_TD_SCORE + rows.TD_HORIZONS] = own_td[:, 3]
        out["valueTargetsNCHW"][i, 0, :size, :size] = (sign * ownership_black).astype(np.int8)
        meta = out["metaNC"][i]
        meta[rows.META_BOARD_SIZE] = size
        meta[rows.META_TURN] = rec.turn
        meta[rows.META_KOMI_X2] = int(round(state.komi * 2))
        meta[rows.META_GAME_LENGTH] = length
        meta[rows.META_TO_MOVE] = rec.to_move
        meta[rows.META_VERSION] = rows.ROW_FORMAT_VERSION
        model = rec.model or state.model
        if state.switches:
            meta[rows.META_MODEL_SWITCH] = rows.SWITCH_IN_GAME | (rows.SWITCH_EARLIER_MODEL_ROW if model != final else 0)
        out["gameIdN"][i] = state.game_id
        out["modelN"][i] = model.encode()[: rows.MODEL_NAME_LEN]
    return out


def final_position(state: GameState, board: np.ndarray) -> tuple[np.ndarray, float]:
    """(ownership from Black's view as (n, n) int8, Black's score with komi) of a board."""
    n = state.size
    own = np.zeros(n * n, dtype=np.int64)
    diff = B.area_ownership(board.copy(), own)
    return own.reshape(n, n).astype(np.int8), float(diff) - state.komi


def settled_position(state: GameState, ownership_black: np.ndarray) -> tuple[np.ndarray, float]:
    """(ownership as (n, n) int8, Black's score with komi) of a settled board's pass-alive area."""
    n = state.size
    return ownership_black.reshape(n, n).astype(np.int8), float(np.sum(ownership_black)) - state.komi


def result_string(score_black: float) -> str:
    """SGF RE value: B+3.5, W+0.5, 0 for a draw."""
    if score_black == 0:
        return "0"
    return f"{'B' if score_black > 0 else 'W'}+{abs(score_black):g}"
