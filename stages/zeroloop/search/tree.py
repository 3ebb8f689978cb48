"""Search trees for many games at once: preallocated pools, compiled per visit.

Each game slot g owns a node pool and an edge pool (rows of 2-D/3-D arrays,
so every game's tree lives in the same few arrays and nothing is allocated
per visit):

- nodes ``node_i[g, k, :]`` (int32: visits, first edge, edge count, parent,
  state) and ``node_f[g, k, :]`` (float64: sums of utility, its square,
  win-loss and score over the visits below, and the node's own evaluation).
  Values are
  stored from Black's view, so backup adds the same numbers all the way up
  and a parent flips the sign for the player choosing.
- edges ``e_prior/e_move/e_child[g, j]``: a node's children are one
  contiguous block of edges, one per legal move (created when the node is
  selected as a leaf, priors filled when its evaluation returns); a child
  node is created lazily, the first time its edge is followed.

Node 0 is always the root: after a move, ``reroot`` copies the chosen
child's subtree to the front of the pools (breadth first, through scratch
arrays), so a pool never fragments and subtree statistics carry over.

Subtree value bias (KataGo's, off unless ``P_SVB_FACTOR`` is set): each
node made by a move other than pass belongs to a bucket of a per-game hash
table, keyed by the mover, the move, the move before it, the 5x5 pattern
around the move (with stones in atari) and the ko ban. A bucket averages
(children's mean utility - the node's own net utility) over its nodes,
weighted by (child visits) ** exponent; a node's own utility term is its
net utility plus factor * its bucket's average, refreshed whenever a visit
passes through it, and the change is carried up to its ancestors' sums.

One search step is ``select_leaves`` (for every searching game: copy the
root board into a scratch row, descend by PUCT playing the path's moves and
pushing their positions into the game's superko table, score terminal
leaves (two passes or the move cap) without the net and keep descending,
create the leaf's edges from the legal moves, write its features under a
random symmetry into the batch buffers, pop the pushed positions), then one
batched evaluation by the caller, then ``expand_leaves`` (priors from the
policy logits mapped back through the symmetry, value, backup). Each game
contributes at most one leaf per step: the batch is made of games, not of
virtual losses.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from zeroloop import features
from zeroloop.go import board as B
from zeroloop.search import puct

# node_i columns
N_VISITS, N_FIRST, N_COUNT, N_PARENT, N_STATE = range(5)
N_BUCKET = 5  # subtree value bias table entry, -1 none
NODE_INTS = 6
# node_f columns: sums over visits (Black's view), then the node's own value
# (its utility, win-loss and score as evaluated; the utility with the score
# centre of the search that evaluated it, see recompute_utilities)
N_USUM, N_WLSUM, N_SSUM, N_UTIL, N_WL, N_SCORE, N_USQSUM = range(7)
# subtree value bias: the bias in the node's own utility term, and what it last added to its bucket
N_BIAS, N_BUCKET_DELTA, N_BUCKET_WEIGHT = 7, 8, 9
NODE_FLOATS = 10
# node states
NEW, PENDING, EXPANDED, TERMINAL = 0, 1, 2, 3

# game_i columns
G_ACTIVE = 0  # 1 while the slot holds a game being searched
G_NODES = 1  # nodes in use
G_EDGES = 2  # edges in use
G_TARGET = 3  # search until the root has this many visits
G_ROOT_PREP = 4  # 1: apply root temperature and noise once the root is expanded
G_FORCED = 5  # 1: forced playouts at the root
G_MAX_MOVES = 6  # a position at this move number is terminal
G_SYMMETRY = 7  # 1: a random symmetry per evaluation
G_CENTER_PENDING = 8  # 1: the root's first evaluation sets the dynamic score centre
GAME_INTS = 9
# game_f columns
G_KOMI, G_ROOT_TEMP, G_NOISE_WEIGHT, G_ROOT_FPU, G_SCORE_CENTER = range(5)  # centre: Black's view
GAME_FLOATS = 5
# params
P_CPUCT, P_FPU, P_FORCED_COEFF, P_SCORE_FACTOR, P_ALPHA_TOTAL = range(5)
P_NOISE_SHAPED = 5  # 1: shaped Dirichlet noise
P_FPU_PARENT_POW = 6  # > 0: FPU parent value weighted by visited policy ** this
P_DYN_FACTOR, P_DYN_ZERO_WEIGHT, P_DYN_SCALE = 7, 8, 9  # dynamic score utility
P_SVB_FACTOR, P_SVB_EXPONENT, P_SVB_FREE_PROP = 10, 11, 12  # subtree value bias
P_CONSERVATIVE_PASS = 13  # 1: a root pass that would end the game does not (KataGo's conservativePass)
NUM_PARAMS = 14
# bucket sums columns
B_DELTA, B_WEIGHT = 0, 1

_zrng = np.random.default_rng(0x5B7_B1A5)
Z_BUCKET_MOVE = _zrng.integers(1, 2**62, size=(B.MAX_AREA + 1, 2), dtype=np.int64)  # [point or pass, prev/this]
Z_BUCKET_PATTERN = _zrng.integers(1, 2**62, size=(25, 6), dtype=np.int64)  # 5x5 point, state
Z_BUCKET_KO = _zrng.integers(1, 2**62, size=B.MAX_AREA, dtype=np.int64)
Z_BUCKET_MOVER = _zrng.integers(1, 2**62, size=3, dtype=np.int64)


# --- symmetry tables --------------------------------------------------------


def symmetry_tables(max_size: int) -> tuple[np.ndarray, np.ndarray]:
    """perm[n, s, j] and inverse[n, s, i] over an n x n board's n*n+1 indices.

    The features of symmetry s put original point perm[j] at point j (as
    ``zeroloop.symmetry.index_map``); the net's policy at point j is the
    original point perm[j]'s, so original i reads the output at inverse[i].
    """
    from zeroloop import symmetry

    width = max_size * max_size + 1
    perm = np.zeros((max_size + 1, 8, width), dtype=np.int32)
    inv = np.zeros_like(perm)
    for n in range(B.MIN_SIZE, max_size + 1):
        for s in range(8):
            p = symmetry.index_map(s, n).astype(np.int32)
            perm[n, s, : n * n + 1] = p
            inv[n, s, p] = np.arange(n * n + 1, dtype=np.int32)
    return perm, inv


# --- pools ----------------------------------------------------------------


@njit(cache=True)
def reset_tree(node_i, node_f, game_i, g):
    """Game g's tree becomes a single unexpanded root."""
    node_i[g, 0, N_VISITS] = 0
    node_i[g, 0, N_FIRST] = -1
    node_i[g, 0, N_COUNT] = 0
    node_i[g, 0, N_PARENT] = -1
    node_i[g, 0, N_STATE] = NEW
    node_i[g, 0, N_BUCKET] = -1
    node_f[g, 0, :] = 0.0
    game_i[g, G_NODES] = 1
    game_i[g, G_EDGES] = 0


