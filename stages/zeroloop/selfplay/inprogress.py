"""Where saved games in progress live, and how exactly one process adopts each.

A self-play process keeps the games it has not finished writing in batch
files (format: ``zeroloop.selfplay.snapshot``) under
``<output-dir>/<model>/inprogress/`` (``BaseDir.inprogress``):

- ``<batch>.live-<owner>.npz``: a batch owned by a running process, which
  rewrites it (atomically: tmp, fsync, rename) at every periodic save; its
  modification time is the owner's heartbeat;
- ``<batch>.npz``: a batch its owner let go when it stopped cleanly.

A process adopts ``<batch>.npz`` files, and live files not rewritten for
``stale_seconds`` (left by a killed process), by renaming them to its own
live name: of many processes renaming the same file exactly one succeeds,
so each saved game is adopted once however many processes start together.

Why one file per batch rather than one per game or one per process: a save
of 256 games is then one write and one fsync (a network filesystem charges
milliseconds per file), and games never move between files. A process keeps
each batch it adopted as its own file and puts its new games in one home
batch, so every game is in exactly one file at every moment and no step
needs two files to change together: a crash between any two steps neither
loses a game nor lets two processes play it.

Finished games stay in their batch (as rows) until their rows are in tdata.
Before a writer publishes tdata files, the process rewrites its batches
with the names of the files those rows are about to go to; an adopter that
finds such a file skips the rows in it. A batch whose games are all
written is deleted. So a finished game is never both in tdata and saved,
and a SIGKILL loses only what came after the last save.

Files that are too old (``max_age_seconds``), unreadable, or from another
format, feature, row or rules version are claimed the same way and deleted,
with a log line naming them. Files this process's config cannot play (other
row board length, larger boards) are left for a process that can.
"""

from __future__ import annotations

import logging
import posixpath
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from zeroloop import layout, rows
from zeroloop.metrics import metric
from zeroloop.selfplay.gamestate import GameState
from zeroloop.selfplay.snapshot import Snapshot, SnapshotError, decode, encode, game_ids, read_header
from zeroloop.selfplay.writer import PendingGame
from zeroloop.storage import Storage, unique_name

log = logging.getLogger(__name__)

_NAME = re.compile(r"^([0-9a-f]{16})(?:\.live-([0-9a-f]{16}))?\.npz$")


def final_path(folder: str, batch: str) -> str:
    return posixpath.join(folder, f"{batch}.npz")


def live_path(folder: str, batch: str, owner: str) -> str:
    return posixpath.join(folder, f"{batch}.live-{owner}.npz")


@dataclass
class BatchFile:
    batch: str
    folder: str
    path: str | None = None  # our live file, once written or claimed


@dataclass
class SaveReport:
    games: int = 0  # games in progress saved
    pending: int = 0  # finished games saved until their rows are written
    rows: int = 0  # training rows recorded in them
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    stolen: set[str] = field(default_factory=set)  # batches another process adopted from us


@dataclass
class _Candidate:
    path: str
    batch: str
    folder: str
    age: float


