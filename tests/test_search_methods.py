"""KataGo's search refinements, each behind a parameter: fresh trees, shaped noise, FPU parent
weighting, dynamic score utility, LCB move choice."""

import math

import numpy as np
import pytest

from zeroloop.go import board as B
from zeroloop.search import puct, tree
from zeroloop.search.batch import BatchSearch, RootResult, SearchParams
from zeroloop.search.evaluators import EvalOutput, NullEvaluator


@pytest.fixture(autouse=True)
def seeded():
    B.seed(11)


def run(bs: BatchSearch, g: int, visits: int, evaluate, **kw) -> int:
    """Search slot g to visits; returns the evaluations it made."""
    bs.start_search(g, visits, **kw)
    evals = 0
    while bs.searching(g):
        evals += bs.step(evaluate)
    return evals


def null_evaluate(spatial, glob, _games):
    return NullEvaluator(spatial.shape[-1]).evaluate(spatial, glob)


def test_fresh_tree_gives_a_full_search_all_new_visits_with_root_noise():
    bs = BatchSearch(1, 5, 5, 120, 100)
    bs.new_game(0, 5, B.KO_POSITIONAL, False, 7.0, 100)
    run(bs, 0, 60, null_evaluate)
    r = bs.root_result(0)
    bs.play(0, int(r.moves[np.argmax(r.visits)]))
    kept = bs.root_visits(0)
    assert kept >= 2  # the reused subtree

    reused = run(bs, 0, 80, null_evaluate, full=True, noise=True)
    assert reused <= 80 - kept  # the reused visits counted toward the budget
    bs.play(0, int(bs.root_result(0).moves[0]))
    assert bs.root_visits(0) > 0
    fresh = run(bs, 0, 80, null_evaluate, full=True, noise=True, fresh=True)
    r = bs.root_result(0)
    assert fresh == 80 == r.root_visits  # every visit new: no terminal positions this early
    assert not np.allclose(r.priors, r.priors[0])  # the noise was there from the root's first evaluation
    assert bs.game_i[0, tree.G_ROOT_PREP] == 0


def test_shaped_noise_puts_half_its_concentration_on_high_policy_moves():
    k, high = 81, 5
    priors = np.full(k, 1e-5)
    priors[:high] = (1.0 - (k - high) * 1e-5) / high
    shares = np.empty(k)
    puct.shaped_alpha_shares(priors, shares)
    assert shares.sum() == pytest.approx(1.0)
    assert shares[:high].sum() == pytest.approx(0.5 + 0.5 * high / k)
    assert np.allclose(shares[high:], 0.5 / k)
    flat = np.empty(k)
    puct.shaped_alpha_shares(np.full(k, 1.0 / k), flat)
    assert np.allclose(flat, 1.0 / k)  # nothing above the mean: all uniform

    def noise_on_high(shaped: bool) -> float:
        total = 0.0
        for _ in range(300):
            p = priors.copy()
            puct.add_dirichlet_noise(p, 1.0, 10.83, shaped)  # weight 1: p is the noise itself
            total += p[:high].sum()
        return total / 300

    assert noise_on_high(True) == pytest.approx(0.5 + 0.5 * high / k, abs=0.06)
    assert noise_on_high(False) == pytest.approx(high / k, abs=0.03)


