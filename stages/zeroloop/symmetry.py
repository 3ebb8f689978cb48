"""The 8 symmetries of the square, on feature planes and policy vectors.

A symmetry is an int 0..7 whose bits say: 1 flip rows, 2 flip columns,
4 transpose, applied in that order. It acts on the last two axes of a plane
array (numpy or torch, any leading shape) and on a policy vector of
``pos_len*pos_len + 1`` entries (the board points row-major, then pass,
which no symmetry moves). Applying ``inverse(s)`` after ``s`` is the
identity, and the policy of a transformed position is the transformed
policy, so search and training can use a random symmetry per evaluation or
batch and map the outputs back.
"""

from __future__ import annotations

import numpy as np

NUM_SYMMETRIES = 8


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def apply_planes(x, sym: int):
    """Transform the last two (square) axes of x by symmetry sym."""
    if _is_torch(x):
        dims = []
        if sym & 1:
            dims.append(-2)
        if sym & 2:
            dims.append(-1)
        if dims:
            x = x.flip(dims)
        if sym & 4:
            x = x.transpose(-1, -2)
        return x
    if sym & 1:
        x = np.flip(x, axis=-2)
    if sym & 2:
        x = np.flip(x, axis=-1)
    if sym & 4:
        x = np.swapaxes(x, -1, -2)
    return x


def apply_policy(policy, sym: int, pos_len: int):
    """Transform policy vectors (..., pos_len*pos_len + 1) by symmetry sym."""
    area = pos_len * pos_len
    lead = policy.shape[:-1]
    board = apply_planes(policy[..., :area].reshape(*lead, pos_len, pos_len), sym)
    if _is_torch(policy):
        import torch

        return torch.cat([board.reshape(*lead, area), policy[..., area:]], dim=-1)
    return np.concatenate([board.reshape(*lead, area), policy[..., area:]], axis=-1)


def _compose_table() -> tuple[list[int], list[list[int]]]:
    probe = np.arange(9).reshape(3, 3)
    images = [apply_planes(probe, s).tobytes() for s in range(NUM_SYMMETRIES)]
    compose = [[images.index(apply_planes(apply_planes(probe, a), b).tobytes()) for b in range(8)] for a in range(8)]
    inverse = [row.index(0) for row in compose]
    return inverse, compose


_INVERSE, _COMPOSE = _compose_table()


def inverse(sym: int) -> int:
    """The symmetry that undoes sym."""
    return _INVERSE[sym]


def compose(first: int, then: int) -> int:
    """The single symmetry equal to applying first, then then."""
    return _COMPOSE[first][then]


def index_map(sym: int, pos_len: int) -> np.ndarray:
    """perm such that apply_policy(p, sym)[i] == p[perm[i]] (pass included)."""
    ids = np.arange(pos_len * pos_len + 1)
    return apply_policy(ids, sym, pos_len)
