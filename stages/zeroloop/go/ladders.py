"""Ladders: which chains are caught in an inescapable atari, and the moves that catch them.

A chain with one liberty is *ladder captured* when the defender (its owner,
to move) cannot save it by any sequence of ataris answered by extensions
and captures; a chain with two liberties is *ladderable* when the attacker
can play on one of its liberties and so start a working ladder (that move is
a *working move*). This is the search behind KataGo's ladder inputs (v7
planes 14-17, ``Board::searchIsLadderCaptured``), reimplemented with the
same rules so that the planes agree point for point:

- The defender may extend on the chain's liberty or capture an adjacent
  chain in atari; the attacker plays on one of the two liberties. Multi-stone
  suicide is never a ladder move, superko is ignored, and the simple ko point
  binds either colour.
- At the root the defender may ignore a ko ban (every ko is assumed to work
  for the defender); a defender facing a ko point later escapes (ladders
  that hang on a ko are not counted).
- Shortcuts on the move lists: the defender escapes when its liberty
  surely gives three liberties and loses at once when it gives at most one
  and nothing can be captured; the attacker wins a double-ko death, drops
  a liberty move that would let the defender extend to three liberties
  where the two liberties are not adjacent, and tries the liberty that
  leaves the defender fewer connection liberties first.
- Bounded work: at most ``NODE_BUDGET`` moves per search (beyond it: not
  captured), at most ``n*n*3/2`` plies deep (beyond it: captured).

zeroloop's board has no undo, so each ply plays on a copy of the board
above it in a stack of boards. Every array a search needs is carved from
one int64 workspace (``workspace_len``) that callers allocate once and
reuse: nothing is allocated per position or per search.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from zeroloop.go import board as B

NODE_BUDGET = 25000  # KataGo's MAX_LADDER_SEARCH_NODE_BUDGET


@njit(cache=True, inline="always")
def _nb(p, d, s):
    return p + (-s if d == 0 else -1 if d == 1 else 1 if d == 2 else s)


@njit(cache=True)
def max_plies(n):
    return n * n * 3 // 2 + 1


@njit(cache=True)
def workspace_len(n):
    """int64s of workspace ``ladder_planes`` needs for boards of size up to n."""
    d = max_plies(n)
    return (d + 1) * B.board_len(n) + (4 * (n + 2) * (n + 2) + 4 * d) + 3 * (d + 1) + 2 * n * n


@njit(cache=True)
def _carve(work, n):
    """(board stack, move buffer, ply arrays (3, d+1), solved chain heads, their values) from work."""
    d = max_plies(n)
    blen = B.board_len(n)
    a = (d + 1) * blen
    stack = work[:a].reshape((d + 1, blen))
    nbuf = 4 * (n + 2) * (n + 2) + 4 * d
    buf = work[a:a + nbuf]
    a += nbuf
    plies = work[a:a + 3 * (d + 1)].reshape((3, d + 1))
    a += 3 * (d + 1)
    heads = work[a:a + n * n]
    values = work[a + n * n:a + 2 * n * n]
    return stack, buf, plies, heads, values


@njit(cache=True, inline="always")
def _libs_of(b, p):
    return b[B._libs(b) + b[B._head(b) + p]]


@njit(cache=True)
def _append_new(buf, start, end, q):
    """buf[start:end] with q appended unless already there: the new end (-1: buf is full)."""
    for j in range(start, end):
        if buf[j] == q:
            return end
    if end >= buf.shape[0]:
        return -1
    buf[end] = q
    return end + 1


@njit(cache=True)
def _add_liberties(b, p, buf, start, idx):
    """Append the chain at p's liberties not already in buf[start:idx+found]; return how many (-1: buf full)."""
    s = b[B.H_STRIDE]
    co = B.HEADER
    nx = B._next(b)
    end = idx
    cur = p
    while True:
        for d in range(4):
            q = _nb(cur, d, s)
            if b[co + q] == B.EMPTY:
                end = _append_new(buf, start, end, q)
                if end < 0:
                    return -1
        cur = b[nx + cur]
        if cur == p:
            break
    return end - idx


