"""The Go board as one flat int64 array, compiled with numba.

Everything the hot loops (random playouts, MCTS descent, feature encoding)
touch lives in a single array per board, so a board is copied with one
memcpy and a batch of boards is a 2-D array. The layout:

    [header | colour | head | next | libs | size | mark | removed]
                                            each area (n+2)**2

Points are indices into an (n+2) x (n+2) grid whose border is WALL, so the
four neighbours of p are p-1, p+1, p-stride, p+stride with no bounds tests.
Groups are circular linked lists of stones (``next``) with one representative
(``head``); the liberty count and stone count of a group are stored at its
head and kept exact incrementally: a move decrements adjacent enemy groups,
removes captured groups (crediting the liberties back), and recounts only the
group the new stone joined.

Superko needs the set of earlier positions. It is a separate open-addressing
hash table of Zobrist keys (``hist_*``) so that search can push the positions
along a descent path and pop them afterwards (LIFO removal is exact under
linear probing) without copying the game's history.

Moves are point indices; ``PASS`` is -1. Colours: BLACK 1, WHITE 2. Rules:
ko rule SIMPLE / POSITIONAL / SITUATIONAL and multi-stone suicide, as in
KataGo's koRule and multiStoneSuicideLegal (single-stone suicide is never
legal).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from zeroloop.go import MAX_SIZE, MIN_SIZE

EMPTY, BLACK, WHITE, WALL = 0, 1, 2, 3
PASS = -1
NO_MOVE = -2

KO_SIMPLE, KO_POSITIONAL, KO_SITUATIONAL = 0, 1, 2

MAX_AREA = (MAX_SIZE + 2) ** 2

# Header slots.
H_SIZE = 0  # n
H_STRIDE = 1  # n + 2
H_TO_MOVE = 2  # colour to play next
H_KO_POINT = 3  # point banned by simple ko, or -1
H_KO_COLOR = 4  # colour the ko ban applies to
H_PASSES = 5  # consecutive passes so far
H_MOVE_NUM = 6  # moves played (passes included)
H_CAPS_BLACK = 7  # stones captured by black
H_CAPS_WHITE = 8  # stones captured by white
H_HASH = 9  # Zobrist hash of the stones
H_KO_RULE = 10
H_MULTI_SUICIDE = 11
H_MARK_GEN = 12  # generation counter for the mark area
H_HIST_SLOT = 13  # superko-table slot filled by the last move, or -1
H_LAST = 14  # last 5 moves, most recent first (PASS, NO_MOVE or a point)
N_LAST = 5
HEADER = H_LAST + N_LAST

_rng = np.random.default_rng(0x5EED_60)
ZOBRIST = _rng.integers(1, 2**62, size=(3, MAX_AREA), dtype=np.int64)
KEY_POSITIONAL = np.int64(_rng.integers(1, 2**62))
KEY_SIDE = _rng.integers(1, 2**62, size=3, dtype=np.int64)


@njit(cache=True, inline="always")
def area_len(n):
    return (n + 2) * (n + 2)


@njit(cache=True)
def board_len(n):
    """Length of the array holding a board of size n."""
    return HEADER + 7 * area_len(n)


@njit(cache=True, inline="always")
def _head(b):
    return HEADER + area_len(b[H_SIZE])


@njit(cache=True, inline="always")
def _next(b):
    return HEADER + 2 * area_len(b[H_SIZE])


@njit(cache=True, inline="always")
def _libs(b):
    return HEADER + 3 * area_len(b[H_SIZE])


@njit(cache=True, inline="always")
def _gsize(b):
    return HEADER + 4 * area_len(b[H_SIZE])


@njit(cache=True, inline="always")
def _mark(b):
    return HEADER + 5 * area_len(b[H_SIZE])


@njit(cache=True, inline="always")
def _removed(b):
    # Bit (1 << colour) set where a stone of that colour was ever taken off.
    return HEADER + 6 * area_len(b[H_SIZE])


@njit(cache=True)
def init_board(b, n, ko_rule, multi_suicide):
    """Set b (length >= board_len(n)) to the empty board of size n."""
    b[:] = 0
    b[H_SIZE] = n
    b[H_STRIDE] = n + 2
    b[H_TO_MOVE] = BLACK
    b[H_KO_POINT] = -1
    b[H_KO_RULE] = ko_rule
    b[H_MULTI_SUICIDE] = 1 if multi_suicide else 0
    for i in range(N_LAST):
        b[H_LAST + i] = NO_MOVE
    s = n + 2
    for y in range(s):
        for x in range(s):
            if x == 0 or y == 0 or x == s - 1 or y == s - 1:
                b[HEADER + y * s + x] = WALL


def new_board(n, ko_rule=KO_POSITIONAL, multi_suicide=False):
    """A fresh empty board array of size n."""
    if not MIN_SIZE <= n <= MAX_SIZE:
        raise ValueError(f"board size {n} outside {MIN_SIZE}..{MAX_SIZE}")
    b = np.zeros(board_len(n), dtype=np.int64)
    init_board(b, n, ko_rule, multi_suicide)
    return b


# --- coordinates ---------------------------------------------------------


@njit(cache=True, inline="always")
def point_of(b, x, y):
    """Point of column x, row y (both from 0, row 0 at the top)."""
    return (y + 1) * b[H_STRIDE] + x + 1


@njit(cache=True, inline="always")
def move_of_index(b, i):
    """Point of policy index i (y*n + x), PASS for i == n*n."""
    n = b[H_SIZE]
    if i == n * n:
        return PASS
    return (i // n + 1) * (n + 2) + i % n + 1


@njit(cache=True, inline="always")
def index_of_move(b, p):
    """Policy index of point p (PASS -> n*n)."""
    n = b[H_SIZE]
    if p == PASS:
        return n * n
    s = n + 2
    return (p // s - 1) * n + p % s - 1


@njit(cache=True, inline="always")
def colour_at(b, p):
    return b[HEADER + p]


# --- superko history table ----------------------------------------------


def hist_new(max_moves):
    """An empty position table with room for max_moves positions."""
    cap = 64
    while cap < 2 * (max_moves + 64):
        cap *= 2
    return np.zeros(cap, dtype=np.int64)


@njit(cache=True, inline="always")
def _slot(t, key):
    mask = t.shape[0] - 1
    i = (key ^ (key >> 29)) & mask
    while t[i] != 0 and t[i] != key:
        i = (i + 1) & mask
    return i


@njit(cache=True)
def hist_contains(t, key):
    return t[_slot(t, key)] == key


@njit(cache=True)
def hist_add(t, key):
    """Insert key; return its slot, or -1 if it was already there."""
    i = _slot(t, key)
    if t[i] == key:
        return -1
    t[i] = key
    return i


@njit(cache=True, inline="always")
def hist_remove(t, slot):
    """Remove the key at slot. Exact only for the most recent insertion."""
    if slot >= 0:
        t[slot] = 0


@njit(cache=True, inline="always")
def position_key(b, hash_, mover):
    """Table key of a position with stones hash_, reached by mover's move."""
    if b[H_KO_RULE] == KO_SITUATIONAL:
        k = hash_ ^ KEY_SIDE[mover]
    else:
        k = hash_ ^ KEY_POSITIONAL
    return k if k != 0 else 1


