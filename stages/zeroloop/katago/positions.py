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


def from_diagram(diagram: str, komi: float = 7.0, ko_rule: str = "simple", suicide: bool = False,
                 then: tuple[str, ...] = ()) -> dict:
    """A position of a diagram (rows of X Black, O White, . empty; top row first), then the moves ``then``.

    The stones are played alternately from Black, a side with none left
    passing (never both in a row), so the diagram must be reachable in that
    order; ValueError if the board then differs from it.
    """
    rows = diagram.split()
    n = len(rows)
    black = [coords.to_gtp((x, y), n) for y, r in enumerate(rows) for x, c in enumerate(r) if c == "X"]
    white = [coords.to_gtp((x, y), n) for y, r in enumerate(rows) for x, c in enumerate(r) if c == "O"]
    moves = []
    for i in range(max(len(black), len(white))):
        moves.append(black[i] if i < len(black) else "pass")
        if i < len(white) or i + 1 < len(black):
            moves.append(white[i] if i < len(white) else "pass")
    pos = {"size": n, "komi": komi, "ko_rule": ko_rule, "suicide": suicide, "moves": moves}
    game = replay(pos)
    want = np.array([[{"X": BLACK, "O": WHITE}.get(c, 0) for c in r] for r in rows])
    if not np.array_equal(game.grid(), want):
        raise ValueError(f"diagram {diagram!r} is not reached by playing its stones in turn")
    pos["moves"] = moves + list(then)
    return pos


# Ladders and areas for KataGo's v7 inputs: each ladder case with the moves that follow it (the
# earlier-move ladder planes), pass-alive and one-colour areas, and positions after a pass.
FEATURE_DIAGRAMS = (
    # a working ladder both ways (the attacker to move after the last move, and the defender)
    ("......... ..X...... .XO...... ...X..... ......... ......... ......... ......... .........", ("J1",)),
    ("......... ..X...... .XO...... ...X..... ......... ......... ......... ......... .........", ("J1", "D7")),
    ("......... ..X...... .XO...... ...X..... ......... ......... ......... ......... .........",
     ("J1", "D7", "C6", "C5")),
    # ladder breakers: one of the two ladders broken, then both (the second breaker played as an escape)
    ("......... ..X...... .XO...... ...X..... .O....... ......... ......... ......... .........", ("J1",)),
    ("......... ..X...... .XO...... ...X..... .O....... ......... ......... ......... .........", ("E8",)),
    # a chain in atari that escapes by capturing an attacker in atari
    ("......... ..XO..... .XOXO.... ......... ......... ......... ......... ......... .........", ("J1",)),
    # pass-alive groups, territory, dead stones, one-colour regions, dame
    (".XO.O XXOOO .XO.O OXOOO .XO.O", ()),
    (".X.X. XXXXX ..... ..... .....", ()),
    (".X... XX... ..... ..... .....", ("C1",)),
    (".X.O. XXXOO .XOO. XXO.O .XOOO", ()),
    ("..... ..... ..X.. ..... .....", ()),
    # after a pass (a second pass would end the game)
    (".X.X. XXXXX ..... OOOOO .O.O.", ("pass",)),
)


def feature_positions() -> list[dict]:
    """The positions of FEATURE_DIAGRAMS (simple ko; one with multi-stone suicide legal)."""
    out = []
    for i, (diagram, then) in enumerate(FEATURE_DIAGRAMS):
        out.append(from_diagram(diagram, komi=(7.0, 6.5, 0.5)[i % 3], suicide=i == 7, then=then))
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


def encode(pos: dict, pos_len: int, feature_version: int = features.FEATURE_VERSION,
           ) -> tuple[Game, np.ndarray, np.ndarray, np.ndarray]:
    """(game, zeroloop spatial, globals, legal mask (pos_len^2+1)) of a position."""
    game = replay(pos)
    spatial, glob = features.encode(game.board, game.hist, game.rules.komi, pos_len, feature_version,
                                    game.recent_boards())
    legal = np.zeros(pos_len * pos_len + 1, dtype=bool)
    n = game.size
    for y in range(n):
        for x in range(n):
            legal[y * pos_len + x] = game.is_legal(game.to_move, (x, y))
    legal[-1] = True
    return game, spatial, glob, legal


def katago_inputs(spatial: np.ndarray, glob: np.ndarray, feature_version: int = features.FEATURE_VERSION,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """zeroloop inputs placed at KataGo's v7 indices (the other inputs zero)."""
    to_spatial, to_global = netexport.input_map(feature_version)
    s = np.zeros((spatial.shape[0], netexport.NUM_SPATIAL, *spatial.shape[2:]), np.float32)
    s[:, list(to_spatial)] = spatial
    g = np.zeros((glob.shape[0], netexport.NUM_GLOBAL), np.float32)
    g[:, list(to_global)] = glob
    return s, g
