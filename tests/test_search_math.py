"""The search math on small hand-made trees: PUCT, FPU, forced playouts, pruning, noise, temperatures."""

import math

import numpy as np
import pytest

from zeroloop.search import puct


def test_puct_prefers_value_then_exploration():
    priors = np.array([0.5, 0.3, 0.2])
    visits = np.array([10.0, 2.0, 0.0])
    q = np.array([0.1, 0.4, 0.0])
    # By hand: N = 12, scale = 1.1*sqrt(12.01); child 1: 0.4 + scale*0.3/3, child 0: 0.1 + scale*0.5/11.
    scale = 1.1 * math.sqrt(12.01)
    v0 = 0.1 + scale * 0.5 / 11
    v1 = 0.4 + scale * 0.3 / 3
    fpu = 0.0 - 0.2 * math.sqrt(0.8)  # parent q 0, visited mass 0.8
    v2 = fpu + scale * 0.2
    want = int(np.argmax([v0, v1, v2]))
    assert puct.puct_select(priors, visits, q, 0.0, 1.1, 0.2, 0.0) == want == 1


def test_fpu_reduction_decides_unvisited_children():
    priors = np.array([0.5, 0.5])
    visits = np.array([1.0, 0.0])
    q = np.array([0.2, 0.0])
    # Without reduction the unvisited child (valued at the parent's 0.3) wins; a big reduction makes it lose.
    assert puct.puct_select(priors, visits, q, 0.3, 1.0, 0.0, 0.0) == 1
    assert puct.puct_select(priors, visits, q, 0.3, 1.0, 1.0, 0.0) == 0
    assert puct.fpu_value(0.3, 0.25, 0.2) == pytest.approx(0.3 - 0.2 * 0.5)


def test_forced_playouts_override_puct_only_for_visited_children():
    priors = np.array([0.6, 0.4, 0.0])
    visits = np.array([90.0, 3.0, 0.0])
    q = np.array([0.5, -0.9, 0.0])
    # Child 1 is terrible but has 3 < sqrt(2*0.4*93) = 8.6 visits: forced.
    assert puct.forced_playouts(0.4, 93.0, 2.0) == pytest.approx(math.sqrt(2 * 0.4 * 93))
    assert puct.puct_select(priors, visits, q, 0.0, 1.1, 0.2, 2.0) == 1
    assert puct.puct_select(priors, visits, q, 0.0, 1.1, 0.2, 0.0) == 0
    # Enough visits: no longer forced.
    visits[1] = 9.0
    assert puct.puct_select(priors, visits, q, 0.0, 1.1, 0.2, 2.0) == 0


def test_policy_target_pruning_removes_forced_visits():
    priors = np.array([0.5, 0.3, 0.2])
    visits = np.array([100.0, 20.0, 10.0])
    q = np.array([0.3, -0.5, 0.28])
    out = np.zeros(3)
    best = puct.prune_policy_target(priors, visits, q, 1.1, out)
    assert best == 0
    scale = 1.1 * math.sqrt(130.01)
    best_value = 0.3 + scale * 0.5 / 101
    # Child 1 (bad, forced): keeps only the visits its PUCT value justifies.
    wanted1 = scale * 0.3 / (best_value - (-0.5)) - 1
    assert out[0] == 100
    assert out[1] == math.ceil(max(0.0, wanted1)) and out[1] < 20
    # Child 2 (nearly as good as the best): keeps all its visits.
    assert out[2] == 10
    # The most visited child is never pruned; nothing grows.
    assert np.all(out <= visits)


def test_pruned_weight_edge_cases():
    assert puct.pruned_weight(0, 0.5, 0.0, 1.0, 1.0) == 0.0
    assert puct.pruned_weight(7, 0.1, 2.0, 1.0, 1.0) == 7.0  # better than the best's value: keeps all
    assert puct.pruned_weight(7, 0.01, -1.0, 1.0, 1.0) == 0.0  # far worse: nothing


def test_policy_temperature_is_softmax_of_scaled_logits():
    logits = np.array([1.0, 0.0, -1.0])
    p = np.exp(logits) / np.exp(logits).sum()
    puct.apply_policy_temperature(p, 2.0)
    want = np.exp(logits / 2) / np.exp(logits / 2).sum()
    assert np.allclose(p, want)


def test_dirichlet_noise_mixes_with_weight_and_spreads_alpha():
    np.random.seed(0)  # python side; the compiled side is seeded through board.seed
    from zeroloop.go import board

    board.seed(123)
    k = 50
    base = np.full(k, 1.0 / k)
    noisy = []
    for _ in range(400):
        p = base.copy()
        puct.add_dirichlet_noise(p, 0.25, 10.83)
        assert p.sum() == pytest.approx(1.0)
        assert np.all(p >= 0.75 * base - 1e-12)
        noisy.append(p)
    noisy = np.array(noisy)
    eta = (noisy - 0.75 * base) / 0.25
    # Dirichlet(alpha = 10.83/50 each): mean 1/k, variance (1/k)(1-1/k)/(10.83+1).
    assert eta.mean() == pytest.approx(1.0 / k, rel=1e-6)
    var = (1 / k) * (1 - 1 / k) / (10.83 + 1)
    assert eta[:, 0].var() == pytest.approx(var, rel=0.35)


def test_decayed_temperature_halves_with_board_scaled_halflife():
    assert puct.decayed_temperature(0, 0.75, 0.15, 19, 361) == pytest.approx(0.75)
    assert puct.decayed_temperature(19, 0.75, 0.15, 19, 361) == pytest.approx(0.15 + 0.3)
    # 9x9: a half-life is 19 * 9 / 19 = 9 moves.
    assert puct.decayed_temperature(9, 0.75, 0.15, 19, 81) == pytest.approx(0.45)
    assert puct.decayed_temperature(1000, 0.75, 0.15, 19, 81) == pytest.approx(0.15)


def test_choose_with_temperature():
    rng = np.random.default_rng(0)
    w = np.array([3.0, 10.0, 0.0, 0.5])
    assert puct.choose_with_temperature(w, 0.0, rng) == 1
    picks = [puct.choose_with_temperature(w, 1.0, rng) for _ in range(2000)]
    counts = np.bincount(picks, minlength=4)
    assert counts[2] == 0 and counts[3] == 0  # zero and sub-one weights are never played
    assert counts[0] / 2000 == pytest.approx(3 / 13, abs=0.04)


def test_score_utility_is_bounded_and_odd():
    assert puct.score_utility(0.0, 0.1, 81) == 0.0
    assert puct.score_utility(1e9, 0.1, 81) == pytest.approx(0.1)
    assert puct.score_utility(-4.5, 0.1, 81) == pytest.approx(-0.1 * 2 / math.pi * math.atan(1.0))
