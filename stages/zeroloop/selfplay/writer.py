"""Writing finished games to <output-dir>/<model>/: tdata files and their SGFs.

One ``TdataWriter`` per model. Finished games' rows collect in memory and
are published as ``tdata/<random-hex>.npz`` (with the row count beside it,
``zeroloop.rows.write``) whenever ``max_rows_per_file`` rows are waiting,
and on ``flush``; the SGFs of the games added since the last file go to
``sgfs/<same-hex>.sgfs`` at the same moment. Every file is written under a
temporary name and renamed, and names are random, so any number of
self-play processes can share the directories. As in KataGo, each writer's
first file is capped at a random size so that writers started together do
not all publish at the same moment.
"""

from __future__ import annotations

import logging

import numpy as np

from zeroloop import rows
from zeroloop.metrics import metric
import posixpath

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
        """Queue a finished game's rows and SGF; publish files that fill up."""
        n = len(game_rows["gameIdN"])
        if n:
            self._parts.append(game_rows)
            self._pending += n
        if sgf_line is not None and self.write_sgfs:
            self._sgfs.append(sgf_line)
        self.games_written += 1
        while self._pending >= self._cap:
            self._publish(self._cap)

    def flush(self) -> None:
        """Publish everything queued (rows and SGFs)."""
        if self._pending or self._sgfs:
            self._publish(self._pending)

    def _publish(self, count: int) -> None:
        name = unique_name()
        if count:
            merged = rows.concat(self._parts)
            out = rows.take(merged, slice(0, count))
            rest = rows.take(merged, slice(count, None))
            path = posixpath.join(self.tdata_dir, name + ".npz")
            rows.write(self.storage, path, out)
            self._parts = [rest] if len(rest["gameIdN"]) else []
            self._pending -= count
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
