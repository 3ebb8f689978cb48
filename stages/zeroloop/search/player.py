"""A GTP player that searches with a net: the same compiled search, one game.

``SearchPlayer.genmove(game, colour)`` copies the game's board and superko
history into a one-slot ``BatchSearch``, runs ``visits`` visits of PUCT
with the net (a random symmetry per evaluation; no root noise, no root
policy temperature, no forced playouts) and plays the most visited move
(with ``use_lcb``: the move whose value's lower confidence bound is
clearly best, if it has enough visits).
Each genmove searches afresh: GTP may undo, set up or replace the
position between calls. Asked for a move after two passes (a referee's
cleanup phase), it counts the passes from there, so it can still capture
dead stones before two more passes end the game. ``from_args`` builds it for ``zeroloop gtp
--model PATH --visits V`` (``zeroloop.player.model_player``).
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from zeroloop import runtime
from zeroloop.go import board as B
from zeroloop.go.game import Game
from zeroloop.player import RESIGN
from zeroloop.search.batch import BatchSearch, SearchParams
from zeroloop.search.evaluators import Evaluator, net_evaluator

log = logging.getLogger(__name__)


class SearchPlayer:
    def __init__(self, evaluator: Evaluator, visits: int, params: SearchParams = SearchParams(),
                 resign_below: float | None = None, name: str | None = None):
        """resign_below: resign when the root's win-loss value (-1..1) is below it (None: never)."""
        if visits < 1:
            raise ValueError(f"visits must be at least 1, got {visits}")
        self.evaluator = evaluator
        self.visits = visits
        self.params = params
        self.resign_below = resign_below
        self.name = name or f"zeroloop-{evaluator.name}-v{visits}"
        self._search: BatchSearch | None = None
        self.last_result = None  # the root of the last search (for analysis and tests)

    def _search_for(self, size: int, history: int) -> BatchSearch:
        s = self._search
        need_hist = 2 * (history + self.visits + 16) + 64
        if s is None or s.max_board_size != size or s.hists.shape[1] < need_hist:
            if size > self.evaluator.pos_len:
                raise ValueError(f"board size {size} is larger than the model's {self.evaluator.pos_len}")
            s = BatchSearch(1, size, self.evaluator.pos_len, self.visits, max(history, 4 * size * size),
                            self.params, getattr(self.evaluator, "feature_version", 1))
            self._search = s
        return s

    def genmove(self, game: Game, colour: int):
        """The most visited move after the search: (x, y), None for pass, or "resign"."""
        n = game.size
        history = int(np.count_nonzero(game.hist))
        search = self._search_for(n, history)
        moves_played = int(game.board[B.H_MOVE_NUM])
        max_moves = game.max_moves if game.max_moves else moves_played + 4 * n * n
        board = game.board
        if board[B.H_PASSES] >= 2:
            # Asked for a move after two passes: the controller plays a cleanup phase (zeroloop match, KGS), which
            # two more passes end. Counted from the game's start the root would be over, and the search would pass
            # without a look at the dead stones still standing in its area.
            board = board.copy()
            board[B.H_PASSES] -= 2
        search.set_position(0, board, game.hist, colour, game.rules.komi, max_moves, game.recent_boards())
        search.start_search(0, self.visits)
        evaluate = self.evaluator.evaluate
        while search.searching(0):
            search.step(lambda spatial, glob, _games: evaluate(spatial, glob))
        r = search.root_result(0)
        self.last_result = r
        if len(r.moves) == 0:
            return None
        weights = r.play_weights(self.params)
        best = int(np.lexsort((-r.priors, -weights))[0])  # most weight (visits, LCB), then highest prior
        log.debug("genmove: %d visits, value %.3f, score %.1f", r.root_visits, r.root_wl, r.root_score)
        if self.resign_below is not None and r.root_wl < self.resign_below:
            return RESIGN
        move = int(r.moves[best])
        return None if move == n * n else (move % n, move // n)


def from_args(args: argparse.Namespace) -> SearchPlayer:
    """The player for `zeroloop gtp --model PATH --visits V [--device D]`."""
    from zeroloop.nn.modelfile import load_model_at

    runtime.set_threads(getattr(args, "threads", None))
    seed = runtime.seed_everything(getattr(args, "seed", None))
    device = runtime.resolve_device(getattr(args, "device", "auto"))
    net, info = load_model_at(args.model, device)
    log.info("gtp: model %s (%s, pos_len %d), %d visits, seed %d", info.name, info.config.name, info.pos_len,
             args.visits, seed)
    params = SearchParams(use_lcb=bool(getattr(args, "lcb", False)),
                          conservative_pass=bool(getattr(args, "conservative_pass", False)))
    return SearchPlayer(net_evaluator(net, info.name, device, max_batch=8), args.visits, params,
                        name=f"zeroloop-{info.name}")
