"""Neural-net inputs from a position, KataGo-style: two versions.

Version 1 (the default, ``FEATURE_VERSION``) is a subset of KataGo's inputs
v7. Spatial planes, from the view of the player to move (``NUM_SPATIAL``):
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

Version 2 (``KATAGO_V7``) is KataGo's inputs v7 plane for plane (22
spatial, 19 global, KataGo's indices), with the inputs for rules zeroloop
does not play left 0 (encore planes 7, 8, 20, 21; territory scoring, tax,
encore, playout doubling and button globals 9-13, 15-17). Beyond version 1:
    spatial 14-16  stones of ladder-captured or ladderable chains, now and
                   1 and 2 moves ago (``zeroloop.go.ladders``)
    spatial 17     moves that start a working ladder on an opponent chain
    spatial 18,19  the mover's / the opponent's area as KataGo scores it for
                   the net (pass-alive area, one-colour regions, stones;
                   ``passalive.scoring_area``)
    global 14      a pass would end the game (the last move was a pass)
The ladder planes of earlier moves need the boards before the last and
the last two moves: callers pass them (the board itself where there is no
history, as KataGo does).

The board sits at the top-left of a pos_len x pos_len grid. Encoding runs
compiled over a batch of board arrays (``encode_batch``); ``encode`` is the
one-position convenience.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from zeroloop.go import board as B
from zeroloop.go import ladders, passalive

FEATURE_VERSION = 1  # the default
NUM_SPATIAL = 12
NUM_GLOBAL = 10
KATAGO_V7 = 2
# version -> (spatial planes, global features)
SHAPES = {FEATURE_VERSION: (NUM_SPATIAL, NUM_GLOBAL), KATAGO_V7: (22, 19)}
NAMES = {"zeroloop": FEATURE_VERSION, "katago-v7": KATAGO_V7}


def shape(version: int) -> tuple[int, int]:
    """(spatial planes, global features) of a feature version; ValueError for an unknown one."""
    if version not in SHAPES:
        known = ", ".join(f"{v} ({k})" for k, v in NAMES.items())
        raise ValueError(f"unknown feature version {version!r}: this zeroloop encodes {known}")
    return SHAPES[version]


def parse(text: str | int) -> int:
    """A feature version from its name ('zeroloop', 'katago-v7') or number."""
    if isinstance(text, str) and text.strip().lower() in NAMES:
        return NAMES[text.strip().lower()]
    try:
        version = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"unknown feature set {text!r}: choose one of {', '.join(NAMES)}") from None
    shape(version)
    return version


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
def work_len(n):
    """int64s of scratch ``encode_v7_into`` needs for boards up to n (``encode_version_into``'s work)."""
    return ladders.workspace_len(n) + n * n + passalive.WORK_PER_POINT * (n + 2) * (n + 2) + 1


@njit(cache=True)
def encode_v7_into(b, prev1, prev2, t, komi, spatial, glob, work):
    """KataGo's inputs v7 of b into spatial (22,P,P) and glob (19,).

    prev1, prev2: the boards before the last move and the one before it
    (read only where b's move history has those moves). work: int64 scratch
    of at least ``work_len(n)``, reused from call to call.
    """
    spatial[:] = 0.0
    glob[:] = 0.0
    encode_into(b, t, komi, spatial[:12], glob[:10])
    # version 1 keeps the move planes at 7-11 and the komi wave at 9: move them to KataGo's 9-13 and 18
    for i in range(4, -1, -1):
        spatial[9 + i] = spatial[7 + i]
    spatial[7] = 0.0
    spatial[8] = 0.0
    glob[18] = glob[9]
    glob[9] = 0.0
    n = b[B.H_SIZE]
    s = n + 2
    me = b[B.H_TO_MOVE]
    lw = ladders.workspace_len(n)
    ladders.ladder_planes(b, work, spatial[14], spatial[17], me)
    p1 = b if b[B.H_LAST] == B.NO_MOVE else prev1
    p2 = p1 if b[B.H_LAST + 1] == B.NO_MOVE else prev2
    none = spatial[0, :0, :0]
    ladders.ladder_planes(p1, work, spatial[15], none, me)
    ladders.ladder_planes(p2, work, spatial[16], none, me)
    area = work[lw:lw + n * n]
    passalive.scoring_area(b, area, work[lw + n * n:])
    mine = 1 if me == B.BLACK else -1
    for y in range(n):
        for x in range(n):
            a = area[y * n + x]
            if a == mine:
                spatial[18, y, x] = 1.0
            elif a == -mine:
                spatial[19, y, x] = 1.0
    if b[B.H_PASSES] >= 1:
        glob[14] = 1.0


@njit(cache=True)
def encode_version_into(version, b, prev1, prev2, t, komi, spatial, glob, work):
    """Features of a version (FEATURE_VERSION or KATAGO_V7) into spatial and glob (work: ``work_len``, v7 only)."""
    if version == KATAGO_V7:
        encode_v7_into(b, prev1, prev2, t, komi, spatial, glob, work)
    else:
        encode_into(b, t, komi, spatial, glob)


@njit(cache=True)
def encode_batch(boards, hists, komis, rows, spatial, glob):
    """Encode boards[rows[i]] into spatial[i], glob[i] for each i."""
    for i in range(rows.shape[0]):
        g = rows[i]
        encode_into(boards[g], hists[g], komis[g], spatial[i], glob[i])


def encode(b: np.ndarray, t: np.ndarray, komi: float, pos_len: int, version: int = FEATURE_VERSION,
           prev: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features of one position: (spatial planes, pos_len, pos_len), (globals,) of the version.

    prev: the boards before the last move and before the one earlier
    (version 2's ladder planes; default b itself, as where there is no history).
    """
    n = int(b[B.H_SIZE])
    if n > pos_len:
        raise ValueError(f"board size {n} exceeds the net's pos_len {pos_len}")
    ns, ng = shape(version)
    spatial = np.zeros((ns, pos_len, pos_len), dtype=np.float32)
    glob = np.zeros(ng, dtype=np.float32)
    p1, p2 = prev if prev is not None else (b, b)
    work = np.empty(int(work_len(n)) if version == KATAGO_V7 else 1, np.int64)
    encode_version_into(version, b, p1, p2, t, float(komi), spatial, glob, work)
    return spatial, glob
