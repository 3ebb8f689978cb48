"""The compiled batched search: finds a winning capture, keeps subtrees, maps symmetries, leaves no trace."""

import numpy as np
import pytest

from zeroloop import features, symmetry
from zeroloop.go import board as B
from zeroloop.go.game import Game
from zeroloop.search import tree
from zeroloop.search.batch import BatchSearch, SearchParams
from zeroloop.search.evaluators import EvalOutput, NullEvaluator


def stone_count_evaluator(spatial, glob, games=None):
    """Hand-made value: own stones minus opponent stones plus own komi, squashed; uniform policy."""
    own = spatial[:, 1].sum(axis=(1, 2))
    opp = spatial[:, 2].sum(axis=(1, 2))
    lead = own - opp + glob[:, 5] * 20.0
    win = 1.0 / (1.0 + np.exp(-lead / 2.0))
    value = np.stack([win, 1.0 - win, np.zeros_like(win)], axis=1).astype(np.float32)
    policy = np.ones((len(spatial), spatial.shape[-1] ** 2 + 1), dtype=np.float32)
    return EvalOutput(policy, value, np.zeros(len(spatial), dtype=np.float32))


def setup_moves(bs: BatchSearch, g: int, points: list[tuple[int, int] | None]) -> None:
    n = bs.size(g)
    for p in points:
        bs.play(g, n * n if p is None else p[1] * n + p[0], reuse=False)


def search(bs: BatchSearch, g: int, visits: int, evaluate=stone_count_evaluator, **kw) -> None:
    bs.start_search(g, visits, **kw)
    while bs.searching(g):
        assert bs.step(evaluate) >= 0


def check_tree(bs: BatchSearch, g: int) -> None:
    """Every expanded node's visits = 1 + its children's; parents point back; pools are consistent."""
    ni, ec = bs.node_i[g], bs.e_child[g]
    used = int(bs.game_i[g, tree.G_NODES])
    seen = {0}
    for node in range(used):
        if ni[node, tree.N_STATE] != tree.EXPANDED:
            continue
        first, count = ni[node, tree.N_FIRST], ni[node, tree.N_COUNT]
        assert first + count <= bs.game_i[g, tree.G_EDGES]
        kids = [c for c in ec[first:first + count] if c >= 0]
        for c in kids:
            assert ni[c, tree.N_PARENT] == node
            seen.add(int(c))
        assert ni[node, tree.N_VISITS] == 1 + sum(ni[c, tree.N_VISITS] for c in kids)
    assert seen == set(range(used))  # no orphans in the pool


@pytest.fixture(autouse=True)
def seeded():
    B.seed(7)  # the compiled side's random symmetries and noise


CAPTURE_SETUP = [(0, 3), (1, 3), (0, 4), (1, 4), (4, 3), (3, 3), (4, 4), (3, 4), (1, 2), (2, 3), (2, 2), (2, 4)]


def test_search_finds_the_winning_capture():
    bs = BatchSearch(1, 5, 5, 200, 100, SearchParams())
    bs.new_game(0, 5, B.KO_POSITIONAL, False, 0.5, 100)
    setup_moves(bs, 0, CAPTURE_SETUP)
    assert bs.to_move(0) == B.BLACK
    search(bs, 0, 120)
    r = bs.root_result(0)
    best = int(r.moves[np.argmax(r.visits)])
    assert best == 2 * 5 + 3  # (3, 2) takes the six white stones in atari
    assert r.visits.max() > 0.5 * r.visits.sum()
    assert r.root_wl > 0.5  # and black knows it is winning


def test_search_leaves_board_and_superko_table_untouched():
    bs = BatchSearch(2, 5, 5, 100, 100)
    for g in range(2):
        bs.new_game(g, 5, B.KO_SITUATIONAL, g == 1, 7.0, 100)
        setup_moves(bs, g, CAPTURE_SETUP[:6])
    boards, hists = bs.boards.copy(), bs.hists.copy()
    for g in range(2):
        bs.start_search(g, 80, full=True, noise=True, root_temperature=1.25)
    while bs.searching(0) or bs.searching(1):
        bs.step(stone_count_evaluator)
    assert np.array_equal(bs.boards, boards)
    assert np.array_equal(bs.hists, hists)


