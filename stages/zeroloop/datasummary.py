"""Summaries of settled self-play directories, so that history is not read again.

A run's self-play history is ``selfplay/<model>/tdata/*.npz`` (rows, with a
count file each) and ``selfplay/<model>/sgfs/*.sgfs`` (games). Every shuffle
needs the total of every row to size its window, and the run statistics
need every total too; reading every count file each time costs a round trip
per file, and on a network filesystem a run's 200,000th file makes each
shuffle minutes slower. But a model's directory stops changing soon after
self-play moves on to a newer model. So:

- A directory is **settled** once its mtime is ``settle_s`` old (an hour:
  self-play switches models within a minute of one being accepted, and every
  file appears by a rename, which touches the directory).
- A settled directory is read in full once; its file list (name, count,
  pos_len, mtime) is written to ``BASEDIR/summaries/<kind>/<model>.json``
  and its totals to the index ``BASEDIR/summaries/<kind>.json``, both with
  the directory's mtime at the time. A directory with an unreadable file is
  never summarised (it is read in full until the file is gone, quarantined).
- A scan lists ``selfplay/`` (one call), reads the index (one call), reads
  in full only directories that are new or not yet settled (the recent
  ones), and takes the rest from the index.

Never trusted blindly: each summary carries a SHA-256 of its content and is
checked against its directory before use. A summary that is unreadable,
fails its checksum or describes another directory is **corrupt**; one whose
directory's mtime has changed since (a file added, removed or quarantined)
is **stale**. Either way it is dropped with a log line and the directory is
read in full again. File lists are read only for the directories a shuffle
window uses, and each is checked against its directory's current mtime then;
index entries are checked ``verify_per_scan`` at a time, least recently
checked first, so a scan stays O(1) in stats while every entry is checked in
turn. Summaries are caches: deleting ``summaries/`` loses nothing.
Several readers may write them at once; each write is atomic and any one of
them is correct.
"""

from __future__ import annotations

import heapq
import logging
import posixpath
import time
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from zeroloop import layout, rows, sealed
from zeroloop.errors import CorruptFileError, DataFileError
from zeroloop.storage import BaseDir, Storage

log = logging.getLogger(__name__)

VERSION = 1
SETTLE_S = 3600.0
VERIFY_PER_SCAN = 8
FRESH_S = 2.0  # selfplay/ modified this recently is listed at every survey (mtimes may be as coarse as 1 s)
VERIFIED_WRITE_S = 60.0  # the index is rewritten for its check times alone at most this often
RANDOM_MODEL_DIR = "random"  # self-play without a model writes here (DESIGN: the "random" net)


@dataclass(frozen=True)
class CountedFile:
    path: str
    count: int  # rows of a tdata file, games of an .sgfs file
    pos_len: int  # data board length (0 for games)
    mtime: float

    @property
    def key(self) -> tuple[float, str]:
        """Order of files in time (the name breaks ties), as the shuffle window takes them."""
        return self.mtime, self.path


@dataclass(frozen=True)
class Kind:
    """One kind of self-play output: where it lies under selfplay/<model>/ and how a file is counted."""

    name: str  # subdirectory, and the summary's name
    suffix: str
    count: Callable[[Storage, str], tuple[int, int]]  # path -> (count, pos_len)
    accept: Callable[[str], bool] = lambda path: True


def _count_games(storage: Storage, path: str) -> tuple[int, int]:
    try:
        data = storage.read_bytes(path)
    except OSError as e:
        raise DataFileError(f"{path}: cannot read ({e})") from None
    return sum(1 for line in data.splitlines() if line.strip()), 0


TDATA = Kind("tdata", ".npz", rows.file_info, rows.is_tdata_name)
SGFS = Kind("sgfs", ".sgfs", _count_games, lambda p: ".tmp" not in posixpath.basename(p))


