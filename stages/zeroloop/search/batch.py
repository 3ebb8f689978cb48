"""Many searches at once, one batched evaluation per step.

``BatchSearch`` owns the boards, superko tables and tree pools of a fixed
number of game slots (``zeroloop.search.tree``) and the batch buffers the
compiled code writes features into. The Python work per step is three
calls: the compiled select (one leaf from every searching game), the
evaluator (one forward pass for the whole batch), the compiled expand and
backup. Per-move work (start a search, read the root, play a move and keep
the chosen subtree) is also here, called by the self-play engine or a GTP
player once per move.

Search parameters come from ``SearchParams``; what changes per search
(visits, whether it is a full search with noise, forced playouts and root
temperature, whether it starts from a fresh tree) is set by
``start_search``, which also sets the dynamic score centre of the search.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from zeroloop import features
from zeroloop.go import board as B
from zeroloop.search import puct, tree
from zeroloop.search.evaluators import EvalOutput

EvaluateFn = Callable[[np.ndarray, np.ndarray, np.ndarray], EvalOutput]


@dataclass(frozen=True)
class SearchParams:
    """Search constants (KataGo selfplay1.cfg values by default; its later refinements off)."""

    cpuct: float = 1.1
    fpu_reduction: float = 0.2
    root_fpu_reduction: float = 0.0
    forced_playouts_coeff: float = 2.0
    score_utility_factor: float = 0.1
    dirichlet_alpha_total: float = 10.83
    dirichlet_weight: float = 0.25
    random_symmetry: bool = True
    shaped_noise: bool = False  # half the noise on high log-policy moves (KataGo: on)
    fpu_parent_weight_pow: float = 0.0  # > 0: FPU parent value weighted by visited policy ** pow (KataGo: 2)
    dynamic_score_utility_factor: float = 0.0  # KataGo selfplay: 0.40
    dynamic_score_center_zero_weight: float = 0.25
    dynamic_score_center_scale: float = 0.5
    use_lcb: bool = False  # choose moves by lower confidence bound (KataGo: on in play, gatekeeper, match)
    lcb_stdevs: float = 5.0
    min_visit_prop_for_lcb: float = 0.15
    subtree_value_bias_factor: float = 0.0  # KataGo selfplay: 0.30
    subtree_value_bias_exponent: float = 0.8
    subtree_value_bias_free_prop: float = 0.8
    conservative_pass: bool = False  # a root pass after the opponent's is not the game's end (KataGo's GTP: on)

    def array(self) -> np.ndarray:
        p = np.zeros(tree.NUM_PARAMS)
        p[tree.P_CPUCT] = self.cpuct
        p[tree.P_FPU] = self.fpu_reduction
        p[tree.P_FORCED_COEFF] = self.forced_playouts_coeff
        p[tree.P_SCORE_FACTOR] = self.score_utility_factor
        p[tree.P_ALPHA_TOTAL] = self.dirichlet_alpha_total
        p[tree.P_NOISE_SHAPED] = 1.0 if self.shaped_noise else 0.0
        p[tree.P_FPU_PARENT_POW] = self.fpu_parent_weight_pow
        p[tree.P_DYN_FACTOR] = self.dynamic_score_utility_factor
        p[tree.P_DYN_ZERO_WEIGHT] = self.dynamic_score_center_zero_weight
        p[tree.P_DYN_SCALE] = self.dynamic_score_center_scale
        p[tree.P_SVB_FACTOR] = self.subtree_value_bias_factor
        p[tree.P_SVB_EXPONENT] = self.subtree_value_bias_exponent
        p[tree.P_SVB_FREE_PROP] = self.subtree_value_bias_free_prop
        p[tree.P_CONSERVATIVE_PASS] = 1.0 if self.conservative_pass else 0.0
        return p

    @property
    def utility_radius(self) -> float:
        """Half the range utilities span: win-loss (1) plus the score utilities' bounds."""
        return 1.0 + self.score_utility_factor + self.dynamic_score_utility_factor


