"""The search math, KataGo's formulas, as small pure functions.

Everything here is a pure function of numbers or small arrays, compiled with
numba so the tree code (``zeroloop.search.tree``) calls it per visit, and
callable from Python so tests can check it on hand-made trees.

Values are utilities from the view of the player choosing (the parent's
player to move): win/loss in [-1, 1] plus a small score term.

- PUCT: ``Q + c * sqrt(N + 0.01) * P / (1 + n)`` (KataGo's explore scaling,
  without its log term, as selfplay1.cfg sets ``cpuctExplorationLog = 0``).
- First-play urgency: an unvisited child is valued at the parent's average
  utility minus ``reduction * sqrt(policy mass of visited children)``; the
  reduction is smaller at a noised root (0 in KataGo's self-play).
- Forced playouts: at the root of a full search a visited child with fewer
  than ``sqrt(k * P * N)`` visits is chosen before anything else.
- Policy-target pruning: after the search every child but the most visited
  keeps only the visits it would need for its PUCT value to reach the best
  child's (KataGo's ``getReducedPlaySelectionWeight``), so forced playouts
  and noise do not leak into the policy target.
- Dirichlet noise: total concentration ``alpha_total`` spread over the legal
  moves (``alpha = alpha_total / legal``, so bigger boards get spikier
  noise, as AlphaZero scales it), mixed in with weight ``w``.
- Temperatures that decay from an early value with a half-life in moves
  scaled to the board (``19 / sqrt(area)``: 9x9 halves about twice as
  fast as 19x19).
- Score utility: ``f * 2/pi * atan(score / (sqrt(area) / 2))``, a static,
  bounded bonus for a bigger lead (KataGo's static score utility shape).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def explore_scaling(total_visits, cpuct):
    """The factor multiplying P / (1 + n) in PUCT at a node with total_visits."""
    return cpuct * math.sqrt(total_visits + 0.01)


@njit(cache=True, inline="always")
def puct_value(q, prior, visits, scaling):
    """PUCT value of a child with mean utility q (chooser's view)."""
    return q + scaling * prior / (1.0 + visits)


@njit(cache=True, inline="always")
def fpu_value(parent_q, visited_mass, reduction):
    """Value given to unvisited children: parent's utility, reduced."""
    return parent_q - reduction * math.sqrt(visited_mass)


@njit(cache=True, inline="always")
def forced_playouts(prior, total_visits, coeff):
    """Visits a root child is forced to get: sqrt(k * P * N)."""
    return math.sqrt(coeff * prior * total_visits)


@njit(cache=True)
def score_utility(score, factor, area):
    """Bounded utility bonus for a lead of score points (chooser's view)."""
    if factor == 0.0:
        return 0.0
    return factor * (2.0 / math.pi) * math.atan(score / (0.5 * math.sqrt(area)))


@njit(cache=True)
def puct_select(priors, visits, q, parent_q, cpuct, fpu_reduction, forced_coeff):
    """Index of the child PUCT picks (arrays over the children).

    q[i] is child i's mean utility (ignored where visits[i] == 0);
    forced_coeff > 0 turns on forced playouts (root of a full search).
    """
    total = 0.0
    visited_mass = 0.0
    for i in range(priors.shape[0]):
        if visits[i] > 0:
            total += visits[i]
            visited_mass += priors[i]
    if forced_coeff > 0.0:
        for i in range(priors.shape[0]):
            if visits[i] > 0 and visits[i] < forced_playouts(priors[i], total, forced_coeff):
                return i
    scaling = explore_scaling(total, cpuct)
    fpu = fpu_value(parent_q, visited_mass, fpu_reduction)
    best = -1
    best_value = -1e300
    for i in range(priors.shape[0]):
        if visits[i] > 0:
            v = puct_value(q[i], priors[i], visits[i], scaling)
        else:
            v = fpu + scaling * priors[i]
        if v > best_value:
            best_value = v
            best = i
    return best


@njit(cache=True)
def pruned_weight(visits, prior, q, best_value, scaling):
    """Visits a non-best child keeps: those its PUCT value justifies, at most its own."""
    if visits <= 0:
        return 0.0
    gap = best_value - q
    if gap <= 0.0:
        return float(visits)
    wanted = scaling * prior / gap - 1.0
    if wanted < 0.0:
        return 0.0
    return min(float(visits), wanted)


@njit(cache=True)
def prune_policy_target(priors, visits, q, cpuct, out):
    """out[i] = pruned visit weight of child i (KataGo's policy-target pruning).

    The most visited child keeps its visits; each other child keeps
    ceil(pruned_weight). Returns the index of the most visited child.
    """
    best = 0
    total = 0.0
    for i in range(visits.shape[0]):
        total += visits[i]
        if visits[i] > visits[best]:
            best = i
    scaling = explore_scaling(total, cpuct)
    best_value = puct_value(q[best], priors[best], visits[best], scaling)
    for i in range(visits.shape[0]):
        if i == best:
            out[i] = visits[i]
        else:
            out[i] = math.ceil(pruned_weight(visits[i], priors[i], q[i], best_value, scaling))
    return best


@njit(cache=True)
def apply_policy_temperature(priors, temperature):
    """priors ** (1/T), renormalised, in place (softmax of logits / T)."""
    if temperature == 1.0:
        return
    inv = 1.0 / temperature
    total = 0.0
    for i in range(priors.shape[0]):
        if priors[i] > 0.0:
            priors[i] = priors[i] ** inv
            total += priors[i]
    if total > 0.0:
        for i in range(priors.shape[0]):
            priors[i] = priors[i] / total


@njit(cache=True)
def add_dirichlet_noise(priors, weight, alpha_total):
    """Mix Dirichlet(alpha_total / k) noise into k priors with weight, in place."""
    k = priors.shape[0]
    if k == 0 or weight <= 0.0:
        return
    alpha = alpha_total / k
    noise = np.empty(k)
    total = 0.0
    for i in range(k):
        noise[i] = np.random.gamma(alpha, 1.0)
        total += noise[i]
    if total <= 0.0:
        return
    for i in range(k):
        priors[i] = (1.0 - weight) * priors[i] + weight * noise[i] / total


def decayed_temperature(turn: int, early: float, late: float, halflife: float, area: int) -> float:
    """early -> late with a half-life of halflife moves on 19x19, scaled to the board."""
    halflives = turn / halflife * 19.0 / math.sqrt(area)
    return late + (early - late) * 0.5**halflives


def choose_with_temperature(weights: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """Sample an index with probability ~ weights ** (1/T); T near 0 is argmax.

    Weights below 1 (moves searched less than once) are never chosen unless
    nothing else is, as KataGo's chosenMovePrune = 1.
    """
    w = np.asarray(weights, dtype=np.float64)
    if not np.any(w > 0):
        raise ValueError("no move has a positive weight")
    if np.any(w >= 1.0):
        w = np.where(w >= 1.0, w, 0.0)
    if temperature <= 1e-4:
        return int(np.argmax(w))
    logw = np.full(w.shape, -np.inf)
    pos = w > 0
    logw[pos] = np.log(w[pos]) / temperature
    p = np.exp(logw - logw.max())
    p /= p.sum()
    return int(rng.choice(len(p), p=p))
