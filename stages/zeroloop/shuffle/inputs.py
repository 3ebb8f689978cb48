"""Finding the self-play rows a shuffle may use: every selfplay/*/tdata/*.npz.

Each file's row count and data board length (pos_len) come from its count
file (``rows.file_info``), read in parallel threads; a file whose count
cannot be read is skipped with a warning naming it (and reported as
corrupt when its content is malformed, for quarantine). Files dated in the
future (clock skew) are used, as the newest, with a warning naming them:
their rows still count toward the data total, and no row is lost. Rows of different
pos_len cannot share a training batch, so they are never mixed silently:
either ``pos_len`` selects one and the others are left out (logged), or
finding several is an error that lists them.

History is not read again: settled directories come from their summaries
(``zeroloop.datasummary``): the window's size (``need``) follows from the
index's totals, and only the newest directories' file lists are read, newest
first (a sealed segment of the index only when its newest file may be in the
window), until the files newer than every directory left out cover the
window; the rest count as ``older_rows``. A shuffle's reads then grow with its window, not with the
run's history.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from zeroloop import datasummary
from zeroloop.datasummary import RANDOM_MODEL_DIR, CountedFile
from zeroloop.errors import UserError
from zeroloop.shuffle.window import TdataFile
from zeroloop.storage import BaseDir

log = logging.getLogger(__name__)

# mtimes this far ahead of the shuffler's clock are reported as clock skew
CLOCK_SKEW_TOLERANCE_S = 60.0


@dataclass(frozen=True)
class Scan:
    files: list[TdataFile]  # every file read (all of them, unless a window bounded the reading)
    pos_len: int | None
    skipped: list[tuple[str, str]]  # (path, why)
    corrupt: list[tuple[str, str]]  # the skipped ones whose content is malformed (to quarantine)
    older_rows: int = 0  # rows (of pos_len) in files not listed, all older than the listed newer ones
    older_random_rows: int = 0  # of those, rows of the random bootstrap

    @property
    def total_rows(self) -> int:
        return sum(f.rows for f in self.files) + self.older_rows

    @property
    def random_rows(self) -> int:
        return sum(f.rows for f in self.files if f.random) + self.older_random_rows


def _choose_pos_len(by_len: Counter, pos_len: int | None) -> int | None:
    if pos_len is None:
        if len(by_len) > 1:
            listing = ", ".join(f"{n} rows at pos_len {p}" for p, n in sorted(by_len.items()))
            raise UserError(f"self-play data of several board lengths found ({listing}); "
                            f"pass --pos-len to shuffle one of them")
        return next(iter(by_len), None)
    others = {p: n for p, n in by_len.items() if p != pos_len}
    if others:
        log.info("leaving out rows of other board lengths: %s",
                 ", ".join(f"{n} rows at pos_len {p}" for p, n in sorted(others.items())))
    return pos_len


def scan(base: BaseDir, pos_len: int | None = None, threads: int = 16,
         need: Callable[[int, int], int | None] | None = None) -> Scan:
    """Usable tdata files with their rows, mtime and pos_len.

    need(total rows, random rows) -> rows of the newest files wanted (None:
    all): when given, older files are counted from summaries, not listed.
    """
    summaries = datasummary.Summaries(base, datasummary.TDATA, threads=threads)
    for attempt in range(3):
        try:
            return _scan(summaries, pos_len, need)
        except datasummary.IndexChanged:  # a corrupt segment, dropped: its directories are found again
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _scan(summaries: datasummary.Summaries, pos_len: int | None,
          need: Callable[[int, int], int | None] | None) -> Scan:
    survey = summaries.survey()
    loaded: dict[str, list[CountedFile]] = dict(survey.files)
    problems = list(survey.skipped)
    counts, random_counts = survey.counts()
    chosen = _choose_pos_len(Counter({p: n for p, n in counts.items() if n > 0}), pos_len)
    total = counts.get(chosen, 0)
    random_total = random_counts.get(chosen, 0)
    wanted = need(total, random_total) if need is not None else None
    for model, entry in survey.newest_first():
        key = entry if model is None else entry.newest
        if wanted is not None and _rows_newer(loaded, chosen, key) >= wanted:
            break  # every file left out is older than the window
        if model is None:
            continue  # (a sealed segment whose directories may hold files of the window: read next)
        files = summaries.files_of(model, entry)
        if files is None:
            read = summaries.refresh(model)
            if read is None:
                continue
            fresh, files, skipped = read
            problems.extend(skipped)
            # the directory changed: its rows count as they are now
            total += fresh.counts.get(chosen, 0) - entry.counts.get(chosen, 0)
            if entry.random:
                random_total += fresh.counts.get(chosen, 0) - entry.counts.get(chosen, 0)
        loaded[model] = files
    files = [TdataFile(f.path, f.mtime, f.count, model == RANDOM_MODEL_DIR)
             for model, fs in loaded.items() for f in fs if f.pos_len == chosen]
    listed = sum(f.rows for f in files)
    listed_random = sum(f.rows for f in files if f.random)
    skipped = [(path, why) for path, why, _ in problems]
    corrupt = [(path, why) for path, why, is_corrupt in problems if is_corrupt]
    for _, why in skipped:
        log.warning("skipping unreadable tdata file: %s", why)
    now = time.time()
    future = sorted(f.path for f in files if f.mtime > now + CLOCK_SKEW_TOLERANCE_S)
    if future:
        log.warning("%d tdata files are dated in the future (clock skew?), so they count as the newest: %s%s",
                    len(future), ", ".join(future[:3]), " ..." if len(future) > 3 else "")
    return Scan(files, chosen, skipped, corrupt, max(0, total - listed), max(0, random_total - listed_random))


def _rows_newer(loaded: dict[str, list[CountedFile]], pos_len: int | None, key: tuple[float, str]) -> int:
    return sum(f.count for fs in loaded.values() for f in fs if f.pos_len == pos_len and f.key > key)