@njit(cache=True)
def record_position(b, t, mover):
    """Add the current position to the table (no-op under simple ko).

    The slot filled (or -1) is kept in the header for undo.
    """
    slot = -1
    if b[H_KO_RULE] != KO_SIMPLE:
        slot = hist_add(t, position_key(b, b[H_HASH], mover))
    b[H_HIST_SLOT] = slot
    return slot


# --- legality --------------------------------------------------------------


@njit(cache=True)
def _group_hash(b, head, col):
    """XOR of the Zobrist keys of the stones of the group at head."""
    nx = _next(b)
    h = 0
    p = head
    while True:
        h ^= ZOBRIST[col, p]
        p = b[nx + p]
        if p == head:
            break
    return h


@njit(cache=True)
def is_legal(b, t, p, c):
    """Whether colour c may play point p (PASS always may)."""
    if p == PASS:
        return True
    co = HEADER
    if b[co + p] != EMPTY:
        return False
    ko_rule = b[H_KO_RULE]
    if ko_rule == KO_SIMPLE and p == b[H_KO_POINT] and c == b[H_KO_COLOR]:
        return False
    hd = _head(b)
    lb = _libs(b)
    s = b[H_STRIDE]
    opp = 3 - c
    has_lib = False
    safe_join = False
    joins = False
    captures = False
    for d in range(4):
        q = p + (-1 if d == 0 else 1 if d == 1 else -s if d == 2 else s)
        cq = b[co + q]
        if cq == EMPTY:
            has_lib = True
        elif cq == c:
            joins = True
            if b[lb + b[hd + q]] > 1:
                safe_join = True
        elif cq == opp:
            if b[lb + b[hd + q]] == 1:
                captures = True
    suicide = not (has_lib or safe_join or captures)
    if suicide and not (joins and b[H_MULTI_SUICIDE] == 1):
        return False
    if ko_rule == KO_SIMPLE:
        return True
    # A placed stone can recreate an earlier position only where a stone of
    # its colour once stood and was taken off: skip the lookup elsewhere.
    if not suicide and (b[_removed(b) + p] & (1 << c)) == 0:
        return True
    return not hist_contains(t, position_key(b, _hash_after(b, p, c, suicide), c))