@njit(cache=True, inline="always")
def _backup(ni, nf, node, u, wl, s):
    while node >= 0:
        ni[node, N_VISITS] += 1
        nf[node, N_USUM] += u
        nf[node, N_USQSUM] += u * u
        nf[node, N_WLSUM] += wl
        nf[node, N_SSUM] += s
        node = ni[node, N_PARENT]


@njit(cache=True)
def _backup_biased(ni, nf, sums, node, u, wl, s, factor, exponent):
    """Backup that also refreshes each node's bucket and its own biased utility on the way up.

    A node's bucket gets (children's mean - own net utility) * (child
    visits) ** exponent in place of what the node gave it before; its own
    term becomes net utility + factor * the bucket's average, and the
    change is added to it and carried to every ancestor.
    """
    carry = 0.0
    carry_sq = 0.0
    while node >= 0:
        ni[node, N_VISITS] += 1
        nf[node, N_USUM] += u + carry
        nf[node, N_USQSUM] += u * u + carry_sq
        nf[node, N_WLSUM] += wl
        nf[node, N_SSUM] += s
        e = ni[node, N_BUCKET]
        v = ni[node, N_VISITS]
        if e >= 0 and v > 1 and ni[node, N_STATE] == EXPANDED:
            raw = nf[node, N_UTIL]
            own = raw + nf[node, N_BIAS]
            w = (v - 1.0) ** exponent
            d = ((nf[node, N_USUM] - own) / (v - 1.0) - raw) * w
            sums[e, B_DELTA] += d - nf[node, N_BUCKET_DELTA]
            sums[e, B_WEIGHT] += w - nf[node, N_BUCKET_WEIGHT]
            nf[node, N_BUCKET_DELTA] = d
            nf[node, N_BUCKET_WEIGHT] = w
            if sums[e, B_WEIGHT] > 0.001:
                new_own = raw + factor * sums[e, B_DELTA] / sums[e, B_WEIGHT]
                nf[node, N_BIAS] = new_own - raw
                change = new_own - own
                change_sq = new_own * new_own - own * own
                nf[node, N_USUM] += change
                nf[node, N_USQSUM] += change_sq
                carry += change
                carry_sq += change_sq
        node = ni[node, N_PARENT]


