"""Search trees for many games at once: preallocated pools, compiled per visit.

Each game slot g owns a node pool and an edge pool (rows of 2-D/3-D arrays,
so every game's tree lives in the same few arrays and nothing is allocated
per visit):

- nodes ``node_i[g, k, :]`` (int32: visits, first edge, edge count, parent,
  state) and ``node_f[g, k, :]`` (float64: sums of utility, win-loss and
  score over the visits below, and the node's own evaluation). Values are
  stored from Black's view, so backup adds the same numbers all the way up
  and a parent flips the sign for the player choosing.
- edges ``e_prior/e_move/e_child[g, j]``: a node's children are one
  contiguous block of edges, one per legal move (created when the node is
  selected as a leaf, priors filled when its evaluation returns); a child
  node is created lazily, the first time its edge is followed.

Node 0 is always the root: after a move, ``reroot`` copies the chosen
child's subtree to the front of the pools (breadth first, through scratch
arrays), so a pool never fragments and subtree statistics carry over.

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
NODE_INTS = 5
# node_f columns: sums over visits (Black's view), then the node's own value
N_USUM, N_WLSUM, N_SSUM, N_UTIL, N_WL, N_SCORE = range(6)
NODE_FLOATS = 6
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
GAME_INTS = 8
# game_f columns
G_KOMI, G_ROOT_TEMP, G_NOISE_WEIGHT, G_ROOT_FPU = range(4)
GAME_FLOATS = 4
# params
P_CPUCT, P_FPU, P_FORCED_COEFF, P_SCORE_FACTOR, P_ALPHA_TOTAL = range(5)
NUM_PARAMS = 5


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
    node_f[g, 0, :] = 0.0
    game_i[g, G_NODES] = 1
    game_i[g, G_EDGES] = 0


@njit(cache=True, inline="always")
def _backup(ni, nf, node, u, wl, s):
    while node >= 0:
        ni[node, N_VISITS] += 1
        nf[node, N_USUM] += u
        nf[node, N_WLSUM] += wl
        nf[node, N_SSUM] += s
        node = ni[node, N_PARENT]


@njit(cache=True)
def _select_edge(ni, nf, ep, ec, node, sign, cpuct, fpu_reduction, forced_coeff):
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
    parent_q = sign * nf[node, N_USUM] / max(ni[node, N_VISITS], 1)
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
def terminal_value(b, komi, score_factor, own):
    """(utility, win-loss, score) of a finished position, Black's view."""
    n = b[B.H_SIZE]
    score = B.area_ownership(b, own) - komi
    wl = 1.0 if score > 0 else (-1.0 if score < 0 else 0.0)
    return wl + puct.score_utility(score, score_factor, n * n), wl, score


