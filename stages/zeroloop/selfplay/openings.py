"""Opening variety: the net's choices that start a self-play game somewhere new (KataGo's).

- ``fork_move``: of a few random legal moves, the one after which the net
  gives the opponent the lowest score: the move an early fork of a finished
  game plays (KataGo's earlyForkGameProb).
- ``fair_komi``: the komi at which the net scores the empty board even
  (KataGo's komiAuto), found by a few fixed-point steps from a first guess.

Both evaluate a handful of positions with a model's evaluator in one batch;
the policy-sampled opening moves (initGamesWithPolicy) are made in the
engine's own batched search instead (a one-visit search whose root priors
are the net's policy).
"""

from __future__ import annotations

import numpy as np

from zeroloop import features
from zeroloop.go import board as B
from zeroloop.go.game import Game
from zeroloop.go.rules import MAX_KOMI, Rules


def _scores(positions: list[tuple], komi: float, evaluator, pos_len: int) -> np.ndarray:
    """The net's score of each (board, superko table, boards before its last two moves), the mover's view."""
    version = getattr(evaluator, "feature_version", features.FEATURE_VERSION)
    num_spatial, num_global = features.shape(version)
    spatial = np.zeros((len(positions), num_spatial, pos_len, pos_len), dtype=np.float32)
    glob = np.zeros((len(positions), num_global), dtype=np.float32)
    for i, (board, hist, prev) in enumerate(positions):
        spatial[i], glob[i] = features.encode(board, hist, komi, pos_len, version, prev)
    return np.asarray(evaluator.evaluate(spatial, glob).score, dtype=np.float64)


def fork_move(game: Game, choices: list[int], evaluator, pos_len: int) -> int:
    """The policy index among choices (legal points of game's player to move) best for that player."""
    n = game.size
    positions = []
    prev = (game.board, game.recent_boards()[0])
    for i in choices:
        board, hist = game.board.copy(), game.hist.copy()
        colour = int(board[B.H_TO_MOVE])
        B.play(board, hist, int(B.point_of(board, i % n, i // n)), colour)
        positions.append((board, hist, prev))
    return choices[int(np.argmin(_scores(positions, game.rules.komi, evaluator, pos_len)))]


def fair_komi(evaluator, pos_len: int, size: int, rules: Rules, start: float, steps: int = 3) -> float:
    """The komi (a multiple of 0.5) at which the net scores the empty board of this size even."""
    komi = start
    for _ in range(steps):
        game = Game(size, rules.with_komi(komi))
        lead = float(_scores([(game.board, game.hist, None)], komi, evaluator, pos_len)[0])  # Black's, komi counted
        if not np.isfinite(lead):
            break
        nxt = float(min(MAX_KOMI, max(-MAX_KOMI, round((komi + lead) * 2) / 2)))
        if nxt == komi:
            break
        komi = nxt
    return komi