@njit(cache=True)
def bucket_key(b, move, c):
    """Subtree value bias bucket of colour c playing policy index move on board b (0: none).

    None for a pass or at the first move. The pattern is the 5x5 square
    around the move: empty, black, white, black or white in atari, off board.
    """
    p = B.move_of_index(b, move)
    prev = b[B.H_LAST]
    if p == B.PASS or prev == B.NO_MOVE:
        return 0
    n = b[B.H_SIZE]
    s = n + 2
    key = Z_BUCKET_MOVE[B.MAX_AREA if prev == B.PASS else prev, 0] ^ Z_BUCKET_MOVE[p, 1] ^ Z_BUCKET_MOVER[c]
    ko = b[B.H_KO_POINT]
    if ko >= 0:
        key ^= Z_BUCKET_KO[ko]
    x = p % s
    y = p // s
    k = 0
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            qx = x + dx
            qy = y + dy
            if 1 <= qx <= n and 1 <= qy <= n:
                q = qy * s + qx
                state = b[B.HEADER + q]
                if state != B.EMPTY and B.group_libs(b, q) == 1:
                    state += 2
            else:
                state = 5
            key ^= Z_BUCKET_PATTERN[k, state]
            k += 1
    return key if key != 0 else 1


@njit(cache=True)
def _bucket(keys, refs, sums, key):
    """The table entry of key (created empty if new), with one more node referring to it."""
    mask = keys.shape[0] - 1
    i = key & mask
    while keys[i] != 0 and keys[i] != key:
        i = (i + 1) & mask
    if keys[i] == 0:
        keys[i] = key
        refs[i] = 0
        sums[i, B_DELTA] = 0.0
        sums[i, B_WEIGHT] = 0.0
    refs[i] += 1
    return i


@njit(cache=True, inline="always")
def utility(wl, score, center, params, area):
    """A position's utility from win-loss and score (all Black's view): wl plus the score utilities."""
    return (wl + puct.score_utility(score, params[P_SCORE_FACTOR], area)
            + puct.dynamic_score_utility(score, center, params[P_DYN_FACTOR], params[P_DYN_SCALE], area))


@njit(cache=True)
def _select_edge(ni, nf, ep, ec, node, sign, cpuct, fpu_reduction, forced_coeff, fpu_parent_pow):
    """The edge PUCT follows from node (same rule as puct.puct_select)."""
    first = ni[node, N_FIRST]
    end = first + ni[node, N_COUNT]
    total = 0.0
    visited_mass = 0.0
    for e in range(first, end):
        c = ec[e]
        if c >= 0 and ni[c, N_VISITS] > 0:
            total += ni[c, N_VISITS]
            visited_mass += ep[e]
    if forced_coeff > 0.0:
        for e in range(first, end):
            c = ec[e]
            if c >= 0:
                v = ni[c, N_VISITS]
                if v > 0 and v < puct.forced_playouts(ep[e], total, forced_coeff):
                    return e
    scaling = puct.explore_scaling(total, cpuct)
    parent_q = puct.fpu_parent_utility(sign * nf[node, N_USUM] / max(ni[node, N_VISITS], 1), sign * nf[node, N_UTIL],
                                       visited_mass, fpu_parent_pow)
    fpu = puct.fpu_value(parent_q, visited_mass, fpu_reduction)
    best = first
    best_value = -1e300
    for e in range(first, end):
        c = ec[e]
        if c >= 0 and ni[c, N_VISITS] > 0:
            v = ni[c, N_VISITS]
            value = puct.puct_value(sign * nf[c, N_USUM] / v, ep[e], v, scaling)
        else:
            value = fpu + scaling * ep[e]
        if value > best_value:
            best_value = value
            best = e
    return best