@njit(cache=True)
def _atari_neighbours(b, p, buf, start, idx, listing):
    """Enemy chains in atari next to the chain at p. listing: append their liberties to buf (deduplicated as
    by ``_add_liberties``) and return how many (-1: buf full); otherwise 1 at the first one (0: none)."""
    s = b[B.H_STRIDE]
    co = B.HEADER
    nx = B._next(b)
    opp = 3 - b[co + p]
    found = 0
    cur = p
    while True:
        for d in range(4):
            q = _nb(cur, d, s)
            if b[co + q] == opp and _libs_of(b, q) == 1:
                if not listing:
                    return 1
                k = _add_liberties(b, q, buf, start, idx + found)  # its one liberty, unless listed already
                if k < 0:
                    return -1
                found += k
        cur = b[nx + cur]
        if cur == p:
            break
    return found


@njit(cache=True)
def _immediate_libs(b, p):
    s = b[B.H_STRIDE]
    k = 0
    for d in range(4):
        if b[B.HEADER + _nb(p, d, s)] == B.EMPTY:
            k += 1
    return k


@njit(cache=True)
def _legal(b, p, c):
    """Empty, not the simple-ko point (for either colour), not suicide (multi-stone suicide counts as such)."""
    co = B.HEADER
    if b[co + p] != B.EMPTY or p == b[B.H_KO_POINT]:
        return False
    s = b[B.H_STRIDE]
    for d in range(4):
        q = _nb(p, d, s)
        cq = b[co + q]
        if cq == B.EMPTY:
            return True
        if cq == c:
            if _libs_of(b, q) > 1:
                return True
        elif cq == 3 - c:
            if _libs_of(b, q) == 1:
                return True
    return False


@njit(cache=True)
def _bound_libs_after(b, p, c):
    """(lower, upper) bounds on the liberties of c's stone played at p."""
    s = b[B.H_STRIDE]
    co = B.HEADER
    gs = B._gsize(b)
    hd = B._head(b)
    imm = 0
    caps = 0
    cap_libs = 0
    conn = 0
    max_conn = 0
    for d in range(4):
        q = _nb(p, d, s)
        cq = b[co + q]
        if cq == B.EMPTY:
            imm += 1
        elif cq == 3 - c:
            if _libs_of(b, q) == 1:
                caps += 1
                cap_libs += b[gs + b[hd + q]]
        elif cq == c:
            k = _libs_of(b, q) - 1
            conn += k
            if k > max_conn:
                max_conn = k
    return caps + (max_conn if max_conn > imm else imm), imm + cap_libs + conn


@njit(cache=True)
def _libs_after(b, p, c, cap):
    """Liberties of c's stone played at p, counted up to cap."""
    s = b[B.H_STRIDE]
    co = B.HEADER
    hd = B._head(b)
    nx = B._next(b)
    opp = 3 - c
    libs = np.empty(cap + 1, np.int64)
    nl = 0
    heads = np.full(4, -1, np.int64)
    nh = 0
    for d in range(4):
        q = _nb(p, d, s)
        cq = b[co + q]
        if cq == B.EMPTY or (cq == opp and _libs_of(b, q) == 1):
            libs[nl] = q
            nl += 1
            if nl >= cap:
                return cap
            if cq == opp:
                h = b[hd + q]
                if h != heads[0] and h != heads[1] and h != heads[2] and h != heads[3]:
                    heads[nh] = h
                    nh += 1
    joined = np.full(4, -1, np.int64)
    nj = 0
    for d in range(4):
        q = _nb(p, d, s)
        if b[co + q] != c:
            continue
        h = b[hd + q]
        if h == joined[0] or h == joined[1] or h == joined[2] or h == joined[3]:
            continue
        joined[nj] = h
        nj += 1
        cur = q
        while True:
            for e in range(4):
                r = _nb(cur, e, s)
                if r == p:
                    continue
                cr = b[co + r]
                empty = cr == B.EMPTY
                if cr == opp:
                    hr = b[hd + r]
                    empty = hr == heads[0] or hr == heads[1] or hr == heads[2] or hr == heads[3]
                if empty:
                    nl = _append_new(libs, 0, nl, r)  # libs has room for cap + 1: never full here
                    if nl >= cap:
                        return cap
            cur = b[nx + cur]
            if cur == q:
                break
    return nl


