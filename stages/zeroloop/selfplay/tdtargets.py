"""Short-term (TD) value targets: what the next few searches said, not only how the game ended.

KataGo (``cpp/dataio/trainingwrite.cpp``, fillValueTDTargets) trains extra
value heads on exponentially weighted averages of the searches that
followed a position. For a row at turn t and a factor f, over the turns
t, t+1, ..., T-1 of the game and then its outcome:

    target(t) = f x(t) + (1 - f) target(t + 1),  target(T) = the outcome,

where x(i) is the search's root value at turn i (every search, cheap ones
too): weight f on this turn's search, f (1 - f) on the next, ..., and what
is left on the final result. Three horizons, f = 1 / (1 + area * c) for
c in ``HORIZON_COEFFS`` (KataGo's long, mid and short; on 9x9 about 15, 5
and 2 turns). Each target is a win/loss/draw split and a score.

zeroloop's search keeps the root's mean win-loss value (win minus loss)
and mean score, not a draw probability: a turn's value x counts as win
(1 + x) / 2, loss (1 - x) / 2, draw 0. The outcome is the game's result
(one-hot) and its final score. A turn whose search values are unknown
(nan: a game saved before they were kept, the moves before an early
fork) passes its weight on to the next; a row with such a turn from its
own on gets ``GT_TD_WEIGHT`` 0 (its TD losses are masked).

Pure functions of a game's numbers, all from Black's view until
``mover_view`` flips them for a row.
"""

from __future__ import annotations

import math

import numpy as np

# KataGo's nowFactor = 1 / (1 + boardArea * c) for its three TD horizons, long to short.
HORIZON_COEFFS = (0.176, 0.056, 0.016)
# win, loss, draw, score
FIELDS = 4


def now_factors(area: int) -> tuple[float, ...]:
    return tuple(1.0 / (1.0 + area * c) for c in HORIZON_COEFFS)


def per_turn(root_values: list[float], root_scores: list[float]) -> np.ndarray:
    """(T, 4) win, loss, draw, score of each turn's search, Black's view (nan rows: unknown)."""
    n = len(root_values)
    scores = (list(root_scores) + [math.nan] * n)[:n]
    wl = np.asarray(root_values, dtype=np.float64).reshape(n)
    out = np.empty((n, FIELDS))
    out[:, 0] = (1.0 + wl) / 2
    out[:, 1] = (1.0 - wl) / 2
    out[:, 2] = 0.0
    out[:, 3] = np.asarray(scores, dtype=np.float64)
    out[np.isnan(wl) | np.isnan(out[:, 3])] = np.nan
    return out


def outcome(score_black: float) -> np.ndarray:
    """The game's result as a turn: win, loss, draw one-hot and the final score, Black's view."""
    return np.array([float(score_black > 0), float(score_black < 0), float(score_black == 0), score_black])


def td_targets(turns: np.ndarray, final: np.ndarray, area: int) -> tuple[np.ndarray, np.ndarray]:
    """(targets (T, 3, 4) for every turn, Black's view; known (T,) bool: no unknown turn from it on).

    turns is ``per_turn``'s (T, 4); final is ``outcome``'s (4,).
    """
    n = len(turns)
    out = np.empty((n, len(HORIZON_COEFFS), FIELDS))
    known = np.empty(n, dtype=bool)
    acc = np.tile(final, (len(HORIZON_COEFFS), 1))
    factors = np.array(now_factors(area))[:, None]
    all_known = True
    for t in range(n - 1, -1, -1):
        x = turns[t]
        if np.isnan(x).any():
            all_known = False
        else:
            acc = acc + factors * (x[None, :] - acc)
        out[t] = acc
        known[t] = all_known
    return out, known


def mover_view(target: np.ndarray, black_to_move: bool) -> np.ndarray:
    """A (3, 4) target from Black's view as the mover's: White swaps win and loss and negates the score."""
    if black_to_move:
        return target.copy()
    return target[:, [1, 0, 2, 3]] * np.array([1.0, 1.0, 1.0, -1.0])
