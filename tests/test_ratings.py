"""Bradley-Terry Elo fits on known results."""

import math

import numpy as np
import pytest

from zeroloop.ratings import fit


def expected(elo_diff: float) -> float:
    return 1 / (1 + 10 ** (-elo_diff / 400))


def test_two_players_match_the_score_rate():
    # 75% score is +190.8 Elo; the virtual draw pulls it in slightly.
    r = fit([("a", "b", 750, 1000)], anchor="b", prior_draws=0)
    assert r["b"].elo == 0
    assert r["a"].elo == pytest.approx(400 * math.log10(3), abs=0.5)
    assert 0 < r["a"].stderr < 40


def test_recovers_a_known_scale_from_simulated_games():
    rng = np.random.default_rng(3)
    true = {"p0": 0.0, "p1": 150.0, "p2": 300.0, "p3": -100.0}
    records = []
    names = list(true)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            n = 400
            pts = rng.binomial(n, expected(true[a] - true[b]))
            records.append((a, b, float(pts), float(n)))
    r = fit(records, anchor="p0", prior_draws=0)
    for name, elo in true.items():
        assert r[name].elo == pytest.approx(elo, abs=3 * max(r[name].stderr, 1) + 5)


def test_perfect_record_stays_finite_with_prior():
    r = fit([("a", "b", 10, 10)], anchor="b")
    assert math.isfinite(r["a"].elo) and r["a"].elo > 200


def test_transitive_chain_orders_players():
    r = fit([("a", "b", 70, 100), ("b", "c", 70, 100)], anchor="c")
    assert r["a"].elo > r["b"].elo > r["c"].elo == 0
    # a never met c: its error is larger than b's.
    assert r["a"].stderr > r["b"].stderr


def test_bad_records_rejected():
    with pytest.raises(ValueError):
        fit([("a", "b", 11, 10)])
    with pytest.raises(ValueError):
        fit([("a", "b", 5, 10)], anchor="z")
