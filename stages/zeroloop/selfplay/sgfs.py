"""Self-play games as SGF, one game per line (KataGo's ``.sgfs`` files).

Each game's root carries its rules (RU, KM), result (RE), the model that
played it (PB, PW), and in GN/C its gameId and how many training rows it
recorded, so the games in ``sgfs/`` can be matched one to one with the rows
in ``tdata/`` (``gameIdN``). A game finished by another model than the one
that started it (a saved game adopted after a restart) names the model
credited with it in PB/PW, lists the switches in the root comment
(``switches=TURN:MODEL,...``) and says so in a comment on the first move
each new model played. Written with sgfmill.
"""

from __future__ import annotations

import re

from sgfmill import sgf

from zeroloop.selfplay.gamestate import GameState

_INFO = re.compile(r"gameId=(\d+) rows=(\d+)")
_SWITCHES = re.compile(r"switches=(\S+)")


def game_sgf(state: GameState, result: str, num_rows: int) -> str:
    """One line of SGF for a finished game."""
    n = state.size
    game = sgf.Sgf_game(n)
    root = game.get_root()
    root.set("KM", state.komi)
    root.set("RU", state.rules.sgf_name())
    root.set("RE", result)
    model = state.final_model
    root.set("PB", model)
    root.set("PW", model)
    root.set("GN", f"{state.game_id:016x}")
    comment = f"gameId={state.game_id} rows={num_rows} model={model}"
    if state.switches:
        comment += f" startModel={state.model} switches=" + ",".join(f"{t}:{m}" for t, m in state.switches)
    root.set("C", comment)
    switched_at = {t: m for t, m in state.switches}
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
        if i in switched_at:
            node.set("C", f"model switch: {switched_at[i]} plays from this move")
    return game.serialise(wrap=None).decode().strip()


def parse_switches(line: str) -> list[tuple[int, str]]:
    """The (turn, model) switches recorded in a game line written by game_sgf."""
    game = sgf.Sgf_game.from_string(line)
    m = _SWITCHES.search(game.get_root().get("C"))
    if m is None:
        return []
    return [(int(t), name) for t, name in (part.split(":", 1) for part in m.group(1).split(","))]


def parse_game_info(line: str) -> tuple[int, int]:
    """(gameId, rows) recorded in a game line written by game_sgf."""
    game = sgf.Sgf_game.from_string(line)
    m = _INFO.search(game.get_root().get("C"))
    if m is None:
        raise ValueError("SGF root comment has no gameId")
    return int(m.group(1)), int(m.group(2))
