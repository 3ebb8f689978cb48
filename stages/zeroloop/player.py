"""Players: what chooses a move for a colour in a game.

The GTP engine (and anything else that needs a move) talks to a ``Player``
only through ``genmove(game, colour)``, so the protocol code never changes
when a stronger player arrives. ``RandomPlayer`` is the baseline; a search
player over a trained net lives in ``zeroloop.search.player`` (a module with
``from_args(args) -> Player``), loaded by ``model_player`` only when a model
is asked for.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Protocol

import numpy as np

from zeroloop.errors import UserError
from zeroloop.go import board as B
from zeroloop.go.game import Game, Move

RESIGN = "resign"
Decision = Move | str  # a point (x, y), None for pass, or RESIGN

SEARCH_PLAYER_MODULE = "zeroloop.search.player"


class Player(Protocol):
    name: str

    def genmove(self, game: Game, colour: int) -> Decision:
        """The move colour plays in game (which the caller then plays)."""
        ...


def own_eyes(game: Game, colour: int) -> np.ndarray:
    """(size*size,) bool: empty points whose on-board neighbours are all colour's."""
    s = game.size + 2
    area = game.board[B.HEADER:B.HEADER + s * s].reshape(s, s)
    ok = (area == colour) | (area == B.WALL)
    inner = area[1:-1, 1:-1]
    eye = (inner == B.EMPTY) & ok[:-2, 1:-1] & ok[2:, 1:-1] & ok[1:-1, :-2] & ok[1:-1, 2:]
    return eye.ravel()


def sensible_moves(game: Game, colour: int) -> np.ndarray:
    """Policy indices (y*size + x) of legal moves that fill none of colour's own eyes."""
    mask = np.zeros(game.size * game.size + 1, dtype=np.int64)
    B.legal_mask(game.board, game.hist, colour, mask)
    return np.flatnonzero((mask[:-1] == 1) & ~own_eyes(game, colour))


class RandomPlayer:
    """Uniform among legal moves that do not fill its own single-point eyes; else pass."""

    name = "random"

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def genmove(self, game: Game, colour: int) -> Decision:
        moves = sensible_moves(game, colour)
        if len(moves) == 0:
            return None
        i = int(self.rng.choice(moves))
        return (i % game.size, i // game.size)


def model_player(args: argparse.Namespace) -> Player:
    """The search player for ``--model``, or a clear error while it does not exist."""
    try:
        module = importlib.import_module(SEARCH_PLAYER_MODULE)
    except ModuleNotFoundError as e:
        if e.name in ("zeroloop.search", SEARCH_PLAYER_MODULE):
            raise UserError(f"--model {args.model}: playing with a model is not available yet in this "
                            f"build ({SEARCH_PLAYER_MODULE} is missing); use --random") from None
        raise
    return module.from_args(args)
