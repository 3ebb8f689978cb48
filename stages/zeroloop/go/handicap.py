"""Fixed handicap placement, as GTP's ``fixed_handicap`` defines it (GNU Go's placement).

Stones go on the star points: the 3rd line on boards up to 11x11, the 4th
from 12x12. Two to four stones take corners (the upper-right and lower-left
first, then upper-left, then lower-right); odd boards from 9x9 also have
side and centre points for five to nine stones: five adds the centre, six
the left and right sides, seven both, eight the four sides, nine all. Boards
smaller than 7x7 have no fixed handicap. A test compares every size and
count with GNU Go.
"""

from __future__ import annotations

MIN_SIZE = 7


def max_fixed_handicap(size: int) -> int:
    """The most stones ``fixed_handicap`` places on this board (0: none)."""
    if size < MIN_SIZE:
        return 0
    return 9 if size % 2 == 1 and size >= 9 else 4


def fixed_handicap(size: int, stones: int) -> list[tuple[int, int]]:
    """The points (x from the left, y from the top) of a fixed handicap; ValueError if there is none."""
    if not 2 <= stones <= max_fixed_handicap(size):
        raise ValueError(f"no fixed handicap of {stones} stones on {size}x{size}")
    line = 2 if size <= 11 else 3
    lo, hi, mid = line, size - 1 - line, size // 2
    top, bottom = lo, hi  # y counts from the top
    corners = [(hi, top), (lo, bottom), (lo, top), (hi, bottom)]
    if stones <= 4:
        return corners[:stones]
    sides = [(lo, mid), (hi, mid)] if stones < 8 else [(lo, mid), (hi, mid), (mid, top), (mid, bottom)]
    centre = [(mid, mid)] if stones % 2 == 1 else []
    return corners + (sides if stones >= 6 else []) + centre
