"""Positions that zeroloop and KataGo's engine both set up, and their inputs.

A position is a plain dict (JSON in the fixture): board ``size``, ``komi``,
``ko_rule`` and ``suicide`` (zeroloop's rules), and ``moves``, GTP vertices
played alternately from Black. ``random_positions`` makes such positions
from a seed (legal random play, no pass as the last move: after a pass
KataGo may hide the move history from the net when a second pass would end
the game, which zeroloop's features do not model). ``gtp_setup`` gives the
GTP commands that set one up in KataGo with the same rules.
"""

from __future__ import annotations

import numpy as np

from zeroloop import features
from zeroloop.go import board as B
from zeroloop.go import coords
from zeroloop.go.game import BLACK, WHITE, Game
from zeroloop.go.rules import Rules
from zeroloop.katago import netexport

RULE_SETS = (("simple", False), ("positional", True), ("situational", False))


def katago_rules(ko_rule: str, suicide: bool) -> str:
    """KataGo's rules string for zeroloop's rules (area scoring, no tax, no handicap bonus)."""
    return f"ko{ko_rule.upper()}scoreAREAtaxNONEsui{int(suicide)}whb0"


def replay(pos: dict) -> Game:
    game = Game(int(pos["size"]), Rules(pos["ko_rule"], bool(pos["suicide"]), float(pos["komi"])))
    colour = BLACK
    for vertex in pos["moves"]:
        game.play(colour, coords.from_gtp(vertex, game.size))
        colour = WHITE if colour == BLACK else BLACK
    return game


def random_positions(seed: int, sizes: list[int], komis: tuple[float, ...] = (7.5, 7.0, 6.5, 0.5, -2.0, 24.0),
                     pass_prob: float = 0.02) -> list[dict]:
    """One random position per entry of sizes (deterministic in seed)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, size in enumerate(sizes):
        ko_rule, suicide = RULE_SETS[i % len(RULE_SETS)]
        komi = float(komis[rng.integers(len(komis))])
        game = Game(size, Rules(ko_rule, suicide, komi))
        n_moves = int(rng.integers(0, int(size * size * 0.9) + 1))
        colour, moves = BLACK, []
        for k in range(n_moves):
            last = k == n_moves - 1
            move = None if (not last and rng.random() < pass_prob) else _random_move(game, colour, rng)
            if move is None and (last or game.passes >= 1):
                break  # no legal move, or the game would end
            game.play(colour, move)
            moves.append(coords.to_gtp(move, size))
            colour = WHITE if colour == BLACK else BLACK
        out.append({"size": size, "komi": komi, "ko_rule": ko_rule, "suicide": suicide, "moves": moves})
    return out


def _random_move(game: Game, colour: int, rng: np.random.Generator) -> tuple[int, int] | None:
    n = game.size
    for idx in rng.permutation(n * n):
        move = (int(idx % n), int(idx // n))
        p = game.point(move)
        if B.is_own_eye(game.board, p, colour):
            continue
        if game.is_legal(colour, move):
            return move
    return None


def gtp_setup(pos: dict) -> list[str]:
    """GTP commands that set pos up in KataGo."""
    cmds = [f"boardsize {pos['size']}", "clear_board", f"kata-set-rules {katago_rules(pos['ko_rule'], pos['suicide'])}",
            f"komi {pos['komi']}"]
    colour = "B"
    for vertex in pos["moves"]:
        cmds.append(f"play {colour} {vertex}")
        colour = "W" if colour == "B" else "B"
    return cmds


def encode(pos: dict, pos_len: int) -> tuple[Game, np.ndarray, np.ndarray, np.ndarray]:
    """(game, zeroloop spatial, globals, legal mask (pos_len^2+1)) of a position."""
    game = replay(pos)
    spatial, glob = features.encode(game.board, game.hist, game.rules.komi, pos_len)
    legal = np.zeros(pos_len * pos_len + 1, dtype=bool)
    n = game.size
    for y in range(n):
        for x in range(n):
            legal[y * pos_len + x] = game.is_legal(game.to_move, (x, y))
    legal[-1] = True
    return game, spatial, glob, legal


def katago_inputs(spatial: np.ndarray, glob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """zeroloop inputs placed at KataGo's v7 indices (the other inputs zero)."""
    s = np.zeros((spatial.shape[0], netexport.NUM_SPATIAL, *spatial.shape[2:]), np.float32)
    s[:, list(netexport.SPATIAL_TO_KATAGO)] = spatial
    g = np.zeros((glob.shape[0], netexport.NUM_GLOBAL), np.float32)
    g[:, list(netexport.GLOBAL_TO_KATAGO)] = glob
    return s, g
