"""Pass-alive stones and territory (Benson's algorithm), compiled with numba.

A chain is pass-alive when the opponent cannot capture it even if its owner
passes every move from now on; pass-alive territory is an area the opponent
can never live in. Benson's algorithm finds them for one colour ("pla"):

- A *region* is a maximal connected set of points that are empty or hold
  the opponent's stones (and contains an empty point).
- A region is *vital* to a pla chain when every empty point of it is a
  liberty of that chain (every point, where multi-stone suicide is legal:
  the opponent's stones there could then vanish by their own move).
- Repeatedly drop every chain with fewer than two vital regions, and with
  it every region that borders a dropped chain. The chains left are
  pass-alive.
- A region bordered only by pass-alive chains, with at most one point not
  adjacent to a pla stone (too small for the opponent to make two eyes in),
  is pass-alive territory; the opponent's stones in it are dead.

This follows KataGo's ``Board::calculateAreaForPla`` (without its "big
territory" options): a self-play game whose every point is pass-alive for
one side or the other is over, and its result and ownership targets are
that area (KataGo's ``endGameIfAllPassAlive``), the same as if the game were
played on until the owners captured what is dead, only shorter.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from zeroloop.go import board as B


@njit(cache=True, inline="always")
def _adjacent_to_chain(b, hd, p, pla, head):
    s = b[B.H_STRIDE]
    for d in range(4):
        q = p + (-1 if d == 0 else 1 if d == 1 else -s if d == 2 else s)
        if b[B.HEADER + q] == pla and b[hd + q] == head:
            return True
    return False


@njit(cache=True, inline="always")
def _adjacent_to_colour(b, p, pla):
    s = b[B.H_STRIDE]
    for d in range(4):
        q = p + (-1 if d == 0 else 1 if d == 1 else -s if d == 2 else s)
        if b[B.HEADER + q] == pla:
            return True
    return False


WORK_PER_POINT = 13  # int64 scratch per grid point used by _mark_area_for


@njit(cache=True)
def _mark_area_for(b, pla, out, sign, work, big):
    """Set out[index] = sign on pla's pass-alive stones and territory (policy indices y*n+x).

    work: int64 scratch of WORK_PER_POINT * (n+2)**2 + 1 (one allocation for both colours).
    big: also KataGo's big territories: an empty region bordered only by pla
    and no chain Benson dropped is pla's whatever its size, and one bordered
    only by pla but also by a dropped chain is pla's where out is still 0.
    """
    n = b[B.H_SIZE]
    s = n + 2
    area = s * s
    co = B.HEADER
    hd = B._head(b)
    nx = B._next(b)
    opp = 3 - pla
    suicide = b[B.H_MULTI_SUICIDE] == 1
    region = work[0:area]
    points = work[area:2 * area]  # every region's points, one region after another
    start = work[2 * area:3 * area + 1]
    vital = work[3 * area + 1:7 * area + 1].reshape((area, 4))  # the chain heads a region is vital to
    nvital = work[7 * area + 1:8 * area + 1]
    internal = work[8 * area + 1:9 * area + 1]  # points not adjacent to pla, counted up to 2
    count = work[9 * area + 1:10 * area + 1]  # vital regions per chain head
    dead = work[10 * area + 1:11 * area + 1]  # by chain head
    spoiled = work[11 * area + 1:12 * area + 1]  # regions bordering a dead chain
    has_opp = work[12 * area + 1:13 * area + 1]  # regions holding an opponent's stone
    region[:] = -1
    internal[:] = 0
    count[:] = 0
    dead[:] = 0
    spoiled[:] = 0
    has_opp[:] = 0
    has_pla = False
    nreg = 0
    total = 0
    for y in range(n):
        for x in range(n):
            p = (y + 1) * s + x + 1
            cp = b[co + p]
            if cp == pla:
                has_pla = True
            if cp != B.EMPTY or region[p] >= 0:
                continue
            r = nreg
            nreg += 1
            start[r] = total
            k = 0  # candidates: the chains next to the first point, filtered by every later point
            for d in range(4):
                q = p + (-1 if d == 0 else 1 if d == 1 else -s if d == 2 else s)
                if b[co + q] == pla:
                    h = b[hd + q]
                    seen = False
                    for j in range(k):
                        if vital[r, j] == h:
                            seen = True
                    if not seen:
                        vital[r, k] = h
                        k += 1
            region[p] = r
            points[total] = p
            total += 1
            i = start[r]
            while i < total:
                q = points[i]
                i += 1
                if k > 0 and (suicide or b[co + q] == B.EMPTY):
                    kept = 0
                    for j in range(k):
                        if _adjacent_to_chain(b, hd, q, pla, vital[r, j]):
                            vital[r, kept] = vital[r, j]
                            kept += 1
                    k = kept
                if internal[r] < 2 and not _adjacent_to_colour(b, q, pla):
                    internal[r] += 1
                if b[co + q] == opp:
                    has_opp[r] = 1
                for d in range(4):
                    t = q + (-1 if d == 0 else 1 if d == 1 else -s if d == 2 else s)
                    ct = b[co + t]
                    if (ct == B.EMPTY or ct == opp) and region[t] < 0:
                        region[t] = r
                        points[total] = t
                        total += 1
            nvital[r] = k
    start[nreg] = total
    if not has_pla:
        return
    # Benson's iteration: chains with fewer than two vital regions die, and so do the regions they border.
    for r in range(nreg):
        for j in range(nvital[r]):
            count[vital[r, j]] += 1
    changed = True
    while changed:
        changed = False
        for h in range(area):
            if b[co + h] != pla or b[hd + h] != h or dead[h] != 0 or count[h] >= 2:
                continue
            dead[h] = 1
            changed = True
            p = h
            while True:
                for d in range(4):
                    q = p + (-1 if d == 0 else 1 if d == 1 else -s if d == 2 else s)
                    r = region[q]
                    if r >= 0 and spoiled[r] == 0:
                        spoiled[r] = 1
                        for j in range(nvital[r]):
                            count[vital[r, j]] -= 1
                p = b[nx + p]
                if p == h:
                    break
    for y in range(n):
        for x in range(n):
            p = (y + 1) * s + x + 1
            if b[co + p] == pla and dead[b[hd + p]] == 0:
                out[y * n + x] = sign
    for r in range(nreg):
        if spoiled[r] == 0 and (internal[r] <= 1 or (big and has_opp[r] == 0)):
            for i in range(start[r], start[r + 1]):
                p = points[i]
                out[(p // s - 1) * n + p % s - 1] = sign
        elif big and has_opp[r] == 0:
            for i in range(start[r], start[r + 1]):
                p = points[i]
                if out[(p // s - 1) * n + p % s - 1] == 0:
                    out[(p // s - 1) * n + p % s - 1] = sign


@njit(cache=True, inline="always")
def _stone_free(b, p):
    """p is empty and none of its neighbours holds a stone."""
    if b[B.HEADER + p] != B.EMPTY:
        return False
    s = b[B.H_STRIDE]
    for d in range(4):
        c = b[B.HEADER + p + (-1 if d == 0 else 1 if d == 1 else -s if d == 2 else s)]
        if c == B.BLACK or c == B.WHITE:
            return False
    return True


@njit(cache=True)
def surely_unsettled(b):
    """A quick test, no allocation: two adjacent empty points with no stone next to either lie in one
    region with two points no owner's stone touches, so the board cannot be settled."""
    n = b[B.H_SIZE]
    s = n + 2
    for y in range(n):
        for x in range(n):
            p = (y + 1) * s + x + 1
            if _stone_free(b, p) and ((x + 1 < n and _stone_free(b, p + 1)) or (y + 1 < n and _stone_free(b, p + s))):
                return True
    return False