def test_fpu_parent_value_leans_on_the_parents_own_utility_while_little_policy_is_visited():
    assert puct.fpu_parent_utility(-0.2, 1.0, 0.5, 0.0) == -0.2
    assert puct.fpu_parent_utility(-0.2, 1.0, 0.5, 2.0) == pytest.approx(0.25 * -0.2 + 0.75 * 1.0)
    assert puct.fpu_parent_utility(-0.2, 1.0, 1.0, 2.0) == pytest.approx(-0.2)
    # A root (Black to move) with a poor visited child (prior 0.9, 4 visits, q -0.5) and a high own
    # utility (1.0): its average is -0.2; an unvisited child of prior 0.1 wins only by the blend.
    ni = np.zeros((3, tree.NODE_INTS), dtype=np.int32)
    nf = np.zeros((3, tree.NODE_FLOATS))
    ni[0] = (5, 0, 2, -1, tree.EXPANDED, -1)
    ni[1] = (4, -1, 0, 0, tree.EXPANDED, -1)
    nf[1, tree.N_USUM] = 4 * -0.5
    nf[0, tree.N_UTIL] = 1.0
    nf[0, tree.N_USUM] = 1.0 + nf[1, tree.N_USUM]
    ep = np.array([0.9, 0.1], dtype=np.float32)
    ec = np.array([1, -1], dtype=np.int32)
    assert tree._select_edge(ni, nf, ep, ec, 0, 1.0, 1.1, 0.2, 0.0, 0.0) == 0
    assert tree._select_edge(ni, nf, ep, ec, 0, 1.0, 1.1, 0.2, 0.0, 2.0) == 1


def test_dynamic_score_center_is_the_expected_score_pulled_toward_zero_within_a_cap():
    assert puct.dynamic_score_center(4.0, 0.25, 0.5, 81) == pytest.approx(3.0)
    assert puct.dynamic_score_center(20.0, 0.25, 0.5, 81) == pytest.approx(20.0 - 4.5)  # capped at 0.5*9
    assert puct.dynamic_score_center(-20.0, 0.25, 0.5, 81) == pytest.approx(-15.5)
    assert puct.dynamic_score_utility(3.0, 3.0, 0.4, 0.5, 81) == 0.0
    assert puct.dynamic_score_utility(7.5, 3.0, 0.4, 0.5, 81) == pytest.approx(0.4 * 2 / math.pi * math.atan(1.0))


def black_score_evaluator(bs: BatchSearch, black_score: float):
    """Even value, uniform policy, and an expected score of black_score points for Black."""
    def evaluate(spatial, glob, games):
        b = len(games)
        colours = bs.leaves[:b, 3]
        score = np.where(colours == B.BLACK, black_score, -black_score).astype(np.float32)
        policy = np.ones((b, spatial.shape[-1] ** 2 + 1), dtype=np.float32)
        return EvalOutput(policy, np.full((b, 3), 1 / 3, dtype=np.float32), score)
    return evaluate


def check_utilities(bs: BatchSearch, g: int) -> None:
    """Each node's utility is its own under the current centre plus its children's sums."""
    ni, nf = bs.node_i[g], bs.node_f[g]
    center, params, area = bs.game_f[g, tree.G_SCORE_CENTER], bs._params, bs.size(g) ** 2
    used = int(bs.game_i[g, tree.G_NODES])
    sums = np.zeros(used)
    for k in range(used - 1, -1, -1):
        u = tree.utility(nf[k, tree.N_WL], nf[k, tree.N_SCORE], center, params, area)
        assert nf[k, tree.N_UTIL] == pytest.approx(u)
        times = ni[k, tree.N_VISITS] if ni[k, tree.N_STATE] == tree.TERMINAL else 1
        sums[k] += times * u
        assert nf[k, tree.N_USUM] == pytest.approx(sums[k])
        if k > 0:
            sums[ni[k, tree.N_PARENT]] += sums[k]