@njit(cache=True)
def is_ko_banned(b, t, p, c):
    """Whether c's move at empty p is illegal only by the ko or superko rule.

    That is what the net's ko-ban input plane shows: not occupied points,
    not suicides the rules forbid, but a multi-stone suicide banned by
    superko is.
    """
    if b[HEADER + p] != EMPTY or is_legal(b, t, p, c):
        return False
    s = b[H_STRIDE]
    joins = False
    for d in range(4):
        q = p + (-1 if d == 0 else 1 if d == 1 else -s if d == 2 else s)
        cq = b[HEADER + q]
        if cq == EMPTY:
            return True  # has a liberty, so not a suicide: banned by ko
        if cq == c:
            joins = True
            if group_libs(b, q) > 1:
                return True
        elif cq == 3 - c and group_libs(b, q) == 1:
            return True  # captures
    # A suicide: banned by ko only where the rules allow this suicide.
    return joins and b[H_MULTI_SUICIDE] == 1


@njit(cache=True)
def _hash_after(b, p, c, suicide):
    """Stone hash after c plays p (p assumed legal apart from superko)."""
    co = HEADER
    hd = _head(b)
    lb = _libs(b)
    s = b[H_STRIDE]
    opp = 3 - c
    h = b[H_HASH]
    if suicide:
        # The new stone and every own group it joins are removed.
        seen0 = -1
        seen1 = -1
        seen2 = -1
        for d in range(4):
            q = p + (-1 if d == 0 else 1 if d == 1 else -s if d == 2 else s)
            if b[co + q] == c:
                g = b[hd + q]
                if g != seen0 and g != seen1 and g != seen2:
                    h ^= _group_hash(b, g, c)
                    if seen0 < 0:
                        seen0 = g
                    elif seen1 < 0:
                        seen1 = g
                    else:
                        seen2 = g
        return h
    h ^= ZOBRIST[c, p]
    seen0 = -1
    seen1 = -1
    seen2 = -1
    for d in range(4):
        q = p + (-1 if d == 0 else 1 if d == 1 else -s if d == 2 else s)
        if b[co + q] == opp:
            g = b[hd + q]
            if b[lb + g] == 1 and g != seen0 and g != seen1 and g != seen2:
                h ^= _group_hash(b, g, opp)
                if seen0 < 0:
                    seen0 = g
                elif seen1 < 0:
                    seen1 = g
                else:
                    seen2 = g
    return h


@njit(cache=True)
def legal_mask(b, t, c, out):
    """out[i] = 1 where colour c may play policy index i (pass included)."""
    n = b[H_SIZE]
    s = n + 2
    for y in range(n):
        for x in range(n):
            p = (y + 1) * s + x + 1
            out[y * n + x] = 1 if is_legal(b, t, p, c) else 0
    out[n * n] = 1


# --- playing ---------------------------------------------------------------