@njit(cache=True)
def _create_edges(b, t, ni, ep, em, ec, gi, node, edge_cap):
    """One edge per legal move of the player to move; False if the pool is full."""
    n = b[B.H_SIZE]
    start = gi[G_EDGES]
    if start + n * n + 1 > edge_cap:
        return False
    c = b[B.H_TO_MOVE]
    k = start
    s = n + 2
    for y in range(n):
        for x in range(n):
            if B.is_legal(b, t, (y + 1) * s + x + 1, c):
                em[k] = y * n + x
                ep[k] = 0.0
                ec[k] = -1
                k += 1
    em[k] = n * n
    ep[k] = 0.0
    ec[k] = -1
    k += 1
    ni[node, N_FIRST] = start
    ni[node, N_COUNT] = k - start
    gi[G_EDGES] = k
    return True


@njit(cache=True)
def terminal_value(b, komi, center, params, own):
    """(utility, win-loss, score) of a finished position, Black's view."""
    n = b[B.H_SIZE]
    score = B.area_ownership(b, own) - komi
    wl = 1.0 if score > 0 else (-1.0 if score < 0 else 0.0)
    return utility(wl, score, center, params, n * n), wl, score


@njit(cache=True)
def _write_features(b, t, komi, sym, perm, tmp, spatial, glob, version, prev1, prev2, work):
    """Features of b (version: zeroloop.features) under symmetry sym into spatial (C,P,P) and glob."""
    if sym == 0:
        features.encode_version_into(version, b, prev1, prev2, t, komi, spatial, glob, work)
        return
    features.encode_version_into(version, b, prev1, prev2, t, komi, tmp, glob, work)
    n = b[B.H_SIZE]
    if n < spatial.shape[1]:
        spatial[:] = 0.0
    for j in range(n * n):
        src = perm[n, sym, j]
        sy = src // n
        sx = src - sy * n
        jy = j // n
        jx = j - jy * n
        for ch in range(spatial.shape[0]):
            spatial[ch, jy, jx] = tmp[ch, sy, sx]


@njit(cache=True)
def _write_features_hiding_passes(b, t, komi, sym, perm, tmp, spatial, glob, version, work):
    """_write_features with b's move history hidden, as KataGo hides it under conservative pass where a
    pass would end the game: the net never saw a position after two passes, and it learnt from the last
    moves' pass flags that a pass there ends the game."""
    saved = b[B.H_LAST:B.H_LAST + B.N_LAST].copy()
    passes = b[B.H_PASSES]
    b[B.H_LAST:B.H_LAST + B.N_LAST] = B.NO_MOVE
    b[B.H_PASSES] = 0
    _write_features(b, t, komi, sym, perm, tmp, spatial, glob, version, b, b, work)
    b[B.H_LAST:B.H_LAST + B.N_LAST] = saved
    b[B.H_PASSES] = passes


