"""The 8 symmetries of the square form a group acting on planes and policies."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zeroloop import symmetry as S

syms = st.integers(0, S.NUM_SYMMETRIES - 1)
pos_lens = st.integers(2, 19)


def planes(seed: int, lead: tuple[int, ...], pos_len: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((*lead, pos_len, pos_len)).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), pos_len=pos_lens, lead=st.lists(st.integers(1, 3), max_size=2))
def test_every_symmetry_and_its_inverse_is_the_identity(seed, pos_len, lead):
    x = planes(seed, tuple(lead), pos_len)
    policy = np.random.default_rng(seed + 1).standard_normal((*lead, pos_len * pos_len + 1))
    for s in range(S.NUM_SYMMETRIES):
        np.testing.assert_array_equal(S.apply_planes(S.apply_planes(x, s), S.inverse(s)), x)
        moved = S.apply_policy(policy, s, pos_len)
        np.testing.assert_array_equal(moved[..., -1], policy[..., -1])  # pass never moves
        np.testing.assert_array_equal(S.apply_policy(moved, S.inverse(s), pos_len), policy)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), pos_len=pos_lens, a=syms, b=syms)
def test_composition_closes_and_matches_applying_in_turn(seed, pos_len, a, b):
    x = planes(seed, (2,), pos_len)
    np.testing.assert_array_equal(S.apply_planes(S.apply_planes(x, a), b), S.apply_planes(x, S.compose(a, b)))


def test_group_table():
    # Identity, closure, inverses, associativity; 8 distinct images of a generic board.
    x = np.arange(25).reshape(5, 5)
    images = {S.apply_planes(x, s).tobytes() for s in range(8)}
    assert len(images) == 8
    for a in range(8):
        assert S.compose(0, a) == a == S.compose(a, 0)
        assert S.compose(a, S.inverse(a)) == 0 == S.compose(S.inverse(a), a)
        for b in range(8):
            for c in range(8):
                assert S.compose(S.compose(a, b), c) == S.compose(a, S.compose(b, c))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), pos_len=pos_lens, s=syms)
def test_policy_moves_with_the_board(seed, pos_len, s):
    # A policy that is a plane of the board plus pass transforms like the plane.
    board = planes(seed, (), pos_len)
    policy = np.concatenate([board.ravel(), [7.0]])
    moved = S.apply_policy(policy, s, pos_len)
    np.testing.assert_array_equal(moved[:-1].reshape(pos_len, pos_len), S.apply_planes(board, s))
    perm = S.index_map(s, pos_len)
    np.testing.assert_array_equal(moved, policy[perm])
    assert perm[-1] == pos_len * pos_len


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), pos_len=pos_lens, s=syms)
def test_torch_and_numpy_agree(seed, pos_len, s):
    x = planes(seed, (2, 3), pos_len)
    np.testing.assert_array_equal(S.apply_planes(torch.from_numpy(x), s).numpy(), S.apply_planes(x, s))
    p = np.random.default_rng(seed).standard_normal((4, pos_len * pos_len + 1)).astype(np.float32)
    np.testing.assert_array_equal(S.apply_policy(torch.from_numpy(p), s, pos_len).numpy(),
                                  S.apply_policy(p, s, pos_len))
