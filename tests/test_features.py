"""Net input features: known values, symmetry equivariance, batching, padding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zeroloop import features as F
from zeroloop import symmetry as S
from zeroloop.go import board as B
from zeroloop.go.game import BLACK, WHITE, Game
from zeroloop.go.rules import Rules

from test_rules import KO, TRIPLE_KO_CYCLE, kos, left, position


def random_game(size: int, rules: Rules, moves: int, seed: int) -> Game:
    """A game of random legal moves (passes now and then)."""
    rng = np.random.default_rng(seed)
    g = Game(size, rules)
    mask = np.zeros(size * size + 1, dtype=np.int64)
    for _ in range(moves):
        if g.passes >= 2:
            break
        B.legal_mask(g.board, g.hist, g.to_move, mask)
        points = np.flatnonzero(mask[:-1])
        if len(points) == 0 or rng.random() < 0.05:
            g.play(g.to_move, None)
        else:
            i = int(rng.choice(points))
            g.play(g.to_move, (i % size, i // size))
    return g


def encode(g: Game, pos_len: int | None = None):
    return F.encode(g.board, g.hist, g.rules.komi, pos_len or g.size)


def transformed(g: Game, sym: int) -> Game:
    """The same game with every move moved by sym."""
    n = g.size
    perm = S.index_map(sym, n)[:-1]
    image = np.empty(n * n, dtype=np.int64)
    image[perm] = np.arange(n * n)  # image[j]: where point j goes
    out = Game(n, g.rules)
    for colour, move in g.moves:
        if move is None:
            out.play(colour, None)
        else:
            i = int(image[move[1] * n + move[0]])
            out.play(colour, (i % n, i // n))
    return out


rules_st = st.sampled_from([Rules("simple"), Rules("positional"), Rules("situational", True), Rules("positional", True, 6.0)])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), size=st.integers(2, 9), moves=st.integers(0, 120), sym=st.integers(0, 7),
       rules=rules_st)
def test_features_of_a_transformed_game_are_the_transformed_features(seed, size, moves, sym, rules):
    g = random_game(size, rules, moves, seed)
    spatial, glob = encode(g)
    t_spatial, t_glob = encode(transformed(g, sym))
    np.testing.assert_array_equal(t_spatial, S.apply_planes(spatial, sym))
    np.testing.assert_array_equal(t_glob, glob)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), count=st.integers(1, 12), rules=rules_st)
def test_encode_batch_equals_one_by_one(seed, count, rules):
    rng = np.random.default_rng(seed)
    pos_len = 9
    games = [random_game(int(rng.integers(5, 10)), rules, int(rng.integers(0, 90)), seed + i) for i in range(count)]
    width = max(len(g.board) for g in games)
    boards = np.zeros((count, width), dtype=np.int64)
    hists = np.zeros((count, max(len(g.hist) for g in games)), dtype=np.int64)
    # Tables of one size per batch: re-insert each game's keys into a common width.
    for i, g in enumerate(games):
        boards[i, :len(g.board)] = g.board
        for key in g.hist[g.hist != 0]:
            B.hist_add(hists[i], key)
    komis = rng.choice([-7.5, 0.0, 5.0, 7.5], size=count)
    rows = rng.permutation(count)[: max(1, count - 1)]
    spatial = np.full((len(rows), F.NUM_SPATIAL, pos_len, pos_len), 9.0, dtype=np.float32)
    glob = np.full((len(rows), F.NUM_GLOBAL), 9.0, dtype=np.float32)
    F.encode_batch(boards, hists, komis, rows, spatial, glob)
    for k, r in enumerate(rows):
        one_spatial, one_glob = F.encode(games[r].board, games[r].hist, komis[r], pos_len)
        np.testing.assert_array_equal(spatial[k], one_spatial)
        np.testing.assert_array_equal(glob[k], one_glob)


def test_smaller_board_is_padded_and_masked():
    g = random_game(7, Rules(), 60, seed=5)
    spatial, glob = encode(g, pos_len=9)
    mask = np.zeros((9, 9))
    mask[:7, :7] = 1
    np.testing.assert_array_equal(spatial[0], mask)
    assert not spatial[:, 7:, :].any() and not spatial[:, :, 7:].any()
    small, small_glob = encode(g)
    np.testing.assert_array_equal(spatial[:, :7, :7], small)
    np.testing.assert_array_equal(glob[:9], small_glob[:9])
    # Only the komi wave depends on the board area, and both boards are odd.
    np.testing.assert_array_equal(glob, small_glob)
    with pytest.raises(ValueError):
        encode(g, pos_len=6)


def test_stone_and_liberty_planes_from_the_movers_view():
    g = position("""
        XOX..
        X....
        ..OO.
        .....
        .....""", to_move=WHITE)
    spatial, glob = encode(g)
    own, opp = spatial[1], spatial[2]
    assert own[0, 1] == 1 and own[2, 2] == 1 and own[2, 3] == 1 and own.sum() == 3  # white's
    assert opp[0, 0] == 1 and opp[1, 0] == 1 and opp[0, 2] == 1 and opp.sum() == 3
    assert spatial[3][0, 1] == 1 and spatial[3].sum() == 1  # the white stone in atari
    assert spatial[4][0, 0] == 1 and spatial[4][1, 0] == 1 and spatial[4][0, 2] == 1
    assert spatial[4].sum() == 3  # black's stones: 2 liberties each; white's pair has 6
    assert spatial[5].sum() == 0 and spatial[6].sum() == 0
    assert glob[5] == 7.0 / 20  # komi from white's view
    g.to_move = BLACK
    assert encode(g)[1][5] == -7.0 / 20


def test_ko_plane_marks_simple_ko_and_superko_bans():
    g = position(KO, ko_rule="simple")
    g.play(BLACK, (3, 2))
    spatial, _ = encode(g)
    assert spatial[6][2, 2] == 1 and spatial[6].sum() == 1
    g = kos("positional", "BWW")
    for colour, move in TRIPLE_KO_CYCLE[:-1]:
        g.play(colour, move)
    spatial, _ = encode(g)
    x, y = TRIPLE_KO_CYCLE[-1][1]
    assert spatial[6][y, x] == 1  # the superko ban
    lx, ly = left(0)
    assert spatial[6][ly, lx] == 1  # and the ordinary ko ban
    assert spatial[6].sum() == 2


def test_ko_plane_marks_a_multi_stone_suicide_banned_by_superko():
    g = position("""
        ..O..
        OO...
        .....
        .....
        .....""", ko_rule="positional", suicide=True)
    g.play(BLACK, (0, 0))
    g.play(WHITE, None)
    spatial, _ = encode(g)
    assert spatial[6][0, 1] == 1 and spatial[6].sum() == 1


def test_last_moves_and_pass_features():
    g = Game(5)
    for move in ((0, 0), (1, 1), None, (2, 2), (3, 3), None):
        g.play(g.to_move, move)
    spatial, glob = encode(g)
    # Most recent first: pass, (3,3), (2,2), pass, (1,1).
    assert list(glob[:5]) == [1, 0, 0, 1, 0]
    assert spatial[8][3, 3] == 1 and spatial[9][2, 2] == 1 and spatial[11][1, 1] == 1
    assert spatial[7].sum() == 0 and spatial[10].sum() == 0
    assert spatial[7:12].sum() == 3


@pytest.mark.parametrize("ko_rule,suicide,expected", [("simple", False, (0, 0, 0)), ("positional", False, (1, 0.5, 0)),
                                                       ("situational", True, (1, -0.5, 1))])
def test_rule_flags(ko_rule, suicide, expected):
    _, glob = encode(Game(5, Rules(ko_rule, suicide)))
    assert tuple(glob[6:9]) == expected


@pytest.mark.parametrize("size,komi,wave", [(9, 7.0, 0.0), (9, 7.5, 0.5), (9, 6.5, -0.5), (9, 8.0, 0.0), (9, 8.5, -0.5),
                                            (8, 7.0, 0.0), (8, 7.5, -0.5), (8, 6.5, 0.5)])
def test_komi_parity_wave(size, komi, wave):
    g = Game(size, Rules(komi=komi))
    g.play(BLACK, (0, 0))  # white to move: self komi = +komi
    assert encode(g)[1][9] == pytest.approx(wave)
