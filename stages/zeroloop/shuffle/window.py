"""Which rows a shuffle uses: KataGo's growing window, as pure functions.

The window is the most recent W rows of self-play data. W grows with the
amount of data N as a tapered power law anchored at ``min_rows`` (KataGo's
shuffle.py): with ``off = taper_window_scale or min_rows``,

    W = ((N - min_rows + off + add)^e - off^e) / (e * off^(e-1)) * expand + min_rows

clamped to [min_rows, max_rows], so W(min_rows) = min_rows and the initial
slope is ``expand_window_per_row``. Rows from the random bootstrap count
toward N for at most ``min_rows`` (they are many and worthless once real
games exist). Whole files are taken newest first until W rows are covered,
and ``keep_target_rows`` thins the selection to at most that many rows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TdataFile:
    path: str
    mtime: float
    rows: int
    random: bool  # from the random bootstrap (selfplay/random/tdata)


@dataclass(frozen=True)
class WindowParams:
    min_rows: int = 250_000
    max_rows: int | None = None
    expand_window_per_row: float = 1.0
    taper_window_exponent: float = 1.0
    taper_window_scale: int | None = None
    add_to_data_rows: int = 0


@dataclass(frozen=True)
class Selection:
    files: tuple[TdataFile, ...]  # newest first
    window_rows: int  # W
    rows_used: int  # rows in the selected files (>= W unless data runs out)
    usable_rows: int  # N: data rows with random rows capped at min_rows
    total_rows: int  # every row found
    row_range: tuple[int, int]  # [first, end) cumulative, for train.json
    keep_prob: float


class NotEnoughRows(Exception):
    """Fewer usable rows than min_rows: there is nothing to shuffle yet."""

    def __init__(self, usable: int, needed: int, total: int, random_rows: int):
        self.usable, self.needed, self.total, self.random_rows = usable, needed, total, random_rows
        super().__init__(
            f"not enough rows to shuffle: {usable} usable rows, need at least {needed} (--min-rows); "
            f"{total} rows found in all, {random_rows} of them from the random bootstrap "
            f"(those count for at most {needed})")


def usable_rows(files: list[TdataFile], min_rows: int) -> int:
    """N: all non-random rows plus random rows capped at min_rows."""
    random_rows = sum(f.rows for f in files if f.random)
    return sum(f.rows for f in files if not f.random) + min(random_rows, min_rows)


def window_rows(usable: int, p: WindowParams) -> int:
    """W for N = usable rows (KataGo's formula, then the clamp)."""
    off = p.taper_window_scale if p.taper_window_scale is not None else p.min_rows
    e = p.taper_window_exponent
    x = usable - p.min_rows + off + p.add_to_data_rows
    if off <= 0:
        w = float(p.min_rows)  # degenerate anchor: no growth
    else:
        w = (max(x, 0) ** e - off ** e) / (e * off ** (e - 1)) * p.expand_window_per_row + p.min_rows
    w = max(int(w), p.min_rows)
    if p.max_rows is not None:
        w = min(w, p.max_rows)
    return w


def rows_wanted(total: int, random_rows: int, p: WindowParams) -> int:
    """Rows of the newest files that a window over this much data takes (0 below min_rows)."""
    usable = total - random_rows + min(random_rows, p.min_rows)
    return window_rows(usable, p) if usable >= p.min_rows else 0


def keep_probability(rows_used: int, keep_target_rows: int | None) -> float:
    """Fraction of the selected rows kept (None: all)."""
    if keep_target_rows is None or rows_used <= 0:
        return 1.0
    return min(rows_used, keep_target_rows) / rows_used


def select(files: list[TdataFile], p: WindowParams, keep_target_rows: int | None, older_rows: int = 0,
           older_random_rows: int = 0) -> Selection:
    """The files of the window, newest first; NotEnoughRows below min_rows.

    ``older_rows`` (of them ``older_random_rows`` from the random bootstrap)
    are rows of files not listed, every one older than the window: they count
    toward the data total and the row range, as if listed.
    """
    oldest_first = sorted(files, key=lambda f: (f.mtime, f.path))
    total = sum(f.rows for f in oldest_first) + older_rows
    random_rows = sum(f.rows for f in files if f.random) + older_random_rows
    usable = total - random_rows + min(random_rows, p.min_rows)
    if total <= 0 or usable < p.min_rows:
        raise NotEnoughRows(usable, p.min_rows, total, random_rows)
    w = window_rows(usable, p)
    ends = []
    acc = p.add_to_data_rows + older_rows
    for f in oldest_first:
        acc += f.rows
        ends.append(acc)
    chosen: list[TdataFile] = []
    used = 0
    first = ends[-1] if ends else acc
    for f, end in zip(reversed(oldest_first), reversed(ends)):
        if used >= w:
            break
        if f.rows <= 0:
            continue
        chosen.append(f)
        used += f.rows
        first = end - f.rows
    end = ends[-1] if ends else acc
    return Selection(tuple(chosen), w, used, usable, total, (first, end), keep_probability(used, keep_target_rows))