@njit(cache=True)
def _ko_capture(b, p, c):
    """c's move at p would capture exactly one stone, the only neighbour not c's opponent's or the wall."""
    co = B.HEADER
    s = b[B.H_STRIDE]
    if b[co + p] != B.EMPTY:
        return False
    opp = 3 - c
    found = -1
    for d in range(4):
        q = _nb(p, d, s)
        cq = b[co + q]
        if cq != B.WALL and cq != opp:
            return False
        if cq == opp and _libs_of(b, q) == 1:
            if found >= 0:
                return False
            found = q
    if found < 0:
        return False
    return b[B._gsize(b) + b[B._head(b) + found]] == 1


@njit(cache=True)
def _connection_libs_x2(b, p, c):
    s = b[B.H_STRIDE]
    k = 0
    for d in range(4):
        q = _nb(p, d, s)
        if b[B.HEADER + q] == c:
            libs = _libs_of(b, q)
            if libs > 1:
                k += libs * 2 - 3
    return k


@njit(cache=True)
def _play(stack, level, p, c):
    """stack[level + 1] = stack[level] with c's move at p."""
    blen = B.board_len(stack[level, B.H_SIZE])
    stack[level + 1, :blen] = stack[level, :blen]
    B.play(stack[level + 1], stack[level, :1], p, c)  # ko rule simple on the stack: no table is written


@njit(cache=True)
def is_captured(stack, base, buf, plies, loc, defender_first):
    """Whether the chain at loc on board stack[base] is ladder captured (KataGo's searchIsLadderCaptured).

    stack[base] must have the simple ko rule (``_root``); it is left as it was
    apart from its ko point at the root.
    """
    root = stack[base]
    co = B.HEADER
    if root[co + loc] != B.BLACK and root[co + loc] != B.WHITE:
        return False
    libs0 = _libs_of(root, loc)
    if libs0 > 2 or (defender_first and libs0 > 1):
        return False
    pla = root[co + loc]
    opp = 3 - pla
    if defender_first:
        root[B.H_KO_POINT] = -1
    n = root[B.H_SIZE]
    depth_cap = min(max_plies(n), stack.shape[0] - base)
    starts = plies[0]
    lens = plies[1]
    cur = plies[2]
    k = 0
    nodes = 0
    cur[0] = -1
    starts[0] = 0
    lens[0] = 0
    ret = False
    while True:
        if k < 0:
            return ret
        if k >= depth_cap - 1:
            ret = True
            k -= 1
            continue
        if nodes >= NODE_BUDGET:
            return False
        b = stack[base + k]
        defender = (k % 2 == 0) == defender_first
        if cur[k] == -1:
            libs = _libs_of(b, loc)
            if not defender and libs <= 1:
                ret = True
                k -= 1
                continue
            if not defender and libs >= 3:
                ret = False
                k -= 1
                continue
            if defender and libs >= 2:
                ret = False
                k -= 1
                continue
            if defender and b[B.H_KO_POINT] >= 0:
                ret = False
                k -= 1
                continue
            st = starts[k]
            if defender:
                m = _atari_neighbours(b, loc, buf, st, st, True)
                if m < 0:
                    return False
                m2 = _add_liberties(b, loc, buf, st, st + m)
                if m2 < 0:
                    return False
                m += m2
                lo, hi = _bound_libs_after(b, buf[st + m - 1], pla)
                if lo >= 3:
                    ret = False
                    k -= 1
                    continue
                if m == 1 and hi <= 1:
                    ret = True
                    k -= 1
                    continue
            else:
                m = _add_liberties(b, loc, buf, st, st)
                if m < 0:
                    return False
                a0 = buf[st]
                a1 = buf[st + 1]
                l0 = _immediate_libs(b, a0)
                l1 = _immediate_libs(b, a1)
                if l0 == 0 and l1 == 0 and _ko_capture(b, a0, opp) and _ko_capture(b, a1, opp):
                    if _libs_after(b, a0, pla, 3) <= 2 and _libs_after(b, a1, pla, 3) <= 2:
                        if _atari_neighbours(b, loc, buf, st, st, False) == 0:
                            ret = True
                            k -= 1
                            continue
                s = b[B.H_STRIDE]
                d = abs(a0 - a1)
                if d != 1 and d != s:
                    if l0 >= 3 and l1 >= 3:
                        ret = False
                        k -= 1
                        continue
                    elif l0 >= 3:
                        m = 1
                    elif l1 >= 3:
                        buf[st] = a1
                        m = 1
                if m > 1:
                    l0 = l0 * 2 + _connection_libs_x2(b, a0, pla)
                    l1 = l1 * 2 + _connection_libs_x2(b, a1, pla)
                    if l1 > l0:
                        buf[st] = a1
                        buf[st + 1] = a0
            lens[k] = m
            cur[k] = 0
        else:
            if defender and not ret:
                k -= 1
                continue
            if not defender and ret:
                k -= 1
                continue
            cur[k] += 1
        if cur[k] >= lens[k]:
            ret = defender
            k -= 1
            continue
        move = buf[starts[k] + cur[k]]
        colour = pla if defender else opp
        if not _legal(b, move, colour):
            ret = defender
            # try the next move at this level: the loop comes back here with cur[k] >= 0
            continue
        _play(stack, base + k, move, colour)
        nodes += 1
        k += 1
        cur[k] = -1
        starts[k] = starts[k - 1] + lens[k - 1]
        lens[k] = 0