class SavedGames:
    """This process's batch files in one self-play output directory."""

    def __init__(self, storage: Storage, selfplay_dir: str, pos_len: int, *, stale_seconds: float,
                 max_age_seconds: float, owner: str | None = None, rng: np.random.Generator | None = None,
                 clock: Callable[[], float] = time.time):
        self.storage = storage
        self.selfplay_dir = selfplay_dir
        self.pos_len = pos_len
        self.feature_version = 1  # of the rows it saves (the self-play engine sets its search's)
        self.stale_seconds = stale_seconds
        self.max_age_seconds = max_age_seconds
        self.owner = owner or unique_name()
        self.rng = rng or np.random.default_rng()
        self.clock = clock
        self.batches: dict[str, BatchFile] = {}
        self._home: str | None = None
        self._left: set[str] = set()  # files logged as not ours to play
        metric("zeroloop_selfplay_games_saved_total")  # at zero from the start (the engine counts saves)
        self._m_adopted = metric("zeroloop_selfplay_games_adopted_total")
        self._m_discarded = metric("zeroloop_selfplay_games_discarded_total")

    # --- saving ------------------------------------------------------------------

    def home(self, model: str) -> str:
        """The batch new games go to (in the first model's inprogress/)."""
        if self._home is None:
            self._home = unique_name()
            self.batches[self._home] = BatchFile(self._home, layout.model_inprogress(self.selfplay_dir, model))
        return self._home

    def save(self, playing: list[tuple[str, GameState]], pending: list[PendingGame], release: bool = False) -> SaveReport:
        """Write every batch we own (delete empty ones); release: let them go for adoption."""
        t0 = time.perf_counter()
        report = SaveReport()
        groups: dict[str, tuple[list[GameState], list[PendingGame]]] = {b: ([], []) for b in self.batches}
        for batch, state in playing:
            groups[batch][0].append(state)
        for game in pending:
            groups[game.batch][1].append(game)
        now = self.clock()
        for batch, (games, finished) in groups.items():
            bf = self.batches[batch]
            if bf.path is not None and not self.storage.exists(bf.path):
                log.warning("saved games %s were adopted by another process (this one looked dead): dropping "
                            "its %d games here", bf.path, len(games) + len(finished))
                report.stolen.add(batch)
                del self.batches[batch]
                if batch == self._home:
                    self._home = None
                continue
            if not games and not finished:
                if bf.path is not None:
                    self.storage.remove(bf.path)
                    bf.path = None
                if batch != self._home:
                    del self.batches[batch]
                continue
            data = encode(Snapshot(batch, self.pos_len, games, finished, now, self.owner, self.feature_version))
            path = live_path(bf.folder, batch, self.owner)
            if bf.path is None:
                self.storage.makedirs(bf.folder)
            self.storage.write_bytes(path, data)
            bf.path = path
            if release:
                self.storage.claim(path, final_path(bf.folder, batch))
                bf.path = None
            report.games += len(games)
            report.pending += len(finished)
            report.rows += sum(len(s.recorded) for s in games) + sum(g.num_rows for g in finished)
            report.files += 1
            report.bytes += len(data)
        if release:
            self.batches.clear()
            self._home = None
        report.seconds = time.perf_counter() - t0
        return report

    # --- adopting ----------------------------------------------------------------

    def claim(self, capacity: int, fits: Callable[[dict], str | None]) -> list[Snapshot]:
        """Adopt free batches until they hold at least `capacity` games in progress.

        fits(header) says why this process cannot play a batch (None: it can).
        Pending finished games come back without the rows already published.
        """
        out: list[Snapshot] = []
        for cand in self._candidates():
            if capacity <= 0:
                break
            if cand.age > self.max_age_seconds:
                self._discard(cand, f"saved {cand.age / 3600:.1f} h ago, more than the "
                                    f"{self.max_age_seconds / 3600:g} h inprogress_max_age_seconds allows")
                continue
            try:
                with self.storage.fs.open(cand.path, "rb") as f:
                    header = read_header(f, cand.path)
            except FileNotFoundError:
                continue  # another process took it
            except SnapshotError as e:
                self._discard(cand, str(e))
                continue
            reason = _safe_fits(fits, header)
            if reason:
                if cand.path not in self._left:
                    self._left.add(cand.path)
                    log.info("leaving saved games %s to another process: %s", cand.path, reason)
                continue
            mine = self._take(cand)
            if mine is None:
                continue
            try:
                snap = decode(self.storage.read_bytes(mine), mine)
            except (SnapshotError, OSError) as e:
                self._discard(cand, str(e), taken=mine)
                continue
            snap.batch = cand.batch
            for g in snap.pending:
                g.batch = cand.batch
            snap.pending = [g for g in (self._unpublished(g) for g in snap.pending) if g is not None]
            self.batches[cand.batch] = BatchFile(cand.batch, cand.folder, mine)
            capacity -= len(snap.playing)
            self._m_adopted.inc(len(snap.playing) + len(snap.pending))
            log.info("adopted %s: %d games in progress, %d finished games to write (%d rows), saved by %s %.0f s ago",
                     cand.path, len(snap.playing), len(snap.pending), sum(g.num_rows for g in snap.pending),
                     snap.process or "?", cand.age)
            out.append(snap)
        return out

    def _candidates(self) -> list[_Candidate]:
        """Free batch files under every model directory, in random order."""
        now = self.clock()
        found = []
        for model_dir in self.storage.list_subdirs(self.selfplay_dir):
            folder = layout.model_inprogress(self.selfplay_dir, posixpath.basename(model_dir))
            for path in self.storage.list_files(folder, ".npz"):
                m = _NAME.match(posixpath.basename(path))
                if m is None:
                    continue
                batch, owner = m.groups()
                if owner == self.owner or batch in self.batches:
                    continue
                try:
                    age = now - self.storage.mtime(path)
                except FileNotFoundError:
                    continue
                if owner is not None and age < self.stale_seconds:
                    continue  # its process is alive
                found.append(_Candidate(path, batch, folder, age))
        self.rng.shuffle(found)
        return found

    def _take(self, cand: _Candidate) -> str | None:
        """Rename a free file to our live name; None if another process was first."""
        mine = live_path(cand.folder, cand.batch, self.owner)
        if not self.storage.claim(cand.path, mine):
            return None
        try:
            self.storage.touch(mine)  # fresh heartbeat: not stale for the others
        except FileNotFoundError:
            return None
        return mine

    def _discard(self, cand: _Candidate, reason: str, taken: str | None = None) -> None:
        """Claim (so one process reports it) and delete a batch we will not play."""
        path = taken or self._take(cand)
        if path is None:
            return
        try:
            ids = game_ids(self.storage.read_bytes(path))
        except OSError:
            ids = []
        self.storage.remove(path)
        self._m_discarded.inc(max(1, len(ids)))
        named = f"games {', '.join(f'{i:016x}' for i in ids)}" if ids else "games unknown"
        log.warning("discarded saved games %s (%s): %s", cand.path, named, reason)

    def _unpublished(self, game: PendingGame) -> PendingGame | None:
        """A saved finished game without the rows and SGF its writer had already published."""
        keep = np.ones(game.num_rows, dtype=bool)
        for name, start, end in game.pieces:
            if self.storage.exists(layout.tdata_file(self.selfplay_dir, game.model_dir, name)):
                keep[start:end] = False
        if game.sgf_file and self.storage.exists(layout.sgfs_file(self.selfplay_dir, game.model_dir, game.sgf_file)):
            game.sgf = None
        game.rows = rows.take(game.rows, keep)
        game.pieces, game.sgf_file = [], None
        return None if game.written else game


def _safe_fits(fits: Callable[[dict], str | None], header: dict) -> str | None:
    try:
        return fits(header)
    except (KeyError, TypeError, ValueError):
        return None  # malformed: the full read names the problem