@dataclass
class DirTotals:
    """One directory's totals: an index entry, or the sum of a directory read now."""

    model: str
    dir_mtime: float
    counts: dict[int, int]  # pos_len -> count
    files: int
    newest: tuple[float, str] | None  # key of the newest file
    settled: bool = True
    verified: float = 0.0
    oldest: float | None = None  # mtime of the oldest file

    @property
    def random(self) -> bool:
        return self.model == RANDOM_MODEL_DIR

    def to_json(self) -> dict:
        return {"dir_mtime": self.dir_mtime, "counts": {str(k): v for k, v in sorted(self.counts.items())},
                "files": self.files, "newest": list(self.newest) if self.newest else None,
                "oldest": self.oldest, "verified": self.verified}

    @classmethod
    def from_json(cls, model: str, d: dict) -> "DirTotals":
        newest = d["newest"]
        counts = {int(k): int(v) for k, v in d["counts"].items()}
        if newest is not None:
            newest = (float(newest[0]), str(newest[1]))
        if not isinstance(d["files"], int) or any(v < 0 for v in counts.values()):
            raise ValueError("bad counts")
        oldest = d.get("oldest")
        return cls(model, float(d["dir_mtime"]), counts, d["files"], newest, True, float(d["verified"]),
                   float(oldest) if oldest is not None else None)


@dataclass
class Survey:
    """Every directory of one kind: totals of all, the files of those read in full.

    ``index`` is the summaries' index itself, shared, not a copy (read it, never change it): a survey of a
    long history allocates only for the directories read now."""

    read: dict[str, DirTotals] = field(default_factory=dict)  # directories read in full now
    files: dict[str, list[CountedFile]] = field(default_factory=dict)  # model -> files, for directories read now
    skipped: list[tuple[str, str, bool]] = field(default_factory=list)  # (path, why, corrupt)
    index: Mapping[str, DirTotals] = field(default_factory=dict)  # settled directories, from their summaries

    @property
    def dirs(self) -> Mapping[str, DirTotals]:
        """Every directory's totals (those read now over their index entries)."""
        return ChainMap(self.read, self.index)

    def totals(self) -> Iterator[DirTotals]:
        """Every directory's totals, once each, without building a merged mapping."""
        yield from self.read.values()
        yield from (e for m, e in self.index.items() if m not in self.read)

    def total(self, pos_len: int | None = None) -> int:
        return sum(n for d in self.totals() for p, n in d.counts.items() if pos_len is None or p == pos_len)


def _sealed(body: dict) -> bytes:
    return sealed.seal(body)


def _unseal(data: bytes, where: str) -> dict:
    """The body of a sealed summary; ValueError if it is not one (corrupt)."""
    body = sealed.unseal(data, where)
    if not isinstance(body, dict) or body.get("version") != VERSION:
        raise ValueError(f"{where}: unknown version")
    return body