def test_dynamic_score_utility_centre_follows_the_root_score():
    params = SearchParams(dynamic_score_utility_factor=0.4)
    bs = BatchSearch(1, 5, 5, 200, 100, params)
    bs.new_game(0, 5, B.KO_POSITIONAL, False, 7.0, 100)
    run(bs, 0, 40, black_score_evaluator(bs, 4.0))
    assert bs.game_f[0, tree.G_SCORE_CENTER] == pytest.approx(3.0)  # from the root's first evaluation
    check_utilities(bs, 0)
    r = bs.root_result(0)
    bs.play(0, int(r.moves[np.argmax(r.visits)]))
    run(bs, 0, 120, black_score_evaluator(bs, 12.0))  # the reused tree is still centred on 3
    ssum = bs.node_f[0, 0, tree.N_SSUM] / bs.root_visits(0)
    assert 4.0 < ssum < 12.0
    bs.play(0, int(bs.root_result(0).moves[0]))
    expected = bs.node_f[0, 0, tree.N_SSUM] / bs.root_visits(0)
    bs.start_search(0, 150)
    assert bs.game_f[0, tree.G_SCORE_CENTER] == pytest.approx(puct.dynamic_score_center(expected, 0.25, 0.5, 25))
    check_utilities(bs, 0)  # the kept subtree was recomputed under the new centre
    # Off (the default): no centre, no recomputation.
    plain = BatchSearch(1, 5, 5, 50, 100)
    plain.new_game(0, 5, B.KO_POSITIONAL, False, 7.0, 100)
    run(plain, 0, 20, black_score_evaluator(plain, 4.0))
    assert plain.game_f[0, tree.G_SCORE_CENTER] == 0.0


def constructed_root(children: list[tuple[float, int, float, float]]) -> BatchSearch:
    """A 5x5 root (Black to move) whose children are (prior, visits, mean utility, mean squared utility)."""
    bs = BatchSearch(1, 5, 5, 300, 100)
    bs.new_game(0, 5, B.KO_POSITIONAL, False, 7.0, 100)
    ni, nf = bs.node_i[0], bs.node_f[0]
    ni[0] = (1 + sum(c[1] for c in children), 0, len(children), -1, tree.EXPANDED, -1)
    for i, (prior, visits, q, q_sq) in enumerate(children):
        bs.e_move[0, i], bs.e_prior[0, i], bs.e_child[0, i] = i, prior, i + 1
        ni[i + 1] = (visits, -1, 0, 0, tree.EXPANDED, -1)
        nf[i + 1, tree.N_USUM], nf[i + 1, tree.N_USQSUM] = visits * q, visits * q_sq
    bs.game_i[0, tree.G_NODES], bs.game_i[0, tree.G_EDGES] = len(children) + 1, len(children)
    return bs


def test_lcb_picks_the_less_visited_move_with_the_better_lower_bound():
    # A: most visits, mean 0, wide spread; B: fewer visits, mean 0.3, narrow; C: best mean, too few visits.
    bs = constructed_root([(0.5, 100, 0.0, 0.8), (0.3, 40, 0.3, 0.1), (0.2, 5, 0.9, 0.82)])
    r = bs.root_result(0)
    assert list(r.visits) == [100, 40, 5] and r.q_sq[1] == pytest.approx(0.1)
    assert np.argmax(r.play_weights(SearchParams())) == 0  # off: the most visited
    lcb = SearchParams(use_lcb=True)
    w = r.play_weights(lcb)
    assert np.argmax(w) == 1 and w[1] > 100 and w[0] == 100 and w[2] == 5
    lo_a, rad_a = puct.lcb_and_radius(0.0, 0.8, 100, 5.0, lcb.utility_radius)
    lo_b, _ = puct.lcb_and_radius(0.3, 0.1, 40, 5.0, lcb.utility_radius)
    assert lo_b > lo_a and rad_a == pytest.approx(5 * math.sqrt(0.8 / 100), rel=1e-3)
    # C's bound is the best of all, but 5 visits are under 15% of the top move's: with 1% it wins.
    assert np.argmax(r.play_weights(SearchParams(use_lcb=True, min_visit_prop_for_lcb=0.01))) == 2
    # An unvisited child has the widest bound and is never chosen.
    assert puct.lcb_and_radius(0.0, 0.0, 0, 5.0, 1.1) == (-11.0, 11.0)


def test_lcb_keeps_the_most_visited_move_when_its_bound_is_best():
    r = RootResult(np.array([0, 1]), np.array([80.0, 30.0]), np.array([0.6, 0.4]), np.array([0.4, 0.1]), 111,
                   0.0, 0.0, np.array([0.17, 0.02]))
    w = r.play_weights(SearchParams(use_lcb=True))
    assert np.argmax(w) == 0 and w[1] == 30.0


