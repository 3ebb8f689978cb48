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

Optional refinements after KataGo (each off unless its parameter is set):

- Shaped Dirichlet noise: half of ``alpha_total`` spread uniformly, half
  over the moves whose log-policy is above the mean of the legal moves'
  (KataGo's ``computeDirichletAlphaDistribution``).
- FPU parent value weighted by the visited policy: the parent value that
  FPU starts from is ``w * average + (1 - w) * the parent's own net
  utility`` with ``w = visited_mass ** pow`` (``fpuParentWeightByVisitedPolicy``).
- Dynamic score utility: ``f * 2/pi * atan((score - centre) / (scale *
  sqrt(area)))`` with the centre near the root's expected score
  (``dynamicScoreUtilityFactor``, ``dynamicScoreCenterZeroWeight``,
  ``dynamicScoreCenterScale``), so that the score keeps steering the search
  in a game already won or lost.
- LCB move choice: the child with the best lower confidence bound on its
  utility (among those with enough visits) gets a play weight above every
  child whose bound it beats (KataGo's ``getPlaySelectionValues``).
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


@njit(cache=True, inline="always")
def fpu_parent_utility(parent_avg, nn_utility, visited_mass, weight_pow):
    """The parent value FPU starts from: its average, or (pow > 0) blended toward its own net utility.

    With pow > 0 the average gets weight visited_mass ** pow: while few of
    the children by policy mass are visited, the average leans on those few
    and the net's own view of the parent is the better estimate.
    """
    if weight_pow <= 0.0:
        return parent_avg
    w = min(1.0, visited_mass ** weight_pow)
    return w * parent_avg + (1.0 - w) * nn_utility


@njit(cache=True)
def dynamic_score_utility(score, center, factor, scale, area):
    """Utility bonus for a lead of score points relative to center (chooser's view: both signed alike)."""
    if factor == 0.0:
        return 0.0
    return factor * (2.0 / math.pi) * math.atan((score - center) / (scale * math.sqrt(area)))


@njit(cache=True)
def dynamic_score_center(expected_score, zero_weight, scale, area):
    """KataGo's recentScoreCenter: the expected score pulled toward 0, at most scale*sqrt(area) away."""
    center = expected_score * (1.0 - zero_weight)
    cap = math.sqrt(area) * scale
    return min(max(center, expected_score - cap), expected_score + cap)


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
def shaped_alpha_shares(priors, out):
    """out[i] = move i's share of the total alpha: half uniform, half by log-policy above the mean.

    KataGo's shape: x_i = log(min(0.01, p_i) + 1e-20), minus the mean of
    the x_i, clipped at 0, normalised; all uniform if nothing is above the
    mean. Policies of 1% and more count alike, so the shaped half is spread
    over the plausible moves, not piled on the top one.
    """
    k = priors.shape[0]
    mean = 0.0
    for i in range(k):
        out[i] = math.log(min(0.01, float(priors[i])) + 1e-20)
        mean += out[i]
    mean /= k
    total = 0.0
    for i in range(k):
        out[i] = max(0.0, out[i] - mean)
        total += out[i]
    for i in range(k):
        out[i] = 0.5 * (out[i] / total + 1.0 / k) if total > 0.0 else 1.0 / k


@njit(cache=True)
def add_dirichlet_noise(priors, weight, alpha_total, shaped=False):
    """Mix Dirichlet noise of total concentration alpha_total into k priors with weight, in place.

    Uniform: alpha_total / k per move; shaped: ``shaped_alpha_shares``.
    """
    k = priors.shape[0]
    if k == 0 or weight <= 0.0:
        return
    noise = np.empty(k)
    if shaped:
        shaped_alpha_shares(priors, noise)
    else:
        noise[:] = 1.0 / k
    total = 0.0
    for i in range(k):
        noise[i] = np.random.gamma(alpha_total * noise[i], 1.0)
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


@njit(cache=True)
def lcb_and_radius(q, q_sq, visits, lcb_stdevs, utility_radius):
    """(lower bound, radius) of a child's mean utility q over visits (q_sq: mean of its squares).

    KataGo's getSelfUtilityLCBAndRadius with unit weights: a prior of weight
    1/visits**2 that the variance is the widest the utility range allows
    keeps the bound sensible at a handful of visits; unvisited children get
    the widest bound.
    """
    if visits <= 0:
        radius = 2.0 * utility_radius * lcb_stdevs
        return -radius, radius
    w = float(visits)
    prior_w = 1.0 / (w * w)
    sq = max(q_sq, q * q + 1e-8)
    sq = (sq * w + (sq + utility_radius * utility_radius) * prior_w) / (w + prior_w)
    ess = (w + prior_w) ** 2 / (w + prior_w * prior_w)
    radius = math.sqrt(max(0.0, sq - q * q) / ess) * lcb_stdevs
    return q - radius, radius


@njit(cache=True)
def lcb_selection_weights(weights, visits, q, q_sq, priors, lcb_stdevs, min_visit_prop, utility_radius, out):
    """out = play weights where the child with the best LCB outweighs every child whose LCB it beats.

    weights are the play weights before (visits, or policy-target pruned
    visits). Eligible: weight > 0 and at least min_visit_prop times the
    weight of the most stably explored child (most weight, a little policy).
    The winner's weight becomes the largest of its own and, for each child
    with a lower bound, that child's weight times ((r + d) / (r + d/5))**2
    (r its radius, d the gap in bounds): the visits it would need for its
    bound to fall as low. Returns the winner's index (-1: none eligible).
    """
    k = weights.shape[0]
    for i in range(k):
        out[i] = weights[i]
    if k == 0:
        return -1
    base = 0
    best_goodness = -1e300
    for i in range(k):
        g = weights[i] * max(0.0, visits[i] - 1.0) / max(1.0, visits[i]) + 2.0 * priors[i]
        if g > best_goodness:
            best_goodness = g
            base = i
    base_weight = weights[base]
    lcb = np.empty(k)
    radius = np.empty(k)
    best = -1
    best_lcb = -1e10
    for i in range(k):
        lcb[i], radius[i] = lcb_and_radius(q[i], q_sq[i], visits[i], lcb_stdevs, utility_radius)
        if weights[i] > 0.0 and weights[i] >= min_visit_prop * base_weight and lcb[i] > best_lcb:
            best_lcb = lcb[i]
            best = i
    if best < 0:
        return -1
    adjusted = weights[best]
    for i in range(k):
        if i == best:
            continue
        excess = best_lcb - lcb[i]
        if excess < 0.0:
            continue
        factor = (radius[i] + excess) / (radius[i] + 0.2 * excess)
        adjusted = max(adjusted, factor * factor * weights[i])
    out[best] = adjusted
    return best