class Summaries:
    """The settled-directory summaries of one kind of self-play output in a BASEDIR."""

    def __init__(self, base: BaseDir, kind: Kind, settle_s: float = SETTLE_S,
                 verify_per_scan: int = VERIFY_PER_SCAN, threads: int = 16, cache: dict | None = None):
        """cache (path -> CountedFile), kept by the caller between surveys, spares recounting a file
        (published files never change)."""
        self.cache = cache
        self._parsed: tuple[tuple, dict[str, DirTotals]] | None = None  # (the index file's stamp, its entries)
        self._index: dict[str, DirTotals] | None = None
        self._listing: tuple[float, tuple[str, ...]] | None = None  # (selfplay/'s mtime, its model directories)
        self._seen: tuple | None = None  # (listing, index) the last survey compared
        self._unknown: list[str] = []  # directories not in the index after the last survey
        self._index_written = 0.0
        self.base = base
        self.storage = base.storage
        self.kind = kind
        self.settle_s = settle_s
        self.verify_per_scan = verify_per_scan
        self.threads = max(1, threads)
        self.index_path = layout.summary_index(base.root, kind.name)
        self.dir_root = layout.summaries(base.root, kind.name)

    # --- paths ---------------------------------------------------------------------------------

    def data_dir(self, model: str) -> str:
        return layout.model_data(self.base.selfplay, model, self.kind.name)

    def file_list_path(self, model: str) -> str:
        return posixpath.join(self.dir_root, f"{model}.json")

    # --- the survey ------------------------------------------------------------------------------

    def survey(self, now: float | None = None) -> Survey:
        """Totals of every directory: from the index where it holds, else read in full (and summarised)."""
        now = time.time() if now is None else now
        models = self._list_models(now)
        index = self._read_index()  # (the parsed index itself: changed in place, written when it changes)
        changed = False
        if self._seen is None or models is not self._seen[0] or index is not self._seen[1]:
            # Directories gone, and directories not in the index: compared only when either changed.
            present = set(models)
            vanished = [m for m in index if m not in present]
            for model in vanished:
                del index[model]
            changed = bool(vanished)
            unknown = [m for m in models if m not in index]
        else:
            unknown = list(self._unknown)
        for model in self._stale(index, now):
            log.info("summary of %s is stale (the directory changed): reading it again", self.data_dir(model))
            del index[model]
            unknown.append(model)
            changed = True
        out = Survey(index=index)
        for model, read in zip(unknown, self._map(self._read_dir, unknown)):
            if read is None:
                continue
            totals, files, skipped = read
            out.read[model] = totals
            out.files[model] = files
            out.skipped.extend(skipped)
            if not skipped and now - totals.dir_mtime >= self.settle_s:
                if self._write_file_list(model, totals, files):
                    totals.verified = now
                    index[model] = totals
                    changed = True
            else:
                totals.settled = False
        # Check times are kept too (so that the checks go round across processes), at most once a minute.
        if changed or now - self._index_written >= VERIFIED_WRITE_S:
            self._write_index(index)
            self._index_written = now
        self._index = index
        self._unknown = [m for m in unknown if m not in index]
        self._seen = (models, self._parsed[1] if self._parsed is not None else None)
        return out

    def _list_models(self, now: float) -> tuple[str, ...]:
        """selfplay/'s model directories: listed again only when selfplay/ changed (a directory made or
        removed), or when it changed within the last FRESH_S seconds (mtimes may be coarse)."""
        if self.storage.local:
            try:
                mtime = self.storage.mtime(self.base.selfplay)
            except (FileNotFoundError, NotADirectoryError):
                mtime = None
            if mtime is not None and self._listing is not None and self._listing[0] == mtime \
                    and now - mtime >= FRESH_S:
                return self._listing[1]
        else:
            mtime = None
        models = tuple(self.storage.list_names(self.base.selfplay))  # (names only: no stat per entry)
        self._listing = (mtime, models) if mtime is not None else None
        return models

    def refresh(self, model: str, now: float | None = None) -> tuple[DirTotals, list[CountedFile],
                                                                      list[tuple[str, str, bool]]] | None:
        """Read a directory in full again (its summary was stale or corrupt) and summarise it anew."""
        now = time.time() if now is None else now
        read = self._read_dir(model)
        if read is None:
            return None
        totals, files, skipped = read
        index = self._index
        if index is not None:
            index.pop(model, None)
            if not skipped and now - totals.dir_mtime >= self.settle_s and self._write_file_list(model, totals, files):
                totals.verified = now
                index[model] = totals
            else:
                totals.settled = False
                self._unknown.append(model)
            self._write_index(index)
        return read

    def files_of(self, model: str, entry: DirTotals) -> list[CountedFile] | None:
        """The file list of a settled directory, checked against it; None if stale or corrupt (read it in full)."""
        try:
            current = self.storage.mtime(self.data_dir(model))
        except FileNotFoundError:
            return None
        if current != entry.dir_mtime:
            log.info("summary of %s is stale (the directory changed): reading it again", self.data_dir(model))
            return None
        path = self.file_list_path(model)
        try:
            body = _unseal(self.storage.read_bytes(path), path)
            if body["model"] != model or body["dir_mtime"] != entry.dir_mtime:
                raise ValueError(f"{path}: describes another directory")
            root = self.data_dir(model)
            files = [CountedFile(posixpath.join(root, str(n)), int(c), int(p), float(t)) for n, c, p, t in body["files"]]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("ignoring corrupt summary %s (reading the directory again): %s", path, e)
            return None
        if len(files) != entry.files:
            log.warning("ignoring summary %s: it lists %d files, its index entry %d", path, len(files), entry.files)
            return None
        return files

    # --- reading directories ----------------------------------------------------------------------

    def _map(self, fn, items):
        if len(items) <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(self.threads, len(items))) as pool:
            return list(pool.map(fn, items))

    def _read_dir(self, model: str):
        d = self.data_dir(model)
        try:
            dir_mtime = self.storage.mtime(d)
        except FileNotFoundError:
            return None
        paths = [p for p in self.storage.list_files(d, self.kind.suffix) if self.kind.accept(p)]

        def count(path: str):
            known = self.cache.get(path) if self.cache is not None else None
            if known is not None:
                return known, None
            try:
                n, pos_len = self.kind.count(self.storage, path)
                return CountedFile(path, n, pos_len, self.storage.mtime(path)), None
            except CorruptFileError as e:
                return None, (path, str(e), True)
            except (DataFileError, OSError) as e:
                return None, (path, str(e), False)

        files, skipped = [], []
        for f, problem in self._map(count, paths):
            if f is not None:
                files.append(f)
                if self.cache is not None:
                    self.cache[f.path] = f
            else:
                skipped.append(problem)
        counts: dict[int, int] = {}
        for f in files:
            counts[f.pos_len] = counts.get(f.pos_len, 0) + f.count
        newest = max((f.key for f in files), default=None)
        oldest = min((f.mtime for f in files), default=None)
        return DirTotals(model, dir_mtime, counts, len(files), newest, oldest=oldest), files, skipped

    # --- the index and file lists -----------------------------------------------------------------

    def _stale(self, index: dict[str, DirTotals], now: float) -> list[str]:
        """Check the least recently checked entries against their directories; the stale ones."""
        due = heapq.nsmallest(self.verify_per_scan, index, key=lambda m: (index[m].verified, m))

        def mtime(model: str) -> float | None:
            try:
                return self.storage.mtime(self.data_dir(model))
            except FileNotFoundError:
                return None

        stale = []
        for model, current in zip(due, self._map(mtime, due)):
            if current != index[model].dir_mtime:
                stale.append(model)
            else:
                index[model].verified = now
        return stale

    def _read_index(self) -> dict[str, DirTotals]:
        """The index's entries; a process that surveys again and again reads it again only when it changed."""
        try:
            info = self.storage.fs.info(self.index_path)
        except FileNotFoundError:
            self._index_written = 0.0
            return {}
        except OSError as e:
            log.warning("cannot read %s (reading every directory): %s", self.index_path, e)
            return {}
        stamp = (info.get("mtime"), info.get("size"), info.get("ino"))
        if self._parsed is not None and self._parsed[0] == stamp and stamp[0] is not None:
            return self._parsed[1]
        self._index_written = float(stamp[0] or 0.0)
        try:
            data = self.storage.read_bytes(self.index_path)
        except OSError as e:
            log.warning("cannot read %s (reading every directory): %s", self.index_path, e)
            return {}
        try:
            body = _unseal(data, self.index_path)
            if body.get("kind") != self.kind.name:
                raise ValueError(f"{self.index_path}: holds {body.get('kind')!r}, not {self.kind.name!r}")
            index = {str(m): DirTotals.from_json(str(m), e) for m, e in body["dirs"].items()}
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
            log.warning("ignoring corrupt summary index (reading every directory again): %s", e)
            return {}
        self._parsed = (stamp, index)
        return index

    def _write_index(self, index: dict[str, DirTotals]) -> None:
        body = {"version": VERSION, "kind": self.kind.name, "dirs": {m: e.to_json() for m, e in sorted(index.items())}}
        try:
            self.storage.makedirs(posixpath.dirname(self.index_path))
            self.storage.write_bytes(self.index_path, _sealed(body))
            info = self.storage.fs.info(self.index_path)
        except OSError as e:  # a cache: the next scan reads the directories again
            log.warning("cannot write %s: %s", self.index_path, e)
            self._parsed = None
            return
        self._parsed = ((info.get("mtime"), info.get("size"), info.get("ino")), index)

    def _write_file_list(self, model: str, totals: DirTotals, files: list[CountedFile]) -> bool:
        body = {"version": VERSION, "model": model, "dir_mtime": totals.dir_mtime,
                "files": [[posixpath.basename(f.path), f.count, f.pos_len, f.mtime] for f in files]}
        try:
            self.storage.makedirs(self.dir_root)
            self.storage.write_bytes(self.file_list_path(model), _sealed(body))
        except OSError as e:
            log.warning("cannot write the summary of %s: %s", self.data_dir(model), e)
            return False
        return True