@njit(cache=True)
def _remove_group(b, head):
    """Take the group at head off the board; return the stones removed."""
    co = HEADER
    hd = _head(b)
    nx = _next(b)
    lb = _libs(b)
    rm = _removed(b)
    s = b[H_STRIDE]
    col = b[co + head]
    other = 3 - col
    count = 0
    p = head
    while True:
        nxt = b[nx + p]
        b[co + p] = EMPTY
        b[hd + p] = 0
        b[rm + p] |= 1 << col
        b[H_HASH] ^= ZOBRIST[col, p]
        count += 1
        # p becomes a liberty of each distinct adjacent enemy group.
        g0 = -1
        g1 = -1
        g2 = -1
        for d in range(4):
            q = p + (-1 if d == 0 else 1 if d == 1 else -s if d == 2 else s)
            if b[co + q] == other:
                g = b[hd + q]
                if g != g0 and g != g1 and g != g2:
                    b[lb + g] += 1
                    if g0 < 0:
                        g0 = g
                    elif g1 < 0:
                        g1 = g
                    else:
                        g2 = g
        p = nxt
        if p == head:
            break
    return count


@njit(cache=True)
def _count_libs(b, head):
    """Recount the liberties of the group at head (marks distinct points)."""
    co = HEADER
    nx = _next(b)
    mk = _mark(b)
    s = b[H_STRIDE]
    b[H_MARK_GEN] += 1
    gen = b[H_MARK_GEN]
    libs = 0
    p = head
    while True:
        for d in range(4):
            q = p + (-1 if d == 0 else 1 if d == 1 else -s if d == 2 else s)
            if b[co + q] == EMPTY and b[mk + q] != gen:
                b[mk + q] = gen
                libs += 1
        p = b[nx + p]
        if p == head:
            break
    return libs


@njit(cache=True)
def _merge(b, keep, other):
    """Join group other into group keep (relabel other's stones)."""
    hd = _head(b)
    nx = _next(b)
    gs = _gsize(b)
    p = other
    while True:
        b[hd + p] = keep
        p = b[nx + p]
        if p == other:
            break
    # Splice the two circular lists.
    a = b[nx + keep]
    b[nx + keep] = b[nx + other]
    b[nx + other] = a
    b[gs + keep] += b[gs + other]


@njit(cache=True)
def _push_last(b, p):
    for i in range(N_LAST - 1, 0, -1):
        b[H_LAST + i] = b[H_LAST + i - 1]
    b[H_LAST] = p


@njit(cache=True)
def play(b, t, p, c):
    """Colour c plays p (legality not checked: see is_legal).

    Records the new position in the superko table t and returns the number
    of enemy stones captured (own stones lost to a multi-stone suicide are
    returned negated).
    """
    b[H_MOVE_NUM] += 1
    b[H_TO_MOVE] = 3 - c
    _push_last(b, p)
    if p == PASS:
        b[H_PASSES] += 1
        b[H_KO_POINT] = -1
        record_position(b, t, c)
        return 0
    b[H_PASSES] = 0
    co = HEADER
    hd = _head(b)
    nx = _next(b)
    lb = _libs(b)
    gs = _gsize(b)
    s = b[H_STRIDE]
    opp = 3 - c
    b[co + p] = c
    b[hd + p] = p
    b[nx + p] = p
    b[gs + p] = 1
    b[H_HASH] ^= ZOBRIST[c, p]
    libs = 0
    for d in range(4):
        q = p + (-1 if d == 0 else 1 if d == 1 else -s if d == 2 else s)
        if b[co + q] == EMPTY:
            libs += 1
    b[lb + p] = libs
    # Enemy neighbours lose the liberty p; take off those left with none.
    captured = 0
    last_captured = -1
    g0 = -1
    g1 = -1
    g2 = -1
    for d in range(4):
        q = p + (-1 if d == 0 else 1 if d == 1 else -s if d == 2 else s)
        if b[co + q] == opp:
            g = b[hd + q]
            if g != g0 and g != g1 and g != g2:
                if g0 < 0:
                    g0 = g
                elif g1 < 0:
                    g1 = g
                else:
                    g2 = g
                b[lb + g] -= 1
                if b[lb + g] == 0:
                    captured += _remove_group(b, g)
                    last_captured = q
    # Join own neighbours, the larger group absorbing the smaller.
    head = p
    joined = False
    for d in range(4):
        q = p + (-1 if d == 0 else 1 if d == 1 else -s if d == 2 else s)
        if b[co + q] == c:
            g = b[hd + q]
            if g != head:
                joined = True
                if b[gs + g] >= b[gs + head]:
                    _merge(b, g, head)
                    head = g
                else:
                    _merge(b, head, g)
    if joined:
        b[lb + head] = _count_libs(b, head)
    if c == BLACK:
        b[H_CAPS_BLACK] += captured
    else:
        b[H_CAPS_WHITE] += captured
    b[H_KO_POINT] = -1
    if captured == 1 and b[gs + head] == 1 and b[lb + head] == 1:
        b[H_KO_POINT] = last_captured
        b[H_KO_COLOR] = opp
    if b[lb + head] == 0:
        # Multi-stone suicide (legality was checked by the caller).
        lost = _remove_group(b, head)
        if c == BLACK:
            b[H_CAPS_WHITE] += lost
        else:
            b[H_CAPS_BLACK] += lost
        record_position(b, t, c)
        return -lost
    record_position(b, t, c)
    return captured


