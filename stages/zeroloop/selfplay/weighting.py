"""How much each training row weighs: reduced visits and surprise (KataGo's self-play data weighting).

Pure functions of a game's numbers, no I/O:

- ``reduced_visits``: once the root values of the last few searches say
  one side is clearly winning, a full search gets fewer visits and its row
  a lower weight (KataGo's reduceVisits: the weight and visits slide from
  full at the threshold to the minimum at a certain win, quadratically).
- ``policy_surprise``: how far the search moved off the net's policy, the
  KL divergence of the policy target from the root's priors.
- ``value_surprise``: how far the net's value at each recorded position
  was from what followed: the KL divergence of the game's outcome,
  smoothed backwards through the later searches' root values, from the
  raw net value (KataGo's computeValueSurpriseByTurn, with win/loss only).
- ``surprise_weights``: a game's row weights redistributed so that a share
  goes in proportion to policy surprise and a share to value surprise,
  keeping the game's total weight (KataGo's policySurpriseDataWeight and
  valueSurpriseDataWeight). Only recorded (full-search) rows take part:
  zeroloop does not record cheap searches, so KataGo's extra rows for
  surprising cheap searches have no counterpart.

Values are win-loss in [-1, 1]; the trainer multiplies every loss term of a
row by its weight (``zeroloop.rows.GT_ROW_WEIGHT``).
"""

from __future__ import annotations

import math

import numpy as np

_TINY = 1e-100


def reduced_visits(recent_values: list[float], max_visits: int, threshold: float, lookback: int,
                   min_visits: int, reduced_weight: float) -> tuple[int, float]:
    """(visits, row weight) of a full search after root values recent_values (any one side's view)."""
    if len(recent_values) < lookback or lookback <= 0:
        return max_visits, 1.0
    last = recent_values[-lookback:]
    if any(math.isnan(v) for v in last):
        return max_visits, 1.0
    extreme = min(1.0, max(min(last), -max(last)))  # the win value every one of them gives the same side
    through = extreme - threshold
    if through <= 0 or threshold >= 1.0:
        return max_visits, 1.0
    prop = (through / (1.0 - threshold)) ** 2
    visits = max(min_visits, int(round(max_visits + prop * (min_visits - max_visits))))
    return visits, 1.0 + prop * (reduced_weight - 1.0)


def policy_surprise(target: np.ndarray, priors: np.ndarray) -> float:
    """KL(target || priors) over a root's children (target need not be normalised)."""
    total = float(np.sum(target))
    if total <= 0:
        return 0.0
    t = np.asarray(target, dtype=np.float64) / total
    p = np.maximum(np.asarray(priors, dtype=np.float64), _TINY)
    nz = t > _TINY
    return max(0.0, float(np.sum(t[nz] * (np.log(t[nz]) - np.log(p[nz])))))


def _binary_kl(v: float, q: float) -> float:
    """KL of the win/loss split of value v from that of value q (values in [-1, 1]), capped at 1."""
    out = 0.0
    for a, b in (((1 + v) / 2, (1 + q) / 2), ((1 - v) / 2, (1 - q) / 2)):
        if a > _TINY:
            out += a * (math.log(a) - math.log(max(b, _TINY)))
    return min(max(out, 0.0), 1.0)


def value_surprise(root_values: list[float], outcome: float, area: int, turns: list[int],
                   nn_values: list[float]) -> np.ndarray:
    """Value surprise of the rows at turns (nn_values: the raw net value there), all in one side's view.

    root_values[t] is the search's root value at turn t (nan where unknown); outcome the game's
    result (+1, -1, 0). Each turn's value target is the outcome smoothed back through later
    turns' root values by 1 / (1 + 0.016 * area) per turn.
    """
    now = 1.0 / (1.0 + area * 0.016)
    target = np.empty(len(root_values))
    v = outcome
    for t in range(len(root_values) - 1, -1, -1):
        if not math.isnan(root_values[t]):
            v = v + now * (root_values[t] - v)
        target[t] = v
    out = np.zeros(len(turns))
    for i, (t, nn) in enumerate(zip(turns, nn_values)):
        if t < len(target) and not math.isnan(nn):
            out[i] = _binary_kl(float(target[t]), nn)
    return out


def surprise_weights(weights: np.ndarray, policy: np.ndarray, value: np.ndarray, policy_share: float,
                     value_share: float) -> np.ndarray:
    """Row weights with policy_share of the total in proportion to policy surprise and value_share
    to value surprise (the rest as given); the total is kept."""
    w = np.asarray(weights, dtype=np.float64)
    total = float(w.sum())
    if total < 1.0 or (policy_share <= 0 and value_share <= 0):
        return w.copy()
    mean_policy = float(np.sum(policy * w)) / total
    mean_value = float(np.sum(value * w)) / total
    if mean_value < 0.010:  # a game with almost no value surprise (lopsided throughout): little to share out
        value_share *= mean_value / 0.010
    # Rows of reduced weight also get the surprise beyond 1.5x the mean, KataGo's rule for shallow searches.
    excess = np.maximum(0.0, policy - 1.5 * mean_policy)
    by_policy = w * policy + (1.0 - w) * excess
    by_value = w * value
    return ((1.0 - policy_share - value_share) * w
            + policy_share * by_policy * total / max(by_policy.sum(), 1e-10)
            + value_share * by_value * total / max(by_value.sum(), 1e-10))