@njit(cache=True)
def _select_game(g, boards, hists, node_i, node_f, e_prior, e_move, e_child, game_i, game_f, params,
                 perm, scratch_board, tmp_planes, own, slots, spatial, glob, leaf, counts, bkeys, brefs, bsums,
                 version, prev_boards, scratch_prev, feature_work):
    """Descend game g until it yields a leaf to evaluate (True) or its search ends.

    With feature version 2 the two boards before each descent position are
    kept in scratch_prev (from the root's, prev_boards[g]) for the ladder planes.
    """
    gi = game_i[g]
    ni = node_i[g]
    nf = node_f[g]
    ep = e_prior[g]
    em = e_move[g]
    ec = e_child[g]
    bd = boards[g]
    t = hists[g]
    node_cap = ni.shape[0]
    edge_cap = ep.shape[0]
    n = bd[B.H_SIZE]
    blen = B.board_len(n)
    komi = game_f[g, G_KOMI]
    cpuct = params[P_CPUCT]
    fpu_pow = params[P_FPU_PARENT_POW]
    svb = params[P_SVB_FACTOR] != 0.0
    conservative = params[P_CONSERVATIVE_PASS] != 0.0
    sb = scratch_board[:blen]
    keep_prev = version == features.KATAGO_V7
    p1 = scratch_prev[0, :blen]
    p2 = scratch_prev[1, :blen]
    while ni[0, N_VISITS] < gi[G_TARGET]:
        sb[:] = bd[:blen]
        if keep_prev:
            p1[:] = prev_boards[g, 0, :blen]
            p2[:] = prev_boards[g, 1, :blen]
        depth = 0
        node = 0
        full = False
        root_pass = False  # this descent began with the root's pass (conservative pass: not terminal)
        while ni[node, N_STATE] == EXPANDED:
            c = sb[B.H_TO_MOVE]
            sign = 1.0 if c == B.BLACK else -1.0
            if node == 0:
                e = _select_edge(ni, nf, ep, ec, node, sign, cpuct, game_f[g, G_ROOT_FPU],
                                 params[P_FORCED_COEFF] if gi[G_FORCED] == 1 else 0.0, fpu_pow)
                root_pass = conservative and em[e] == n * n
            else:
                e = _select_edge(ni, nf, ep, ec, node, sign, cpuct, params[P_FPU], 0.0, fpu_pow)
            key = bucket_key(sb, em[e], c) if svb and ec[e] < 0 else 0
            if keep_prev:
                p2[:] = p1
                p1[:] = sb
            B.play(sb, t, B.move_of_index(sb, em[e]), c)
            slots[depth] = sb[B.H_HIST_SLOT]
            depth += 1
            child = ec[e]
            if child < 0:
                child = gi[G_NODES]
                if child >= node_cap:
                    full = True
                    break
                gi[G_NODES] = child + 1
                ni[child, N_VISITS] = 0
                ni[child, N_FIRST] = -1
                ni[child, N_COUNT] = 0
                ni[child, N_PARENT] = node
                ni[child, N_STATE] = NEW
                ni[child, N_BUCKET] = _bucket(bkeys[g], brefs[g], bsums[g], key) if key != 0 else -1
                nf[child, :] = 0.0
                ec[e] = child
            node = child
        found = False
        if not full:
            state = ni[node, N_STATE]
            if state == TERMINAL:
                if svb:
                    _backup_biased(ni, nf, bsums[g], node, nf[node, N_UTIL], nf[node, N_WL], nf[node, N_SCORE],
                                   params[P_SVB_FACTOR], params[P_SVB_EXPONENT])
                else:
                    _backup(ni, nf, node, nf[node, N_UTIL], nf[node, N_WL], nf[node, N_SCORE])
                counts[0] += 1
            elif (sb[B.H_PASSES] >= 2 and not (root_pass and depth == 1)) or sb[B.H_MOVE_NUM] >= gi[G_MAX_MOVES]:
                u, wl, s = terminal_value(sb, komi, game_f[g, G_SCORE_CENTER], params, own)
                nf[node, N_UTIL] = u
                nf[node, N_WL] = wl
                nf[node, N_SCORE] = s
                ni[node, N_STATE] = TERMINAL
                if svb:
                    _backup_biased(ni, nf, bsums[g], node, u, wl, s, params[P_SVB_FACTOR], params[P_SVB_EXPONENT])
                else:
                    _backup(ni, nf, node, u, wl, s)
                counts[0] += 1
            elif _create_edges(sb, t, ni, ep, em, ec, gi, node, edge_cap):
                ni[node, N_STATE] = PENDING
                sym = np.random.randint(8) if gi[G_SYMMETRY] == 1 else 0
                # conservative pass: the root after the opponent's pass, and the root's pass that would end the game
                hide = conservative and depth == 0 and sb[B.H_PASSES] >= 1
                if hide or (root_pass and depth == 1 and sb[B.H_PASSES] >= 2):
                    _write_features_hiding_passes(sb, t, komi, sym, perm, tmp_planes, spatial, glob, version,
                                                  feature_work)
                else:
                    _write_features(sb, t, komi, sym, perm, tmp_planes, spatial, glob, version, p1, p2,
                                    feature_work)
                leaf[0] = g
                leaf[1] = node
                leaf[2] = sym
                leaf[3] = sb[B.H_TO_MOVE]
                found = True
            else:
                full = True
        for i in range(depth - 1, -1, -1):
            B.hist_remove(t, slots[i])
        if full:
            # Out of pool: end this search with the visits it has.
            gi[G_TARGET] = ni[0, N_VISITS]
            return False
        if found:
            return True
    return False


