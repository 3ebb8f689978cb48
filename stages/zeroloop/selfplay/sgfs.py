"""Self-play games as SGF, one game per line (KataGo's ``.sgfs`` files).

Each game's root carries its rules (RU, KM), result (RE), the model that
played it (PB, PW), and in GN/C its gameId and how many training rows it
recorded, so the games in ``sgfs/`` can be matched one to one with the rows
in ``tdata/`` (``gameIdN``). Written with sgfmill.
"""

from __future__ import annotations

import re

from sgfmill import sgf

from zeroloop.selfplay.gamestate import GameState

_INFO = re.compile(r"gameId=(\d+) rows=(\d+)")


def game_sgf(state: GameState, result: str, num_rows: int) -> str:
    """One line of SGF for a finished game."""
    n = state.size
    game = sgf.Sgf_game(n)
    root = game.get_root()
    root.set("KM", state.komi)
    root.set("RU", state.rules.sgf_name())
    root.set("RE", result)
    root.set("PB", state.model)
    root.set("PW", state.model)
    root.set("GN", f"{state.game_id:016x}")
    root.set("C", f"gameId={state.game_id} rows={num_rows} model={state.model}")
    node = root
    for i, m in enumerate(state.moves):
        colour = "b" if i % 2 == 0 else "w"
        if m == n * n:
            point = None
        else:
            y, x = divmod(m, n)
            point = (n - 1 - y, x)  # sgfmill rows count from the bottom
        node = node.new_child()  # (extend_main_sequence walks the whole game each time)
        node.set_move(colour, point)
    return game.serialise(wrap=None).decode().strip()


def parse_game_info(line: str) -> tuple[int, int]:
    """(gameId, rows) recorded in a game line written by game_sgf."""
    game = sgf.Sgf_game.from_string(line)
    m = _INFO.search(game.get_root().get("C"))
    if m is None:
        raise ValueError("SGF root comment has no gameId")
    return int(m.group(1)), int(m.group(2))
