"""Neural-net inputs from a position, KataGo-style (a subset of inputs v7).

Spatial planes, from the view of the player to move (``NUM_SPATIAL``):
    0  on board (the mask: a board smaller than the net is padded with 0)
    1  own stones            2  opponent stones
    3  stones in atari (1 liberty)   4  2 liberties   5  3 liberties
    6  points the mover may not play because of ko or superko
    7-11  the last 5 moves, most recent first

Global features (``NUM_GLOBAL``):
    0-4  which of the last 5 moves were passes
    5    komi from the mover's view / 20
    6,7  ko rule (simple 0,0; positional 1,0.5; situational 1,-0.5)
    8    multi-stone suicide legal
    9    komi parity wave (where a draw is possible), as KataGo's input 18

The board sits at the top-left of a pos_len x pos_len grid. Encoding runs
compiled over a batch of board arrays (``encode_batch``); ``encode`` is the
one-position convenience.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from zeroloop.go import board as B

FEATURE_VERSION = 1
NUM_SPATIAL = 12
NUM_GLOBAL = 10


@njit(cache=True)
def _komi_wave(self_komi, n):
    # Where komi lands between two drawable values: 0 at a drawable komi.
    if (n * n) % 2 == 0:
        floor = np.floor(self_komi / 2.0) * 2.0
    else:
        floor = np.floor((self_komi - 1.0) / 2.0) * 2.0 + 1.0
    delta = self_komi - floor
    if delta < 0.5:
        return delta
    if delta < 1.5:
        return 1.0 - delta
    return delta - 2.0


@njit(cache=True)
def encode_into(b, t, komi, spatial, glob):
    """Write one position's features into spatial (C,P,P) and glob (G,)."""
    n = b[B.H_SIZE]
    s = n + 2
    co = B.HEADER
    me = b[B.H_TO_MOVE]
    spatial[:] = 0.0
    glob[:] = 0.0
    for y in range(n):
        for x in range(n):
            p = (y + 1) * s + x + 1
            spatial[0, y, x] = 1.0
            c = b[co + p]
            if c == B.EMPTY:
                if B.is_ko_banned(b, t, p, me):
                    spatial[6, y, x] = 1.0
                continue
            spatial[1 if c == me else 2, y, x] = 1.0
            libs = B.group_libs(b, p)
            if libs <= 3:
                spatial[2 + libs, y, x] = 1.0
    for i in range(B.N_LAST):
        m = b[B.H_LAST + i]
        if m == B.PASS:
            glob[i] = 1.0
        elif m >= 0:
            spatial[7 + i, m // s - 1, m % s - 1] = 1.0
    self_komi = komi if me == B.WHITE else -komi
    glob[5] = self_komi / 20.0
    ko = b[B.H_KO_RULE]
    if ko == B.KO_POSITIONAL:
        glob[6] = 1.0
        glob[7] = 0.5
    elif ko == B.KO_SITUATIONAL:
        glob[6] = 1.0
        glob[7] = -0.5
    glob[8] = 1.0 if b[B.H_MULTI_SUICIDE] == 1 else 0.0
    glob[9] = _komi_wave(self_komi, n)


@njit(cache=True)
def encode_batch(boards, hists, komis, rows, spatial, glob):
    """Encode boards[rows[i]] into spatial[i], glob[i] for each i."""
    for i in range(rows.shape[0]):
        g = rows[i]
        encode_into(boards[g], hists[g], komis[g], spatial[i], glob[i])


def encode(b: np.ndarray, t: np.ndarray, komi: float, pos_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Features of one position: (NUM_SPATIAL, pos_len, pos_len), (NUM_GLOBAL,)."""
    n = int(b[B.H_SIZE])
    if n > pos_len:
        raise ValueError(f"board size {n} exceeds the net's pos_len {pos_len}")
    spatial = np.zeros((NUM_SPATIAL, pos_len, pos_len), dtype=np.float32)
    glob = np.zeros(NUM_GLOBAL, dtype=np.float32)
    encode_into(b, t, float(komi), spatial, glob)
    return spatial, glob