def test_subtree_value_bias_moves_a_nodes_value_toward_its_buckets_bias():
    """Root 0 -> node 1 (bucket 0, net utility 0.2, one visit) gets a child's visit worth -0.6."""
    def backed_up(stored_delta: float) -> tuple[float, float, float]:
        ni = np.zeros((3, tree.NODE_INTS), dtype=np.int32)
        nf = np.zeros((3, tree.NODE_FLOATS))
        ni[0] = (2, -1, 0, -1, tree.EXPANDED, -1)
        ni[1] = (1, -1, 0, 0, tree.EXPANDED, 0)
        ni[2] = (0, -1, 0, 1, tree.EXPANDED, -1)
        nf[0, tree.N_UTIL], nf[1, tree.N_UTIL] = 0.1, 0.2
        nf[0, tree.N_USUM], nf[1, tree.N_USUM] = 0.3, 0.2
        sums = np.array([[stored_delta, 1.0]])  # another node of the bucket saw this error
        nf[2, tree.N_UTIL] = -0.6
        tree._backup_biased(ni, nf, sums, 2, -0.6, 0.0, 0.0, 0.3, 0.8)
        assert ni[0, tree.N_VISITS] == 3 and ni[1, tree.N_VISITS] == 2
        # node 1's own error: children -0.6 vs net 0.2, weight 1 ** 0.8
        assert tuple(sums[0]) == pytest.approx((stored_delta - 0.8, 2.0))
        bias = 0.3 * (stored_delta - 0.8) / 2.0
        assert nf[1, tree.N_BIAS] == pytest.approx(bias)
        assert nf[1, tree.N_USUM] == pytest.approx(0.2 + bias - 0.6)
        assert nf[0, tree.N_USUM] == pytest.approx(0.3 - 0.6 + bias)  # the change reached the root
        return nf[1, tree.N_USUM], nf[0, tree.N_USUM], bias

    low, high = backed_up(-1.0), backed_up(+1.0)
    assert low[2] < 0 < high[2] and low[0] < -0.4 < high[0]  # unbiased: 0.2 - 0.6


def test_bucket_key_is_the_local_pattern_and_the_last_two_moves():
    def key(stones: list[tuple[int, int, int]], prev: tuple[int, int], move: tuple[int, int]) -> int:
        b = B.new_board(9)
        t = B.hist_new(100)
        for x, y, c in stones:
            B.play(b, t, B.point_of(b, x, y), c)
        B.play(b, t, B.point_of(b, *prev), B.WHITE)
        return tree.bucket_key(b, move[1] * 9 + move[0], B.BLACK)

    base = key([(4, 4, B.BLACK)], (5, 5), (3, 4))
    assert base != 0
    assert key([(4, 4, B.BLACK), (8, 0, B.BLACK)], (5, 5), (3, 4)) == base  # a stone outside the 5x5
    assert key([(4, 4, B.BLACK), (1, 4, B.BLACK)], (5, 5), (3, 4)) != base  # a stone inside it
    assert key([(4, 4, B.BLACK)], (6, 6), (3, 4)) != base  # another previous move
    b = B.new_board(9)
    assert tree.bucket_key(b, 40, B.BLACK) == 0  # no previous move: no bucket
    B.play(b, B.hist_new(10), B.point_of(b, 0, 0), B.BLACK)
    assert tree.bucket_key(b, 81, B.WHITE) == 0  # a pass: no bucket


def check_buckets(bs: BatchSearch, g: int) -> None:
    """Sums are own (net + bias) plus children's; every bucket's refs are the nodes naming it."""
    ni, nf = bs.node_i[g], bs.node_f[g]
    used = int(bs.game_i[g, tree.G_NODES])
    sums = np.zeros(used)
    refs = np.zeros(bs.bucket_refs.shape[1], dtype=np.int64)
    for k in range(used - 1, -1, -1):
        state = ni[k, tree.N_STATE]
        if state == tree.TERMINAL:
            sums[k] += ni[k, tree.N_VISITS] * nf[k, tree.N_UTIL]
        elif state == tree.EXPANDED:
            sums[k] += nf[k, tree.N_UTIL] + nf[k, tree.N_BIAS]
        assert nf[k, tree.N_USUM] == pytest.approx(sums[k], abs=1e-9)
        if k > 0:
            sums[ni[k, tree.N_PARENT]] += sums[k]
        if ni[k, tree.N_BUCKET] >= 0:
            refs[ni[k, tree.N_BUCKET]] += 1
    assert np.array_equal(refs, bs.bucket_refs[g])
    assert np.all((bs.bucket_keys[g] != 0) == (refs > 0))