@njit(cache=True)
def _write_features(b, t, komi, sym, perm, tmp, spatial, glob):
    """Features of b under symmetry sym into spatial (C,P,P) and glob."""
    if sym == 0:
        features.encode_into(b, t, komi, spatial, glob)
        return
    features.encode_into(b, t, komi, tmp, glob)
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
def _select_game(g, boards, hists, node_i, node_f, e_prior, e_move, e_child, game_i, game_f, params,
                 perm, scratch_board, tmp_planes, own, slots, spatial, glob, leaf, counts):
    """Descend game g until it yields a leaf to evaluate (True) or its search ends."""
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
    score_factor = params[P_SCORE_FACTOR]
    sb = scratch_board[:blen]
    while ni[0, N_VISITS] < gi[G_TARGET]:
        sb[:] = bd[:blen]
        depth = 0
        node = 0
        full = False
        while ni[node, N_STATE] == EXPANDED:
            c = sb[B.H_TO_MOVE]
            sign = 1.0 if c == B.BLACK else -1.0
            if node == 0:
                e = _select_edge(ni, nf, ep, ec, node, sign, cpuct, game_f[g, G_ROOT_FPU],
                                 params[P_FORCED_COEFF] if gi[G_FORCED] == 1 else 0.0)
            else:
                e = _select_edge(ni, nf, ep, ec, node, sign, cpuct, params[P_FPU], 0.0)
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
                nf[child, :] = 0.0
                ec[e] = child
            node = child
        found = False
        if not full:
            state = ni[node, N_STATE]
            if state == TERMINAL:
                _backup(ni, nf, node, nf[node, N_UTIL], nf[node, N_WL], nf[node, N_SCORE])
                counts[0] += 1
            elif sb[B.H_PASSES] >= 2 or sb[B.H_MOVE_NUM] >= gi[G_MAX_MOVES]:
                u, wl, s = terminal_value(sb, komi, score_factor, own)
                nf[node, N_UTIL] = u
                nf[node, N_WL] = wl
                nf[node, N_SCORE] = s
                ni[node, N_STATE] = TERMINAL
                _backup(ni, nf, node, u, wl, s)
                counts[0] += 1
            elif _create_edges(sb, t, ni, ep, em, ec, gi, node, edge_cap):
                ni[node, N_STATE] = PENDING
                sym = np.random.randint(8) if gi[G_SYMMETRY] == 1 else 0
                _write_features(sb, t, komi, sym, perm, tmp_planes, spatial, glob)
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
                  perm, scratch_board, tmp_planes, own, slots, spatial, glob, leaves, counts):
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
                        leaves[k], counts):
            k += 1
    return k


@njit(cache=True)
def prepare_root(node_i, e_prior, g, temperature, noise_weight, alpha_total):
    """Root policy temperature, then Dirichlet noise, on game g's root priors."""
    first = node_i[g, 0, N_FIRST]
    count = node_i[g, 0, N_COUNT]
    p = np.empty(count)
    for i in range(count):
        p[i] = e_prior[g, first + i]
    puct.apply_policy_temperature(p, temperature)
    puct.add_dirichlet_noise(p, noise_weight, alpha_total)
    for i in range(count):
        e_prior[g, first + i] = p[i]


@njit(cache=True)
def expand_leaves(count, policy, value, score, leaves, boards, node_i, node_f, e_prior, e_move, game_i,
                  game_f, params, inv):
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
        wl = (w - lo) / max(w + lo + float(value[k, 2]), 1e-12)
        s = float(score[k])
        u = wl + puct.score_utility(s, params[P_SCORE_FACTOR], area)
        sign = 1.0 if colour == B.BLACK else -1.0
        nf[node, N_UTIL] = sign * u
        nf[node, N_WL] = sign * wl
        nf[node, N_SCORE] = sign * s
        ni[node, N_STATE] = EXPANDED
        if node == 0 and game_i[g, G_ROOT_PREP] == 1:
            game_i[g, G_ROOT_PREP] = 0
            prepare_root(node_i, e_prior, g, game_f[g, G_ROOT_TEMP], game_f[g, G_NOISE_WEIGHT],
                         params[P_ALPHA_TOTAL])
        _backup(ni, nf, node, sign * u, sign * wl, sign * s)


@njit(cache=True)
def root_children(node_i, node_f, e_prior, e_move, e_child, g, colour, moves, visits, priors, q):
    """Game g's root children: move index, visits, prior, mean utility (mover's view).

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
        else:
            visits[i] = 0
            q[i] = 0.0
    return count


@njit(cache=True)
def reroot(node_i, node_f, e_prior, e_move, e_child, game_i, g, move,
           s_ni, s_nf, s_prior, s_move, s_child, queue, qparent):
    """Make the root's child by move the new root, keeping its subtree.

    The subtree is copied breadth first into scratch arrays and back to the
    front of the pools. Returns the nodes kept (0: the tree was reset).
    """
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
    ni[:qn] = s_ni[:qn]
    nf[:qn] = s_nf[:qn]
    ep[:ne] = s_prior[:ne]
    em[:ne] = s_move[:ne]
    ec[:ne] = s_child[:ne]
    game_i[g, G_NODES] = qn
    game_i[g, G_EDGES] = ne
    return qn
