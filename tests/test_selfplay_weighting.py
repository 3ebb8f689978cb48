"""Row weights of self-play (reduced visits, policy and value surprise) as KataGo computes them."""

import math

import numpy as np
import pytest

from zeroloop.selfplay import weighting as W


def test_reduced_visits_slide_quadratically_to_the_minimum_once_every_recent_value_says_one_side_wins():
    full = (100, 1.0)
    args = dict(max_visits=100, threshold=0.9, lookback=3, min_visits=25, reduced_weight=0.1)
    assert W.reduced_visits([0.99, 0.99], **args) == full  # fewer searches than the lookback
    assert W.reduced_visits([0.2, 0.99, 0.95, 0.99], **args)[0] < 100  # only the last three count
    assert W.reduced_visits([0.99, 0.99, 0.2], **args) == full
    assert W.reduced_visits([0.99, -0.99, 0.99], **args) == full  # not the same side
    assert W.reduced_visits([0.9, 0.95, 0.99], **args) == full  # at the threshold
    visits, weight = W.reduced_visits([0.95, 0.97, 0.99], **args)  # halfway through: a quarter of the way down
    assert visits == round(100 + 0.25 * (25 - 100)) and weight == pytest.approx(1 + 0.25 * (0.1 - 1))
    assert W.reduced_visits([-0.95, -0.99, -0.97], **args) == (visits, weight)  # either side
    assert W.reduced_visits([1.0, 1.0, 1.0], **args) == (25, pytest.approx(0.1))
    assert W.reduced_visits([1.0, math.nan, 1.0], **args) == full


def test_policy_surprise_is_the_kl_of_the_target_from_the_priors():
    assert W.policy_surprise(np.array([3.0, 1.0]), np.array([0.75, 0.25])) == pytest.approx(0.0, abs=1e-12)
    assert W.policy_surprise(np.array([5.0, 0.0]), np.array([0.5, 0.5])) == pytest.approx(math.log(2))
    assert W.policy_surprise(np.array([1.0, 1.0]), np.array([0.9, 0.1])) == pytest.approx(
        0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1))
    assert W.policy_surprise(np.zeros(2), np.array([0.5, 0.5])) == 0.0


def test_value_surprise_compares_the_smoothed_outcome_with_the_net():
    # The net said what happened, with no search values to smooth through: no surprise.
    assert W.value_surprise([math.nan] * 4, 1.0, 25, [0, 2], [1.0, 1.0]) == pytest.approx([0.0, 0.0], abs=1e-9)
    # It said the opposite: capped at 1.
    assert W.value_surprise([math.nan] * 4, 1.0, 25, [0, 2], [-1.0, -1.0]) == pytest.approx([1.0, 1.0])
    # Search values pull the early targets toward themselves, so a net agreeing with them early on is
    # less surprised than one agreeing only with the final result.
    values = [-0.8, -0.8, -0.8, -0.8, -0.8, -0.8]
    early = W.value_surprise(values, 1.0, 81, [0], [-0.8])[0]
    late = W.value_surprise(values, 1.0, 81, [0], [1.0])[0]
    assert early < late


def test_surprise_weights_keep_the_total_and_follow_the_surprise():
    base = np.ones(4)
    policy = np.array([0.1, 0.1, 0.1, 0.9])
    value = np.array([0.5, 0.0, 0.0, 0.0])
    assert np.array_equal(W.surprise_weights(base, policy, value, 0.0, 0.0), base)
    w = W.surprise_weights(base, policy, value, 0.5, 0.1)
    assert w.sum() == pytest.approx(4.0)
    expected = 0.4 * 1 + 0.5 * policy * 4 / policy.sum() + 0.1 * value * 4 / value.sum()
    assert w == pytest.approx(expected)
    assert w[3] > w[0] > w[1] == w[2]
    # A game whose value surprise is tiny on average shares out proportionally less by it.
    small = W.surprise_weights(base, policy, value * 0.01, 0.0, 0.1)
    assert small.sum() == pytest.approx(4.0) and small[0] - small[1] < 0.1 * 4
    # A reduced-weight row gets a share of policy weight only for surprise beyond 1.5x the mean.
    reduced = np.array([1.0, 1.0, 1.0, 0.1])
    w = W.surprise_weights(reduced, policy, np.zeros(4), 0.5, 0.0)
    assert w.sum() == pytest.approx(reduced.sum()) and w[3] > 0.5 * 0.1