def test_subtree_value_bias_in_a_search_keeps_sums_and_buckets_consistent_across_moves():
    from test_search_tree import CAPTURE_SETUP, setup_moves, stone_count_evaluator

    bs = BatchSearch(1, 5, 5, 300, 100, SearchParams(subtree_value_bias_factor=0.3))
    bs.new_game(0, 5, B.KO_POSITIONAL, False, 0.5, 100)
    setup_moves(bs, 0, CAPTURE_SETUP)
    run(bs, 0, 250, stone_count_evaluator)
    check_buckets(bs, 0)
    used = int(bs.game_i[0, tree.G_NODES])
    assert np.count_nonzero(bs.node_f[0, :used, tree.N_BIAS]) > 20  # the buckets are at work
    # Each bucket holds exactly what its nodes gave it.
    got = np.zeros_like(bs.bucket_sums[0])
    for k in range(used):
        e = bs.node_i[0, k, tree.N_BUCKET]
        if e >= 0:
            got[e] += bs.node_f[0, k, [tree.N_BUCKET_DELTA, tree.N_BUCKET_WEIGHT]]
    assert np.allclose(got, bs.bucket_sums[0])
    r = bs.root_result(0)
    assert int(r.moves[np.argmax(r.visits)]) == 2 * 5 + 3  # still finds the capture
    bs.play(0, 2 * 5 + 3)
    assert bs.node_i[0, 0, tree.N_BUCKET] == -1
    check_buckets(bs, 0)  # dropped nodes left their buckets, kept ones renumbered
    run(bs, 0, 280, stone_count_evaluator)
    check_buckets(bs, 0)
    bs.play(0, 25, reuse=False)
    assert not bs.bucket_keys[0].any() and not bs.bucket_refs[0].any()


def test_gtp_lcb_flag_reaches_the_search_player(tmp_path):
    import argparse

    from test_search_player import HandMade, capture_game
    from zeroloop import gtp
    from zeroloop.nn.model import random_init_model
    from zeroloop.nn.modelfile import ModelInfo, save_model
    from zeroloop.search import player
    from zeroloop.storage import open_location

    net = random_init_model("b1c16", 5, seed=4)
    storage, path = open_location(str(tmp_path / "m"))
    save_model(storage, path, net, ModelInfo.for_model(net, "m"))
    parser = argparse.ArgumentParser()
    gtp.add_arguments(parser)
    assert not player.from_args(parser.parse_args(["--model", path])).params.use_lcb
    assert player.from_args(parser.parse_args(["--model", path, "--lcb"])).params.use_lcb
    lcb_player = player.SearchPlayer(HandMade(), visits=100, params=SearchParams(use_lcb=True))
    assert lcb_player.genmove(capture_game(), B.BLACK) == (3, 2)


def test_selfplay_with_every_method_on_plays_and_records_games(tmp_path):
    from test_selfplay_engine import play, read_all

    engine = play(tmp_path, 4, fresh_tree_full_search=True, shaped_dirichlet_noise=True,
                  fpu_parent_weight_by_visited_policy_pow=2.0, dynamic_score_utility_factor=0.4,
                  score_utility_factor=0.0, subtree_value_bias_factor=0.3, lcb_policy_target=True)
    assert engine.counters.games_finished == 4
    files, data, _ = read_all(tmp_path)
    assert files and engine.counters.rows > 0
    assert len(next(iter(data.values()))) == engine.counters.rows