@dataclass
class RootResult:
    """A finished search's root: per child (moves are board policy indices)."""

    moves: np.ndarray  # int, y*n+x or n*n for pass
    visits: np.ndarray  # float64
    priors: np.ndarray  # float64 (after root temperature and noise)
    q: np.ndarray  # float64 mean utility, mover's view (0 where unvisited)
    root_visits: int
    root_wl: float  # mean win-loss, mover's view
    root_score: float  # mean score, mover's view
    q_sq: np.ndarray | None = None  # float64 mean squared utility (0 where unvisited)

    def target(self, pruned: bool, cpuct: float) -> np.ndarray:
        """Visit weights per child, policy-target pruned if asked."""
        if not pruned or len(self.visits) == 0 or self.visits.sum() <= 0:
            return self.visits.copy()
        out = np.zeros_like(self.visits)
        puct.prune_policy_target(self.priors, self.visits, self.q, cpuct, out)
        return out

    def play_weights(self, params: SearchParams, weights: np.ndarray | None = None) -> np.ndarray:
        """Weights to choose the move by: weights (default the visits), LCB-adjusted if params.use_lcb."""
        w = self.visits.copy() if weights is None else np.asarray(weights, dtype=np.float64).copy()
        if not params.use_lcb or self.q_sq is None or not np.any(self.visits > 0):
            return w
        out = np.empty_like(w)
        puct.lcb_selection_weights(w, self.visits, self.q, self.q_sq, self.priors, params.lcb_stdevs,
                                   params.min_visit_prop_for_lcb, params.utility_radius, out)
        return out


