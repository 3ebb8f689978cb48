"""Writing finished games to <output-dir>/<model>/: tdata files and their SGFs.

One ``TdataWriter`` per model. Finished games queue in memory as
``PendingGame`` (their rows and SGF line, in order) and are published as
``tdata/<random-hex>.npz`` (with the row count beside it,
``zeroloop.rows.write``) whenever about ``max_rows_per_file`` rows are
waiting, and on a flush; the SGFs of the same games go to
``sgfs/<same-hex>.sgfs`` right after. A file holds whole games only (at
most ``max_rows_per_file`` rows, unless one game alone has more), so a game
is in exactly one tdata file, and a game reported in an SGF has all its rows
published, whenever the process is killed. Every file is written under a
temporary name and renamed, and names are random, so any number of
self-play processes can share the directories. As in KataGo, each writer's
first file is capped at a random size so that writers started together do
not all publish at the same moment.

Publishing is two steps so that saved games stay exact across a crash
(``zeroloop.selfplay.inprogress``): ``plan`` chooses the files' names and
records on each queued game which of its rows (and its SGF) go to which
file; the caller may save the queue with those names; ``write`` then
publishes the planned files and drops the games that are fully written.
``flush`` does both steps at once.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass, field

import numpy as np

from zeroloop import layout, rows
from zeroloop.metrics import metric
from zeroloop.storage import Storage, unique_name

log = logging.getLogger(__name__)


@dataclass
class PendingGame:
    """A finished game whose rows or SGF are not all published yet."""

    game_id: int
    model_dir: str  # rows go to <output-dir>/<model_dir>/tdata
    rows: dict[str, np.ndarray]  # the rows not published yet, in order
    sgf: str | None  # its SGF line, until published
    batch: str = ""  # the saved-games batch that holds it until it is written
    pieces: list[tuple[str, int, int]] = field(default_factory=list)  # planned (file, start, end) of rows
    sgf_file: str | None = None  # the planned sgfs file of its SGF

    @property
    def num_rows(self) -> int:
        return len(self.rows["gameIdN"])

    @property
    def written(self) -> bool:
        return self.num_rows == 0 and self.sgf is None


@dataclass
class FilePlan:
    name: str
    pieces: list[tuple[PendingGame, int, int]]  # rows [start, end) of each game, in file order
    sgfs: list[PendingGame]


class TdataWriter:
    def __init__(self, storage: Storage, selfplay_dir: str, model: str, pos_len: int, max_rows_per_file: int,
                 first_file_min_prop: float, rng: np.random.Generator, write_sgfs: bool = True):
        self.storage = storage
        self.model = model
        self.selfplay_dir = selfplay_dir
        self.tdata_dir = layout.model_tdata(selfplay_dir, model)
        self.sgfs_dir = layout.model_sgfs(selfplay_dir, model)
        self.pos_len = pos_len
        self.max_rows = max_rows_per_file
        self.write_sgfs = write_sgfs
        lo = max(1, int(max_rows_per_file * first_file_min_prop))
        self._cap = int(rng.integers(lo, max_rows_per_file + 1))
        self.queue: list[PendingGame] = []
        self.files_written = 0
        self.rows_written = 0
        self.games_written = 0
        for d in (self.tdata_dir, self.sgfs_dir):
            storage.makedirs(d)

    @property
    def pending_rows(self) -> int:
        return sum(g.num_rows for g in self.queue)

    @property
    def due(self) -> bool:
        """Whether a full file is waiting."""
        return self.pending_rows >= self._cap

    def add(self, game: PendingGame) -> None:
        """Queue a finished game (published by plan and write, or flush)."""
        if not self.write_sgfs:
            game.sgf = None
        self.games_written += 1
        if not game.written:
            self.queue.append(game)

    def flush(self) -> None:
        """Publish everything queued (rows and SGFs)."""
        self.write(self.plan(everything=True))

    def plan(self, everything: bool) -> list[FilePlan]:
        """Name the files to publish now (full ones; everything: the rest too) and mark the games.

        Files take whole games in queue order: a file is full when it reaches
        the cap or the next game would overflow it.
        """
        plans: list[FilePlan] = []
        games = self.queue
        i, cap = 0, self._cap
        while i < len(games):
            j, n = i, 0
            while j < len(games) and (j == i or n + games[j].num_rows <= cap):
                n += games[j].num_rows
                j += 1
            if not (n >= cap or j < len(games) or everything):
                break
            plan = FilePlan(unique_name(), [], [])
            for g in games[i:j]:
                if g.num_rows:
                    plan.pieces.append((g, 0, g.num_rows))
                    g.pieces.append((plan.name, 0, g.num_rows))
                if g.sgf is not None:
                    plan.sgfs.append(g)
                    g.sgf_file = plan.name
            plans.append(plan)
            i = j
            cap = self.max_rows
        if plans:
            self._cap = cap
        return plans

    def unplan(self) -> None:
        """Forget plans that will not be written."""
        for g in self.queue:
            g.pieces, g.sgf_file = [], None

    def write(self, plans: list[FilePlan]) -> None:
        """Publish planned files, then forget what they hold."""
        done: dict[int, int] = {}  # id(game) -> rows published from its front
        for plan in plans:
            self._publish(plan)
            for g, _, end in plan.pieces:
                done[id(g)] = end
        for g in self.queue:
            if id(g) in done:
                g.rows = rows.take(g.rows, slice(done[id(g)], None))
            if g.sgf_file is not None and any(p.name == g.sgf_file for p in plans):
                g.sgf, g.sgf_file = None, None
            g.pieces = []
        self.queue = [g for g in self.queue if not g.written]

    def _publish(self, plan: FilePlan) -> None:
        count = sum(end - start for _, start, end in plan.pieces)
        if count:
            out = rows.concat([rows.take(g.rows, slice(start, end)) for g, start, end in plan.pieces])
            path = layout.tdata_file(self.selfplay_dir, self.model, plan.name)
            rows.write(self.storage, path, out)
            self.files_written += 1
            self.rows_written += count
            metric("zeroloop_selfplay_files_total").inc()
            metric("zeroloop_selfplay_rows_total").inc(count)
            log.info("wrote %s (%d rows, model %s)", path, count, self.model)
        if plan.sgfs:
            path = layout.sgfs_file(self.selfplay_dir, self.model, plan.name)
            self.storage.write_bytes(path, ("\n".join(g.sgf for g in plan.sgfs) + "\n").encode())


def sweep_leftovers(storage: Storage, selfplay_dir: str) -> int:
    """Remove half-written files that stopped self-play processes left in any model's dirs."""
    removed = 0
    for model_dir in storage.list_subdirs(selfplay_dir):
        model = posixpath.basename(model_dir)
        for sub in (layout.model_tdata(selfplay_dir, model), layout.model_sgfs(selfplay_dir, model)):
            removed += len(storage.sweep_tmp(sub))
    return removed