def test_game_played_by_search_matches_the_reference_game():
    bs = BatchSearch(1, 5, 5, 30, 60)
    bs.new_game(0, 5, B.KO_POSITIONAL, False, 7.0, 60)
    ref = Game(5, max_moves=60)
    rng = np.random.default_rng(3)
    null = NullEvaluator(5)
    while not bs.game_over(0):
        search(bs, 0, 30, evaluate=lambda s, gl, _games: null.evaluate(s, gl))
        r = bs.root_result(0)
        move = int(r.moves[rng.choice(len(r.moves), p=r.visits / r.visits.sum())])
        colour = bs.to_move(0)
        bs.play(0, move)
        ref.play(colour, None if move == 25 else (move % 5, move // 5))
        check_tree(bs, 0)
    assert ref.is_over
    assert np.array_equal(bs.board(0)[: B.HEADER + B.area_len(5)], ref.board[: B.HEADER + B.area_len(5)])
    assert sorted(bs.hists[0][bs.hists[0] != 0]) == sorted(ref.hist[ref.hist != 0])


def test_tree_reuse_keeps_the_chosen_childs_statistics():
    bs = BatchSearch(1, 5, 5, 200, 100)
    bs.new_game(0, 5, B.KO_POSITIONAL, False, 0.5, 100)
    setup_moves(bs, 0, CAPTURE_SETUP)
    search(bs, 0, 150)
    check_tree(bs, 0)
    r = bs.root_result(0)
    move = int(r.moves[np.argmax(r.visits)])
    ni, nf, ec, em = bs.node_i[0], bs.node_f[0], bs.e_child[0], bs.e_move[0]
    first, count = ni[0, tree.N_FIRST], ni[0, tree.N_COUNT]
    child = int(ec[first + list(em[first:first + count]).index(move)])
    want_root = (ni[child, tree.N_VISITS], nf[child, tree.N_USUM], nf[child, tree.N_SSUM])
    cf, cc = ni[child, tree.N_FIRST], ni[child, tree.N_COUNT]
    want_kids = {int(em[e]): (ni[ec[e], tree.N_VISITS], nf[ec[e], tree.N_USUM]) for e in range(cf, cf + cc) if ec[e] >= 0}
    want_priors = {int(em[e]): float(bs.e_prior[0, e]) for e in range(cf, cf + cc)}
    assert want_root[0] > 10 and len(want_kids) > 3

    bs.play(0, move)
    assert bs.game_i[0, tree.G_NODES] == want_root[0]  # every node of the subtree, nothing else
    assert (ni[0, tree.N_VISITS], nf[0, tree.N_USUM], nf[0, tree.N_SSUM]) == want_root
    assert ni[0, tree.N_PARENT] == -1
    first, count = ni[0, tree.N_FIRST], ni[0, tree.N_COUNT]
    got_kids = {int(em[e]): (ni[ec[e], tree.N_VISITS], nf[ec[e], tree.N_USUM]) for e in range(first, first + count) if ec[e] >= 0}
    got_priors = {int(em[e]): float(bs.e_prior[0, e]) for e in range(first, first + count)}
    assert got_kids == want_kids and got_priors == want_priors
    check_tree(bs, 0)
    # The search goes on from the kept visits.
    search(bs, 0, 150)
    assert bs.root_visits(0) == 150
    check_tree(bs, 0)


def neighbour_policy_evaluator(seen: list):
    """Equivariant hand-made policy: prefer points next to own stones (a local, symmetric rule)."""

    def evaluate(spatial, glob, games=None):
        seen.append(spatial.copy())
        own = spatial[:, 1]
        nb = np.zeros_like(own)
        nb[:, 1:, :] += own[:, :-1, :]
        nb[:, :-1, :] += own[:, 1:, :]
        nb[:, :, 1:] += own[:, :, :-1]
        nb[:, :, :-1] += own[:, :, 1:]
        p = len(own[0])
        policy = np.concatenate([np.exp(nb).reshape(len(own), p * p), np.ones((len(own), 1))], axis=1)
        policy = (policy / policy.sum(axis=1, keepdims=True)).astype(np.float32)
        value = np.full((len(own), 3), 1 / 3, dtype=np.float32)
        return EvalOutput(policy, value, np.zeros(len(own), dtype=np.float32))

    return evaluate


def test_random_symmetries_map_features_and_policy_back():
    n, pos_len, games = 5, 7, 24
    bs = BatchSearch(games, n, pos_len, 10, 50)
    for g in range(games):
        bs.new_game(g, n, B.KO_POSITIONAL, False, 7.0, 50)
        setup_moves(bs, g, [(0, 0), (4, 1), (1, 0), (2, 3), (3, 4)])  # white to move
        bs.start_search(g, 1)
    seen: list = []
    assert bs.step(neighbour_policy_evaluator(seen)) == games
    syms = bs.leaves[:games, 2]
    assert len(set(syms.tolist())) >= 4  # random symmetries really vary
    ref_spatial, ref_glob = features.encode(bs.board(0), bs.hists[0], 7.0, pos_len)
    ref_policy = neighbour_policy_evaluator([])(ref_spatial[None], ref_glob[None]).policy[0]
    for k in range(games):
        g, sym = int(bs.leaves[k, 0]), int(syms[k])
        want = symmetry.apply_planes(ref_spatial[:, :n, :n], sym)
        assert np.array_equal(seen[0][k][:, :n, :n], want)
        assert not seen[0][k][:, n:, :].any() and not seen[0][k][:, :, n:].any()
        first, count = bs.node_i[g, 0, tree.N_FIRST], bs.node_i[g, 0, tree.N_COUNT]
        moves = bs.e_move[g, first:first + count]
        expected = np.array([ref_policy[(m // n) * pos_len + m % n] if m < n * n else ref_policy[-1] for m in moves])
        assert np.allclose(bs.e_prior[g, first:first + count], expected / expected.sum(), atol=1e-6)


def test_terminal_positions_are_scored_without_the_net():
    bs = BatchSearch(1, 5, 5, 300, 100)
    bs.new_game(0, 5, B.KO_POSITIONAL, False, 0.5, 100)
    setup_moves(bs, 0, [(2, 2), None])  # black stone, white passed: black's pass ends the game
    calls = []

    def evaluate(spatial, glob, games=None):
        calls.append(len(spatial))
        return NullEvaluator(5).evaluate(spatial, glob)

    search(bs, 0, 300, evaluate=evaluate)
    r = bs.root_result(0)
    pass_child = list(r.moves).index(25)
    assert r.visits[pass_child] == r.visits.max()  # ending the game won is the best move
    assert r.q[pass_child] == pytest.approx(1.0 + 0.1 * 2 / np.pi * np.arctan(24.5 / 2.5))  # black wins by 24.5
    assert sum(calls) < 300 - r.visits[pass_child] + 1  # the pass-pass leaf was revisited without evaluations


def test_full_search_noise_and_forced_playouts_spread_root_visits():
    bs = BatchSearch(2, 5, 5, 200, 100)
    for g in range(2):
        bs.new_game(g, 5, B.KO_POSITIONAL, False, 0.5, 100)
        setup_moves(bs, g, CAPTURE_SETUP)
    bs.start_search(0, 150)
    bs.start_search(1, 150, full=True, noise=True, root_temperature=1.25)
    while bs.searching(0) or bs.searching(1):
        bs.step(stone_count_evaluator)
    plain, full = bs.root_result(0), bs.root_result(1)
    total = full.visits.sum()
    # Every visited root child of the full search got its forced playouts (up to one short, taken last).
    forced = np.sqrt(2.0 * full.priors * total)
    visited = full.visits > 0
    assert np.all(full.visits[visited] >= np.floor(forced[visited]) - 1)
    assert not np.allclose(full.priors, full.priors[0])  # noise made the uniform priors uneven
    assert np.allclose(plain.priors, plain.priors[0])
    target = full.target(True, 1.1)
    best = np.argmax(full.visits)
    assert full.moves[best] == 13 and target[best] == full.visits[best]
    # Pruning takes the forced visits of the losing moves out of the policy target.
    assert np.all(target <= full.visits) and target.sum() < 0.9 * full.visits.sum()
    assert target[best] / target.sum() > full.visits[best] / full.visits.sum()