class BatchSearch:
    """Tree pools and batch buffers for num_games concurrent searches."""

    def __init__(self, num_games: int, max_board_size: int, pos_len: int, max_visits: int,
                 max_moves: int, params: SearchParams = SearchParams(), feature_version: int = features.FEATURE_VERSION):
        if max_board_size > pos_len:
            raise ValueError(f"board size {max_board_size} exceeds the net's pos_len {pos_len}")
        num_spatial, num_global = features.shape(feature_version)
        self.feature_version = feature_version
        self.num_games = num_games
        self.max_board_size = max_board_size
        self.pos_len = pos_len
        self.params = params
        self._params = params.array()
        area = max_board_size * max_board_size + 1
        self.node_cap = max_visits + 16
        self.edge_cap = self.node_cap * area
        g = num_games
        blen = int(B.board_len(max_board_size))
        self.boards = np.zeros((g, blen), dtype=np.int64)
        self.hists = np.zeros((g, len(B.hist_new(max_moves + self.node_cap))), dtype=np.int64)
        self.node_i = np.zeros((g, self.node_cap, tree.NODE_INTS), dtype=np.int32)
        self.node_f = np.zeros((g, self.node_cap, tree.NODE_FLOATS), dtype=np.float64)
        self.e_prior = np.zeros((g, self.edge_cap), dtype=np.float32)
        self.e_move = np.zeros((g, self.edge_cap), dtype=np.int16)
        self.e_child = np.zeros((g, self.edge_cap), dtype=np.int32)
        self.game_i = np.zeros((g, tree.GAME_INTS), dtype=np.int64)
        self.game_f = np.zeros((g, tree.GAME_FLOATS), dtype=np.float64)
        self.perm, self.inv = tree.symmetry_tables(max_board_size)
        # scratch for the compiled code
        self._scratch_board = np.zeros(blen, dtype=np.int64)
        self._tmp_planes = np.zeros((num_spatial, pos_len, pos_len), dtype=np.float32)
        self._own = np.zeros(max_board_size * max_board_size, dtype=np.int64)
        self._slots = np.zeros(max_moves + self.node_cap + 2, dtype=np.int64)
        self.spatial = np.zeros((g, num_spatial, pos_len, pos_len), dtype=np.float32)
        self.glob = np.zeros((g, num_global), dtype=np.float32)
        # the boards before each root's last two moves (feature version 2's ladder planes; else unused)
        keep = feature_version == features.KATAGO_V7
        self.prev_boards = np.zeros((g, 2, blen) if keep else (1, 2, 1), dtype=np.int64)
        self._scratch_prev = np.zeros((2, blen) if keep else (2, 1), dtype=np.int64)
        self._feature_work = np.zeros(int(features.work_len(max_board_size)) if keep else 1, dtype=np.int64)
        self.leaves = np.zeros((g, 4), dtype=np.int64)
        self.counts = np.zeros(1, dtype=np.int64)  # [0]: visits that ended at a terminal position
        self._s_ni = np.zeros((self.node_cap, tree.NODE_INTS), dtype=np.int32)
        self._s_nf = np.zeros((self.node_cap, tree.NODE_FLOATS), dtype=np.float64)
        self._s_prior = np.zeros(self.edge_cap, dtype=np.float32)
        self._s_move = np.zeros(self.edge_cap, dtype=np.int16)
        self._s_child = np.zeros(self.edge_cap, dtype=np.int32)
        self._queue = np.zeros(self.node_cap, dtype=np.int32)
        self._qparent = np.zeros(self.node_cap, dtype=np.int32)
        self._children = max_board_size * max_board_size + 1
        # subtree value bias buckets: an open-addressing table per game, at most half full
        buckets = 1 << int(2 * self.node_cap).bit_length() if params.subtree_value_bias_factor != 0 else 1
        self.bucket_keys = np.zeros((g, buckets), dtype=np.int64)
        self.bucket_refs = np.zeros((g, buckets), dtype=np.int32)
        self.bucket_sums = np.zeros((g, buckets, 2), dtype=np.float64)

    # --- per game ------------------------------------------------------------

    def new_game(self, g: int, size: int, ko_code: int, multi_suicide: bool, komi: float, max_moves: int) -> None:
        """Slot g starts an empty board of size with these rules and komi."""
        b = self.boards[g]
        b[:] = 0
        B.init_board(b, size, ko_code, multi_suicide)
        self.hists[g] = 0
        B.record_position(b, self.hists[g], B.WHITE)
        self._set_prev(g, None)
        self._activate(g, komi, max_moves)

    def set_position(self, g: int, board: np.ndarray, hist: np.ndarray, to_move: int, komi: float,
                     max_moves: int, prev: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Slot g searches a copy of a board array (any position, e.g. from GTP) with to_move to play.

        hist is that board's superko table (any capacity): its positions are
        re-inserted into the slot's own table. prev: the boards before its
        last move and the one earlier (feature version 2; default the board).
        """
        n = int(board[B.H_SIZE])
        blen = int(B.board_len(n))
        if blen > self.boards.shape[1]:
            raise ValueError(f"board size {n} is larger than this search's {self.max_board_size}")
        keys = hist[hist != 0]
        if 2 * (len(keys) + self.node_cap) + 64 > self.hists.shape[1]:
            raise ValueError(f"{len(keys)} earlier positions do not fit this search's superko table")
        b = self.boards[g]
        b[:] = 0
        b[:blen] = board[:blen]
        b[B.H_TO_MOVE] = to_move
        self.hists[g] = 0
        for k in keys:
            B.hist_add(self.hists[g], k)
        self._set_prev(g, prev)
        self._activate(g, komi, max_moves)

    def _set_prev(self, g: int, prev: tuple[np.ndarray, np.ndarray] | None) -> None:
        if self.feature_version != features.KATAGO_V7:
            return
        b = self.boards[g]
        blen = int(B.board_len(int(b[B.H_SIZE])))
        for i in range(2):
            src = b if prev is None else prev[i]
            self.prev_boards[g, i, :blen] = src[:blen]

    def recent_boards(self, g: int) -> tuple[np.ndarray, np.ndarray]:
        """Slot g's boards before the last move and before the one earlier (feature version 2; else the board)."""
        if self.feature_version != features.KATAGO_V7:
            return self.board(g), self.board(g)
        blen = int(B.board_len(self.size(g)))
        return self.prev_boards[g, 0, :blen], self.prev_boards[g, 1, :blen]

    def _activate(self, g: int, komi: float, max_moves: int) -> None:
        """Slot g's game settings and an empty tree, after its board was set."""
        self.game_f[g, tree.G_KOMI] = komi
        self.game_i[g, tree.G_MAX_MOVES] = max_moves
        self.game_i[g, tree.G_SYMMETRY] = 1 if self.params.random_symmetry else 0
        self.game_i[g, tree.G_TARGET] = 0
        self.game_i[g, tree.G_ACTIVE] = 1
        self._reset_tree(g)
        self.game_f[g, tree.G_SCORE_CENTER] = 0.0

    def _reset_tree(self, g: int) -> None:
        tree.reset_tree(self.node_i, self.node_f, self.game_i, g)
        tree.clear_buckets(self.bucket_keys, self.bucket_refs, g)

    def release(self, g: int) -> None:
        """Slot g holds no game (it is skipped by every step)."""
        self.game_i[g, tree.G_ACTIVE] = 0
        self.game_i[g, tree.G_TARGET] = 0

    def is_active(self, g: int) -> bool:
        return bool(self.game_i[g, tree.G_ACTIVE])

    def board(self, g: int) -> np.ndarray:
        """Slot g's board array (a view: do not modify)."""
        n = int(self.boards[g, B.H_SIZE])
        return self.boards[g, : B.board_len(n)]

    def size(self, g: int) -> int:
        return int(self.boards[g, B.H_SIZE])

    def to_move(self, g: int) -> int:
        return int(self.boards[g, B.H_TO_MOVE])

    def root_visits(self, g: int) -> int:
        return int(self.node_i[g, 0, tree.N_VISITS])

    def start_search(self, g: int, visits: int, full: bool = False, root_temperature: float = 1.0,
                     noise: bool = False, fresh: bool = False) -> None:
        """Search slot g's position until its root has `visits` visits.

        full: forced playouts and the reduced root FPU; noise: Dirichlet
        noise at the root; root_temperature: softens the root policy. The
        root keeps the visits of the subtree reused from the last move,
        unless fresh: then the tree is cleared and every visit is new (noise,
        temperature and forced playouts act on all of them, as KataGo's
        self-play clears its tree before a full search).
        """
        if fresh:
            self._reset_tree(g)
        self._set_score_center(g)
        gi = self.game_i[g]
        gi[tree.G_TARGET] = min(max(1, visits), self.node_cap - 2)
        gi[tree.G_FORCED] = 1 if full else 0
        p = self.params
        self.game_f[g, tree.G_ROOT_FPU] = p.root_fpu_reduction if noise else p.fpu_reduction
        self.game_f[g, tree.G_ROOT_TEMP] = root_temperature
        self.game_f[g, tree.G_NOISE_WEIGHT] = p.dirichlet_weight if noise else 0.0
        prep = noise or root_temperature != 1.0
        if prep and self.node_i[g, 0, tree.N_STATE] == tree.EXPANDED:
            tree.prepare_root(self.node_i, self.e_prior, g, root_temperature, self.game_f[g, tree.G_NOISE_WEIGHT],
                              p.dirichlet_alpha_total, p.shaped_noise)
            prep = False
        gi[tree.G_ROOT_PREP] = 1 if prep else 0

    def _set_score_center(self, g: int) -> None:
        """The dynamic score centre from the root's expected score (no visits yet: its first evaluation's).

        A reused tree's utilities are recomputed under the new centre.
        """
        self.game_i[g, tree.G_CENTER_PENDING] = 0
        p = self.params
        if p.dynamic_score_utility_factor == 0.0:
            return
        visits = self.root_visits(g)
        if visits == 0:
            self.game_i[g, tree.G_CENTER_PENDING] = 1
            return
        area = self.size(g) ** 2
        expected = self.node_f[g, 0, tree.N_SSUM] / visits
        center = puct.dynamic_score_center(expected, p.dynamic_score_center_zero_weight,
                                           p.dynamic_score_center_scale, area)
        if center != self.game_f[g, tree.G_SCORE_CENTER]:
            self.game_f[g, tree.G_SCORE_CENTER] = center
            tree.recompute_utilities(self.node_i, self.node_f, self.game_i, self.game_f, self._params, g, area)

    def hold(self, g: int) -> None:
        """Slot g keeps its game and tree but searches nothing until the next start_search.

        For a match where each player has its own BatchSearch over the same
        games: the player not to move waits (no pondering on the other's turn).
        """
        self.game_i[g, tree.G_TARGET] = 0

    def searching(self, g: int) -> bool:
        return bool(self.game_i[g, tree.G_ACTIVE]) and self.root_visits(g) < self.game_i[g, tree.G_TARGET]

    def root_result(self, g: int) -> RootResult:
        c = self._children
        moves = np.zeros(c, dtype=np.int64)
        visits = np.zeros(c)
        priors = np.zeros(c)
        q = np.zeros(c)
        q_sq = np.zeros(c)
        colour = self.to_move(g)
        k = tree.root_children(self.node_i, self.node_f, self.e_prior, self.e_move, self.e_child, g, colour,
                               moves, visits, priors, q, q_sq)
        nv = self.root_visits(g)
        sign = 1.0 if colour == B.BLACK else -1.0
        nf = self.node_f[g, 0]
        return RootResult(moves[:k], visits[:k], priors[:k], q[:k], nv,
                          sign * nf[tree.N_WLSUM] / max(nv, 1), sign * nf[tree.N_SSUM] / max(nv, 1), q_sq[:k])

    def play(self, g: int, move: int, reuse: bool = True) -> int:
        """Play policy index move in slot g and keep its subtree; returns captures."""
        b = self.boards[g]
        c = int(b[B.H_TO_MOVE])
        p = int(B.move_of_index(b, move))
        if not B.is_legal(b, self.hists[g], p, c):
            raise ValueError(f"illegal move index {move} in game slot {g}")
        if self.feature_version == features.KATAGO_V7:
            self.prev_boards[g, 1] = self.prev_boards[g, 0]
            self.prev_boards[g, 0] = b
        captured = int(B.play(b, self.hists[g], p, c))
        if reuse:
            tree.reroot(self.node_i, self.node_f, self.e_prior, self.e_move, self.e_child, self.game_i, g, move,
                        self._s_ni, self._s_nf, self._s_prior, self._s_move, self._s_child, self._queue,
                        self._qparent, self.bucket_keys, self.bucket_refs, self.bucket_sums, self._params)
        else:
            self._reset_tree(g)
        return captured

    def game_over(self, g: int) -> bool:
        b = self.boards[g]
        return b[B.H_PASSES] >= 2 or b[B.H_MOVE_NUM] >= self.game_i[g, tree.G_MAX_MOVES]

    # --- per step --------------------------------------------------------------

    @property
    def terminal_visits(self) -> int:
        """Visits so far that ended at a finished position (no evaluation)."""
        return int(self.counts[0])

    def step(self, evaluate: EvaluateFn) -> int:
        """Select a leaf in every searching game, evaluate them in one batch, back up.

        evaluate(spatial, glob, games) gets the batch rows' features and the
        game slot of each row. Returns the batch size (0: nothing searching).
        Visits made = the batch size + the change in terminal_visits.
        """
        k = tree.select_leaves(self.boards, self.hists, self.node_i, self.node_f, self.e_prior, self.e_move,
                               self.e_child, self.game_i, self.game_f, self._params, self.perm,
                               self._scratch_board, self._tmp_planes, self._own, self._slots, self.spatial,
                               self.glob, self.leaves, self.counts, self.bucket_keys, self.bucket_refs,
                               self.bucket_sums, self.feature_version, self.prev_boards, self._scratch_prev,
                               self._feature_work)
        if k == 0:
            return 0
        out = evaluate(self.spatial[:k], self.glob[:k], self.leaves[:k, 0])
        tree.expand_leaves(k, _c32(out.policy), _c32(out.value), _c32(out.score), self.leaves, self.boards, self.node_i, self.node_f,
                           self.e_prior, self.e_move, self.game_i, self.game_f, self._params, self.inv, self.bucket_sums)
        return k


def _c32(x: np.ndarray) -> np.ndarray:
    # One compiled signature: C-contiguous float32 (a no-op for evaluator outputs).
    return np.ascontiguousarray(x, dtype=np.float32)