@njit(cache=True)
def _root(stack, b):
    """stack[0] = b under the simple ko rule (ladder plays then record no positions)."""
    blen = B.board_len(b[B.H_SIZE])
    stack[0, :blen] = b[:blen]
    stack[0, B.H_KO_RULE] = B.KO_SIMPLE


@njit(cache=True)
def working_moves(stack, buf, plies, loc, out):
    """Attacker moves on the two liberties of the chain at loc on stack[0] that ladder-capture it: out[0:2].

    Returns how many (0: the chain is not ladderable).
    """
    if _libs_of(stack[0], loc) != 2:
        return 0
    pla = stack[0, B.HEADER + loc]
    opp = 3 - pla
    k = _add_liberties(stack[0], loc, buf, 0, 0)
    m0 = buf[0]
    m1 = buf[1]
    found = 0
    for move in (m0, m1):
        if k == 2 and _legal(stack[0], move, opp):
            _play(stack, 0, move, opp)
            if is_captured(stack, 1, buf, plies, loc, True):
                out[found] = move
                found += 1
    return found


@njit(cache=True)
def ladder_planes(b, work, stones, moves, mover):
    """KataGo's iterLadders: stones[y, x] = 1 on every stone of a ladder-captured or ladderable chain.

    Where moves is not empty (shape (P, P)): moves[y, x] = 1 on the working
    moves against mover's opponent's ladderable (two-liberty) chains.
    work: int64 scratch of at least ``workspace_len(n)``.
    """
    n = b[B.H_SIZE]
    s = n + 2
    co = B.HEADER
    hd = B._head(b)
    stack, buf, plies, heads, values = _carve(work, n)
    nsolved = 0
    found = buf[buf.shape[0] - 2:]  # the buffer's tail: move lists never reach it (they hold < 4 (n+2)^2)
    buf = buf[:buf.shape[0] - 2]
    copied = False
    ko = b[B.H_KO_POINT]
    for y in range(n):
        for x in range(n):
            p = (y + 1) * s + x + 1
            c = b[co + p]
            if c != B.BLACK and c != B.WHITE:
                continue
            libs = _libs_of(b, p)
            if libs != 1 and libs != 2:
                continue
            h = b[hd + p]
            value = False
            known = False
            for i in range(nsolved):
                if heads[i] == h:
                    known = True
                    value = values[i] == 1
                    break
            if not known:
                if not copied:
                    _root(stack, b)  # once per board: searches leave stack[0] as it was but for its ko point
                    copied = True
                stack[0, B.H_KO_POINT] = ko
                k = 0
                if libs == 1:
                    value = is_captured(stack, 0, buf, plies, p, True)
                else:
                    k = working_moves(stack, buf, plies, p, found)
                    value = k > 0
                heads[nsolved] = h
                values[nsolved] = 1 if value else 0
                nsolved += 1
                if value and moves.shape[0] > 0 and c != mover and libs > 1:
                    for j in range(k):
                        q = found[j]
                        moves[q // s - 1, q % s - 1] = 1.0
            if value:
                stones[y, x] = 1.0