@njit(cache=True)
def select_leaves(boards, hists, node_i, node_f, e_prior, e_move, e_child, game_i, game_f, params,
                  perm, scratch_board, tmp_planes, own, slots, spatial, glob, leaves, counts, bkeys, brefs, bsums,
                  version, prev_boards, scratch_prev, feature_work):
    """One leaf from every searching game into the batch; returns the batch size.

    leaves[k] = (game, node, symmetry, colour to move) of batch row k;
    counts[0] is increased by the visits that ended at terminal positions.
    """
    k = 0
    for g in range(boards.shape[0]):
        if game_i[g, G_ACTIVE] != 1 or node_i[g, 0, N_VISITS] >= game_i[g, G_TARGET]:
            continue
        if _select_game(g, boards, hists, node_i, node_f, e_prior, e_move, e_child, game_i, game_f,
                        params, perm, scratch_board, tmp_planes, own, slots, spatial[k], glob[k],
                        leaves[k], counts, bkeys, brefs, bsums, version, prev_boards, scratch_prev, feature_work):
            k += 1
    return k


@njit(cache=True)
def prepare_root(node_i, e_prior, g, temperature, noise_weight, alpha_total, shaped):
    """Root policy temperature, then Dirichlet noise (shaped: half on high-policy moves), on game g's root priors."""
    first = node_i[g, 0, N_FIRST]
    count = node_i[g, 0, N_COUNT]
    p = np.empty(count)
    for i in range(count):
        p[i] = e_prior[g, first + i]
    puct.apply_policy_temperature(p, temperature)
    puct.add_dirichlet_noise(p, noise_weight, alpha_total, shaped)
    for i in range(count):
        e_prior[g, first + i] = p[i]


@njit(cache=True)
def expand_leaves(count, policy, value, score, leaves, boards, node_i, node_f, e_prior, e_move, game_i,
                  game_f, params, inv, bsums):
    """Priors, value and backup for batch rows 0..count-1 from the evaluator's outputs.

    policy (B, P*P+1) move probabilities (renormalised here over the legal
    moves), value (B, 3) win / loss / draw probabilities and score (B,)
    points, all from the leaf mover's view and in the symmetry's frame.
    """
    pos_len_sq = policy.shape[1] - 1
    pos_len = int(math.sqrt(pos_len_sq) + 0.5)
    for k in range(count):
        g = leaves[k, 0]
        node = leaves[k, 1]
        sym = leaves[k, 2]
        colour = leaves[k, 3]
        n = boards[g, B.H_SIZE]
        area = n * n
        ni = node_i[g]
        nf = node_f[g]
        ep = e_prior[g]
        em = e_move[g]
        first = ni[node, N_FIRST]
        end = first + ni[node, N_COUNT]
        total = 0.0
        for e in range(first, end):
            m = em[e]
            if m == area:
                idx = pos_len_sq
            else:
                j = inv[n, sym, m]
                jy = j // n
                idx = jy * pos_len + (j - jy * n)
            x = max(float(policy[k, idx]), 0.0)
            ep[e] = x
            total += x
        if total > 0.0:
            for e in range(first, end):
                ep[e] = ep[e] / total
        else:
            for e in range(first, end):
                ep[e] = 1.0 / (end - first)
        w = float(value[k, 0])
        lo = float(value[k, 1])
        sign = 1.0 if colour == B.BLACK else -1.0
        wl = sign * (w - lo) / max(w + lo + float(value[k, 2]), 1e-12)  # Black's view from here
        s = sign * float(score[k])
        if node == 0 and game_i[g, G_CENTER_PENDING] == 1:
            game_i[g, G_CENTER_PENDING] = 0
            game_f[g, G_SCORE_CENTER] = puct.dynamic_score_center(s, params[P_DYN_ZERO_WEIGHT], params[P_DYN_SCALE],
                                                                  area)
        u = utility(wl, s, game_f[g, G_SCORE_CENTER], params, area)
        nf[node, N_UTIL] = u
        nf[node, N_WL] = wl
        nf[node, N_SCORE] = s
        ni[node, N_STATE] = EXPANDED
        if node == 0 and game_i[g, G_ROOT_PREP] == 1:
            game_i[g, G_ROOT_PREP] = 0
            prepare_root(node_i, e_prior, g, game_f[g, G_ROOT_TEMP], game_f[g, G_NOISE_WEIGHT],
                         params[P_ALPHA_TOTAL], params[P_NOISE_SHAPED] != 0.0)
        factor = params[P_SVB_FACTOR]
        if factor != 0.0:
            b = ni[node, N_BUCKET]
            bias = 0.0
            if b >= 0 and bsums[g, b, B_WEIGHT] > 0.001:
                bias = factor * bsums[g, b, B_DELTA] / bsums[g, b, B_WEIGHT]
            nf[node, N_BIAS] = bias
            _backup_biased(ni, nf, bsums[g], node, u + bias, wl, s, factor, params[P_SVB_EXPONENT])
        else:
            _backup(ni, nf, node, u, wl, s)