@njit(cache=True)
def group_libs(b, p):
    """Liberties of the group at stone p."""
    return b[_libs(b) + b[_head(b) + p]]


@njit(cache=True)
def is_own_eye(b, p, c):
    """p is empty and every on-board neighbour is c's stone."""
    co = HEADER
    if b[co + p] != EMPTY:
        return False
    s = b[H_STRIDE]
    for d in range(4):
        q = p + (-1 if d == 0 else 1 if d == 1 else -s if d == 2 else s)
        cq = b[co + q]
        if cq != c and cq != WALL:
            return False
    return True


# --- scoring ---------------------------------------------------------------


@njit(cache=True)
def area_ownership(b, out):
    """Tromp-Taylor area: out[y*n+x] = +1 black, -1 white, 0 shared/dame.

    Returns black area minus white area (komi not applied).
    """
    n = b[H_SIZE]
    s = n + 2
    co = HEADER
    mk = _mark(b)
    b[H_MARK_GEN] += 1
    gen = b[H_MARK_GEN]
    stack = np.empty(n * n, dtype=np.int64)
    region = np.empty(n * n, dtype=np.int64)
    diff = 0
    for y in range(n):
        for x in range(n):
            p = (y + 1) * s + x + 1
            cp = b[co + p]
            if cp == BLACK:
                out[y * n + x] = 1
                diff += 1
            elif cp == WHITE:
                out[y * n + x] = -1
                diff -= 1
            elif b[mk + p] != gen:
                # Flood the empty region, noting which colours border it.
                borders = 0
                top = 0
                cnt = 0
                stack[top] = p
                top += 1
                b[mk + p] = gen
                while top > 0:
                    top -= 1
                    r = stack[top]
                    region[cnt] = r
                    cnt += 1
                    for d in range(4):
                        q = r + (-1 if d == 0 else 1 if d == 1 else -s if d == 2 else s)
                        cq = b[co + q]
                        if cq == EMPTY:
                            if b[mk + q] != gen:
                                b[mk + q] = gen
                                stack[top] = q
                                top += 1
                        elif cq != WALL:
                            borders |= cq
                owner = 1 if borders == BLACK else -1 if borders == WHITE else 0
                diff += owner * cnt
                for i in range(cnt):
                    r = region[i]
                    out[(r // s - 1) * n + r % s - 1] = owner
    return diff


# --- random playouts ----------------------------------------------------


@njit(cache=True)
def random_move(b, t, c, cand):
    """A uniformly random legal move for c that fills no own eye, else PASS.

    cand is scratch of length >= n*n.
    """
    n = b[H_SIZE]
    s = n + 2
    co = HEADER
    k = 0
    for y in range(n):
        for x in range(n):
            p = (y + 1) * s + x + 1
            if b[co + p] == EMPTY:
                cand[k] = p
                k += 1
    while k > 0:
        i = np.random.randint(k)
        p = cand[i]
        if not is_own_eye(b, p, c) and is_legal(b, t, p, c):
            return p
        k -= 1
        cand[i] = cand[k]
    return PASS


@njit(cache=True)
def random_game(b, t, max_moves):
    """Play random moves from b until two passes or max_moves; return moves."""
    cand = np.empty(b[H_SIZE] * b[H_SIZE], dtype=np.int64)
    moves = 0
    while b[H_PASSES] < 2 and b[H_MOVE_NUM] < max_moves:
        c = b[H_TO_MOVE]
        play(b, t, random_move(b, t, c, cand), c)
        moves += 1
    return moves


@njit(cache=True)
def seed(s):
    """Seed numba's random generator (separate from numpy's)."""
    np.random.seed(s)