@njit(cache=True)
def pass_alive_area(b, out):
    """out[y*n+x] = +1 Black's pass-alive stone or territory, -1 White's, 0 neither.

    Returns the number of points that are neither (0: the position is settled).
    """
    n = b[B.H_SIZE]
    for i in range(n * n):
        out[i] = 0
    work = np.empty(WORK_PER_POINT * (n + 2) * (n + 2) + 1, dtype=np.int64)
    _mark_area_for(b, B.BLACK, out, 1, work, False)
    _mark_area_for(b, B.WHITE, out, -1, work, False)
    unsettled = 0
    for i in range(n * n):
        if out[i] == 0:
            unsettled += 1
    return unsettled


@njit(cache=True)
def scoring_area(b, out, work):
    """KataGo's area for its v7 net inputs (``calculateArea`` with every option on): out[y*n+x] = +1 Black, -1 White.

    Pass-alive stones and territory, then empty regions bordered by one
    colour only, then every other stone for its colour; dame stays 0.
    work: int64 scratch of WORK_PER_POINT * (n+2)**2 + 1.
    """
    n = b[B.H_SIZE]
    s = n + 2
    for i in range(n * n):
        out[i] = 0
    _mark_area_for(b, B.BLACK, out, 1, work, True)
    _mark_area_for(b, B.WHITE, out, -1, work, True)
    for y in range(n):
        for x in range(n):
            if out[y * n + x] == 0:
                c = b[B.HEADER + (y + 1) * s + x + 1]
                if c == B.BLACK:
                    out[y * n + x] = 1
                elif c == B.WHITE:
                    out[y * n + x] = -1


def settled_ownership(board: np.ndarray) -> np.ndarray | None:
    """(n*n,) int64 ownership from Black's view if every point is pass-alive area, else None."""
    if surely_unsettled(board):
        return None
    n = int(board[B.H_SIZE])
    out = np.zeros(n * n, dtype=np.int64)
    return out if pass_alive_area(board, out) == 0 else None