@njit(cache=True)
def root_children(node_i, node_f, e_prior, e_move, e_child, g, colour, moves, visits, priors, q, q_sq):
    """Game g's root children: move index, visits, prior, mean utility (mover's view) and its mean square.

    Returns the number of children written.
    """
    ni = node_i[g]
    nf = node_f[g]
    first = ni[0, N_FIRST]
    count = ni[0, N_COUNT]
    sign = 1.0 if colour == B.BLACK else -1.0
    for i in range(count):
        e = first + i
        moves[i] = e_move[g, e]
        priors[i] = e_prior[g, e]
        c = e_child[g, e]
        if c >= 0 and ni[c, N_VISITS] > 0:
            visits[i] = ni[c, N_VISITS]
            q[i] = sign * nf[c, N_USUM] / ni[c, N_VISITS]
            q_sq[i] = nf[c, N_USQSUM] / ni[c, N_VISITS]
        else:
            visits[i] = 0
            q[i] = 0.0
            q_sq[i] = 0.0
    return count


@njit(cache=True)
def recompute_utilities(node_i, node_f, game_i, game_f, params, g, area):
    """Game g's node utilities and their sums under the game's current score centre.

    A node's utility sum is its own utility plus its children's sums (a
    terminal node: its utility once per visit); children come after their
    parents in the pools, so one pass backwards adds each into its parent.
    KataGo likewise recomputes its tree's stats when the centre moves.
    """
    ni = node_i[g]
    nf = node_f[g]
    used = game_i[g, G_NODES]
    center = game_f[g, G_SCORE_CENTER]
    for k in range(used):
        state = ni[k, N_STATE]
        if state == EXPANDED or state == TERMINAL:
            u = utility(nf[k, N_WL], nf[k, N_SCORE], center, params, area)
            nf[k, N_UTIL] = u
            if state == TERMINAL:
                nf[k, N_USUM] = ni[k, N_VISITS] * u
                nf[k, N_USQSUM] = ni[k, N_VISITS] * u * u
            else:
                own_u = u + nf[k, N_BIAS]
                nf[k, N_USUM] = own_u
                nf[k, N_USQSUM] = own_u * own_u
        else:
            nf[k, N_USUM] = 0.0
            nf[k, N_USQSUM] = 0.0
    for k in range(used - 1, 0, -1):
        parent = ni[k, N_PARENT]
        if parent >= 0:
            nf[parent, N_USUM] += nf[k, N_USUM]
            nf[parent, N_USQSUM] += nf[k, N_USQSUM]


