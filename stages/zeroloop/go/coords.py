"""Vertex names: GTP's "D4" (columns A-T without I, rows from the bottom).

Internally a point is (x, y): column x from the left, row y from the top,
both from 0; ``None`` is a pass.
"""

from __future__ import annotations

COLUMNS = "ABCDEFGHJKLMNOPQRSTUVWXYZ"


def to_gtp(move: tuple[int, int] | None, size: int) -> str:
    if move is None:
        return "pass"
    x, y = move
    return f"{COLUMNS[x]}{size - y}"


def from_gtp(text: str, size: int) -> tuple[int, int] | None:
    """Parse a GTP vertex; raises ValueError for anything off the board."""
    t = text.strip().upper()
    if t == "PASS":
        return None
    if len(t) < 2 or t[0] not in COLUMNS or not t[1:].isdigit():
        raise ValueError(f"invalid vertex {text!r}")
    x = COLUMNS.index(t[0])
    row = int(t[1:])
    if x >= size or not 1 <= row <= size:
        raise ValueError(f"vertex {text!r} is off the {size}x{size} board")
    return x, size - row
