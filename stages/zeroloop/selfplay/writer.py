"""Writing finished games to <output-dir>/<model>/: tdata files and their SGFs.

One ``TdataWriter`` per model. Finished games' rows collect in memory and
are published as ``tdata/<random-hex>.npz`` (with the row count beside it,
``zeroloop.rows.write``) whenever about ``max_rows_per_file`` rows are
waiting, and on ``flush``; the SGFs of the same games go to
``sgfs/<same-hex>.sgfs`` right after. A file holds whole games only (at
most ``max_rows_per_file`` rows, unless one game alone has more), so a game
is in exactly one tdata file and a process killed at any instant leaves
each game it reported (in an SGF) complete in tdata. Every file is written
under a temporary name and renamed, and names are random, so any number of
self-play processes can share the directories. As in KataGo, each writer's
first file is capped at a random size so that writers started together do
not all publish at the same moment.
"""

from __future__ import annotations

import logging

import numpy as np

import posixpath

from zeroloop import rows
from zeroloop.metrics import metric
from zeroloop.storage import Storage, unique_name

log = logging.getLogger(__name__)


class TdataWriter:
    def __init__(self, storage: Storage, selfplay_dir: str, model: str, pos_len: int, max_rows_per_file: int,
                 first_file_min_prop: float, rng: np.random.Generator, write_sgfs: bool = True):
        self.storage = storage
        self.model = model
        self.tdata_dir = posixpath.join(selfplay_dir, model, "tdata")
        self.sgfs_dir = posixpath.join(selfplay_dir, model, "sgfs")
        self.pos_len = pos_len
        self.max_rows = max_rows_per_file
        self.write_sgfs = write_sgfs
        lo = max(1, int(max_rows_per_file * first_file_min_prop))
        self._cap = int(rng.integers(lo, max_rows_per_file + 1))
        self._parts: list[dict[str, np.ndarray]] = []
        self._pending = 0
        self._sgfs: list[str] = []
        self.files_written = 0
        self.rows_written = 0
        self.games_written = 0
        for d in (self.tdata_dir, self.sgfs_dir):
            storage.makedirs(d)

    @property
    def pending_rows(self) -> int:
        return self._pending

    def add_game(self, game_rows: dict[str, np.ndarray], sgf_line: str | None) -> None:
        """Queue a finished game's rows and SGF; publish a file of whole games when it fills up."""
        n = len(game_rows["gameIdN"])
        if self._pending and self._pending + n > self._cap:
            self._publish()  # this game would overflow the file: it starts the next one
        if n:
            self._parts.append(game_rows)
            self._pending += n
        if sgf_line is not None and self.write_sgfs:
            self._sgfs.append(sgf_line)
        self.games_written += 1
        if self._pending >= self._cap:
            self._publish()

    def flush(self) -> None:
        """Publish everything queued (rows and SGFs)."""
        if self._pending or self._sgfs:
            self._publish()

    def _publish(self) -> None:
        """Publish every queued game: the tdata file first, then its SGFs (an SGF means the rows are written)."""
        name = unique_name()
        count = self._pending
        if count:
            path = posixpath.join(self.tdata_dir, name + ".npz")
            rows.write(self.storage, path, rows.concat(self._parts))
            self._parts = []
            self._pending = 0
            self.files_written += 1
            self.rows_written += count
            metric("zeroloop_selfplay_files_total").inc()
            metric("zeroloop_selfplay_rows_total").inc(count)
            log.info("wrote %s (%d rows, model %s)", path, count, self.model)
        if self._sgfs:
            path = posixpath.join(self.sgfs_dir, name + ".sgfs")
            self.storage.write_bytes(path, ("\n".join(self._sgfs) + "\n").encode())
            self._sgfs = []
        self._cap = self.max_rows

def sweep_leftovers(storage: Storage, selfplay_dir: str) -> int:
    """Remove half-written files that stopped self-play processes left in any model's dirs."""
    removed = 0
    for model_dir in storage.list_subdirs(selfplay_dir):
        for sub in ("tdata", "sgfs"):
            removed += len(storage.sweep_tmp(posixpath.join(model_dir, sub)))
    return removed