@njit(cache=True)
def reroot(node_i, node_f, e_prior, e_move, e_child, game_i, g, move,
           s_ni, s_nf, s_prior, s_move, s_child, queue, qparent, bkeys, brefs, bsums, params):
    """Make the root's child by move the new root, keeping its subtree.

    The subtree is copied breadth first into scratch arrays and back to the
    front of the pools. Returns the nodes kept (0: the tree was reset).
    With subtree value bias, the dropped nodes (and the new root, which has
    no bucket) take P_SVB_FREE_PROP of what they gave their buckets back
    out, as KataGo does, and buckets no kept node refers to are dropped.
    """
    svb = params[P_SVB_FACTOR] != 0.0
    ni = node_i[g]
    nf = node_f[g]
    ep = e_prior[g]
    em = e_move[g]
    ec = e_child[g]
    child = -1
    if ni[0, N_STATE] == EXPANDED:
        first = ni[0, N_FIRST]
        for e in range(first, first + ni[0, N_COUNT]):
            if em[e] == move:
                child = ec[e]
                break
    if child < 0 or ni[child, N_STATE] != EXPANDED:
        reset_tree(node_i, node_f, game_i, g)
        if svb:
            clear_buckets(bkeys, brefs, g)
        return 0
    queue[0] = child
    qparent[0] = -1
    qn = 1
    ne = 0
    i = 0
    while i < qn:
        old = queue[i]
        for col in range(NODE_INTS):
            s_ni[i, col] = ni[old, col]
        for col in range(NODE_FLOATS):
            s_nf[i, col] = nf[old, col]
        s_ni[i, N_PARENT] = qparent[i]
        if ni[old, N_STATE] == EXPANDED:
            first = ni[old, N_FIRST]
            count = ni[old, N_COUNT]
            s_ni[i, N_FIRST] = ne
            for e in range(first, first + count):
                s_prior[ne] = ep[e]
                s_move[ne] = em[e]
                c = ec[e]
                if c >= 0:
                    queue[qn] = c
                    qparent[qn] = i
                    s_child[ne] = qn
                    qn += 1
                else:
                    s_child[ne] = -1
                ne += 1
        i += 1
    if svb:
        _drop_buckets(ni, nf, game_i[g, G_NODES], queue, qn, s_ni, s_nf, bkeys[g], brefs[g], bsums[g],
                      params[P_SVB_FREE_PROP])
    ni[:qn] = s_ni[:qn]
    nf[:qn] = s_nf[:qn]
    ep[:ne] = s_prior[:ne]
    em[:ne] = s_move[:ne]
    ec[:ne] = s_child[:ne]
    game_i[g, G_NODES] = qn
    game_i[g, G_EDGES] = ne
    return qn


@njit(cache=True)
def clear_buckets(bkeys, brefs, g):
    """Game g's subtree value bias table is empty (its tree was reset)."""
    bkeys[g, :] = 0
    brefs[g, :] = 0


@njit(cache=True)
def _drop_buckets(ni, nf, used, queue, kept, s_ni, s_nf, keys, refs, sums, free_prop):
    """Reroot's bucket bookkeeping: old nodes not kept (and the new root) leave their buckets.

    queue[:kept] are the kept old nodes in their new order (s_ni, s_nf: their
    new rows, root first). Buckets still referred to are rehashed into a
    fresh table and the kept nodes' entries renumbered.
    """
    keep = np.zeros(used, dtype=np.bool_)
    for i in range(1, kept):
        keep[queue[i]] = True
    for old in range(used):
        e = ni[old, N_BUCKET]
        if e >= 0 and not keep[old]:
            sums[e, B_DELTA] -= free_prop * nf[old, N_BUCKET_DELTA]
            sums[e, B_WEIGHT] -= free_prop * nf[old, N_BUCKET_WEIGHT]
            refs[e] -= 1
    s_ni[0, N_BUCKET] = -1
    s_nf[0, N_BUCKET_DELTA] = 0.0
    s_nf[0, N_BUCKET_WEIGHT] = 0.0
    cap = keys.shape[0]
    new_keys = np.zeros(cap, dtype=keys.dtype)
    new_refs = np.zeros(cap, dtype=refs.dtype)
    new_sums = np.zeros_like(sums)
    remap = np.full(cap, -1, dtype=np.int64)
    mask = cap - 1
    for i in range(cap):
        if keys[i] != 0 and refs[i] > 0:
            j = keys[i] & mask
            while new_keys[j] != 0:
                j = (j + 1) & mask
            new_keys[j] = keys[i]
            new_refs[j] = refs[i]
            new_sums[j, B_DELTA] = sums[i, B_DELTA]
            new_sums[j, B_WEIGHT] = sums[i, B_WEIGHT]
            remap[i] = j
    keys[:] = new_keys
    refs[:] = new_refs
    sums[:] = new_sums
    for i in range(1, kept):
        e = s_ni[i, N_BUCKET]
        if e >= 0:
            s_ni[i, N_BUCKET] = remap[e]
