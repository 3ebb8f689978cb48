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
  and its totals (an *entry*: counts per pos_len, files, newest and oldest
  file, the directory's mtime) to the index. A directory with an unreadable
  file is never summarised (it is read in full until the file is gone,
  quarantined).
- The index is **segmented**, so that what a reader parses does not grow
  with the history. Entries go to the *open segment*, kept in the index file
  ``BASEDIR/summaries/<kind>.json``; when it holds ``SEGMENT_SIZE`` entries
  they are written to a *sealed segment*,
  ``summaries/<kind>.segments/<sha256>.json``, named by its content's
  SHA-256 and never changed after, and the index keeps only the segment's
  name and totals (directories, files, counts per pos_len, of which the
  random bootstrap's, newest and oldest file). The index also keeps
  ``selfplay/``'s mtime when it was last listed and the directories present
  but not summarised (not settled yet, or holding an unreadable file).
- A **survey** stats ``selfplay/`` and the index (two calls); when neither
  changed it reads in full only the directories not summarised (the recent
  ones) and takes every total from the index: the sealed segments' totals
  and the open segment's entries. When ``selfplay/`` changed, one streamed
  listing with mtimes finds the new directories (those changed since the
  last listing, checked against the count of known ones; any doubt and
  every segment is read to compare names). A reader that wants file lists
  (the shuffle's window) takes settled directories newest first
  (``Survey.newest_first``) and reads a sealed segment only when its newest
  file may still be in the window.

Never trusted blindly: every summary, the index and each segment carry a
SHA-256 of their content and are checked before use. A file list that is
unreadable, fails its checksum or describes another directory is
**corrupt**; one whose directory's mtime changed since (a file added,
removed or quarantined) is **stale**; either way the directory is read in
full again. A segment that is missing, fails its checksum, or whose content
does not match its name or its totals in the index is dropped and every
directory it held is found again by a full listing and read in full. File
lists are checked against their directory's mtime when used; index entries
are checked ``verify_per_scan`` at a time from a cursor kept in the index
(one segment read per survey, by a process that surveys again and again at
most every ``VERIFY_EVERY_S``; in a thread beside the survey's listing and
reading, so a long history adds no round trip in sequence), so every entry
is checked in turn; a stale
entry of a sealed segment is taken out by writing the segment anew, without
it. Summaries are caches: deleting ``summaries/`` loses nothing. Several
processes may write them at once: every file is written atomically, a
sealed segment never changes once written, and each index written
describes a consistent state (the last one written wins; a segment no index
names is removed an hour later).
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from zeroloop import layout, rows, sealed
from zeroloop.errors import CorruptFileError, DataFileError
from zeroloop.storage import BaseDir, Storage, is_tmp

log = logging.getLogger(__name__)

VERSION = 2
SETTLE_S = 3600.0
VERIFY_PER_SCAN = 8
SEGMENT_SIZE = 64  # settled directories per sealed segment
SEGMENTS_CACHED = 4  # sealed segments a process keeps parsed (a long-running one stays bounded)
ORPHAN_AGE_S = 3600.0  # a segment no index names (a writer lost a race) is removed this long after it was written
FRESH_S = 2.0  # selfplay/ modified this recently is listed at every survey (mtimes may be as coarse as 1 s)
VERIFIED_WRITE_S = 60.0  # the index is rewritten for its check cursor alone at most this often
VERIFY_EVERY_S = 10.0  # a process that surveys again and again checks entries at most this often
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


def _counts_json(counts: Mapping[int, int]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(counts.items())}


def _counts_from(d: dict) -> dict[int, int]:
    counts = {int(k): int(v) for k, v in d.items()}
    if any(v < 0 for v in counts.values()):
        raise ValueError("bad counts")
    return counts


def _key_from(value) -> tuple[float, str] | None:
    return (float(value[0]), str(value[1])) if value is not None else None


@dataclass
class DirTotals:
    """One directory's totals: an index entry, or the sum of a directory read now."""

    model: str
    dir_mtime: float
    counts: dict[int, int]  # pos_len -> count
    files: int
    newest: tuple[float, str] | None  # key of the newest file
    settled: bool = True
    verified: float = 0.0  # (unused since the index is segmented; kept for callers that set it)
    oldest: float | None = None  # mtime of the oldest file

    @property
    def random(self) -> bool:
        return self.model == RANDOM_MODEL_DIR

    def to_json(self) -> dict:
        return {"dir_mtime": self.dir_mtime, "counts": _counts_json(self.counts), "files": self.files,
                "newest": list(self.newest) if self.newest else None, "oldest": self.oldest}

    @classmethod
    def from_json(cls, model: str, d: dict) -> "DirTotals":
        if not isinstance(d["files"], int):
            raise ValueError("bad counts")
        oldest = d.get("oldest")
        return cls(model, float(d["dir_mtime"]), _counts_from(d["counts"]), d["files"], _key_from(d["newest"]),
                   True, 0.0, float(oldest) if oldest is not None else None)


@dataclass(frozen=True)
class Segment:
    """A sealed segment as the index names it: its file's name (its content's SHA-256) and its totals."""

    name: str
    dirs: int
    files: int
    counts: dict[int, int]  # pos_len -> count, every directory of the segment
    random_counts: dict[int, int]  # of those, the random bootstrap's
    newest: tuple[float, str] | None  # the newest file of any of its directories
    oldest: float | None

    @classmethod
    def of(cls, name: str, entries: Mapping[str, DirTotals]) -> "Segment":
        counts: dict[int, int] = {}
        random_counts: dict[int, int] = {}
        for e in entries.values():
            for p, n in e.counts.items():
                counts[p] = counts.get(p, 0) + n
                if e.random:
                    random_counts[p] = random_counts.get(p, 0) + n
        newest = max((e.newest for e in entries.values() if e.newest is not None), default=None)
        oldest = min((e.oldest for e in entries.values() if e.oldest is not None), default=None)
        return cls(name, len(entries), sum(e.files for e in entries.values()), counts, random_counts, newest, oldest)

    def to_json(self) -> dict:
        return {"name": self.name, "dirs": self.dirs, "files": self.files, "counts": _counts_json(self.counts),
                "random_counts": _counts_json(self.random_counts),
                "newest": list(self.newest) if self.newest else None, "oldest": self.oldest}

    @classmethod
    def from_json(cls, d: dict) -> "Segment":
        name = str(d["name"])
        if len(name) != 64 or any(c not in "0123456789abcdef" for c in name):
            raise ValueError(f"bad segment name {name!r}")
        oldest = d["oldest"]
        return cls(name, int(d["dirs"]), int(d["files"]), _counts_from(d["counts"]), _counts_from(d["random_counts"]),
                   _key_from(d["newest"]), float(oldest) if oldest is not None else None)


@dataclass
class Index:
    """The parsed index of one kind: sealed segments by name and totals, the open segment's entries, the
    directories present but not summarised, selfplay/'s mtime when last listed, and the check cursor."""

    segments: list[Segment] = field(default_factory=list)
    open: dict[str, DirTotals] = field(default_factory=dict)
    unsettled: list[str] = field(default_factory=list)
    listed_mtime: float | None = None
    cursor: int = 0

    def known(self) -> int:
        """Directories of selfplay/ the index accounts for (summarised or not)."""
        return sum(s.dirs for s in self.segments) + len(self.open) + len(self.unsettled)

    def entries(self) -> int:
        return sum(s.dirs for s in self.segments) + len(self.open)

    def to_json(self, kind: str) -> dict:
        return {"version": VERSION, "kind": kind, "listed_mtime": self.listed_mtime, "cursor": self.cursor,
                "segments": [s.to_json() for s in self.segments],
                "open": {m: e.to_json() for m, e in self.open.items()}, "unsettled": list(self.unsettled)}

    @classmethod
    def from_json(cls, body: dict) -> "Index":
        listed = body["listed_mtime"]
        unsettled = body["unsettled"]
        if not isinstance(unsettled, list) or not all(isinstance(m, str) for m in unsettled):
            raise ValueError("bad list of directories")
        return cls([Segment.from_json(s) for s in body["segments"]],
                   {str(m): DirTotals.from_json(str(m), e) for m, e in body["open"].items()},
                   unsettled, float(listed) if listed is not None else None, int(body["cursor"]))


@dataclass
class _Check:
    """One run of the rotating check: the entries due, from the cursor's place, and what was found."""

    total: int  # entries in the index when the check started
    at: int  # the cursor's place in seg (or in the open segment)
    seg: Segment | None  # the sealed segment checked; None: the open segment's entries
    entries: dict[str, DirTotals] | None  # seg's entries if already parsed; the open segment's entries due
    due: list[str] = field(default_factory=list)
    mtimes: list[float | None] = field(default_factory=list)  # each due directory's mtime now (None: gone)
    problem: Exception | None = None  # why seg could not be read


class IndexChanged(Exception):
    """A sealed segment turned out missing or corrupt while it was read: it is dropped; survey again."""


@dataclass
class Survey:
    """Every directory of one kind: totals of all, the files of those read in full.

    ``index`` is the summaries' index itself, shared, not a copy (read it, never change it): a survey of a
    long history allocates only for the directories read now and the segments read."""

    read: dict[str, DirTotals] = field(default_factory=dict)  # directories read in full now
    files: dict[str, list[CountedFile]] = field(default_factory=dict)  # model -> files, for directories read now
    skipped: list[tuple[str, str, bool]] = field(default_factory=list)  # (path, why, corrupt)
    index: Index = field(default_factory=Index)
    summaries: "Summaries | None" = None

    def _entries(self) -> Iterator[DirTotals]:
        """The directories not in a sealed segment: the open segment's and those read now but not summarised
        (one read now and summarised is in the index: counted there, once)."""
        yield from self.index.open.values()
        yield from (d for d in self.read.values() if not d.settled)

    def counts(self) -> tuple[dict[int, int], dict[int, int]]:
        """(pos_len -> count, pos_len -> count of the random bootstrap) over every directory."""
        counts: dict[int, int] = {}
        random_counts: dict[int, int] = {}

        def add(into: dict[int, int], more: Mapping[int, int]) -> None:
            for p, n in more.items():
                into[p] = into.get(p, 0) + n

        for s in self.index.segments:
            add(counts, s.counts)
            add(random_counts, s.random_counts)
        for d in self._entries():
            add(counts, d.counts)
            if d.random:
                add(random_counts, d.counts)
        return counts, random_counts

    def total(self, pos_len: int | None = None) -> int:
        counts = self.counts()[0]
        return sum(n for p, n in counts.items() if pos_len is None or p == pos_len)

    def points(self) -> list[tuple[str, float, int, float]]:
        """(what, newest file's mtime, count, oldest file's mtime): one per directory read now or in the
        open segment, one per sealed segment (its directories together), unordered."""
        out = [(f"{s.dirs} directories", s.newest[0], sum(s.counts.values()),
                s.oldest if s.oldest is not None else s.newest[0]) for s in self.index.segments if s.newest]
        out += [(d.model, d.newest[0], sum(d.counts.values()), d.oldest if d.oldest is not None else d.newest[0])
                for d in self._entries() if d.newest is not None]
        return out

    def newest_first(self) -> Iterator[tuple[str | None, DirTotals | tuple[float, str]]]:
        """The summarised directories not read now, newest file first, as (model, entry); before a sealed
        segment is read, (None, its newest key): a caller that wants nothing that old stops, and the
        segment is never read. Raises IndexChanged if a segment turns out corrupt (it is dropped)."""
        pending = sorted((e.newest, m, e) for m, e in self.index.open.items()
                         if m not in self.read and e.newest is not None)
        sealed_refs = sorted((s for s in self.index.segments if s.newest is not None), key=lambda s: s.newest)
        while pending or sealed_refs:
            if sealed_refs and (not pending or sealed_refs[-1].newest > pending[-1][0]):
                seg = sealed_refs.pop()
                yield None, seg.newest
                entries = self.summaries._segment(self.index, seg) if self.summaries else None
                if entries is None:
                    raise IndexChanged(seg.name)
                pending.extend((e.newest, m, e) for m, e in entries.items()
                               if m not in self.read and e.newest is not None)
                pending.sort()
                continue
            _, model, entry = pending.pop()
            yield model, entry


class OlderFormat(ValueError):
    """A summary written by an older zeroloop (version 1: one index file with an entry per directory)."""


def _unseal(data: bytes, where: str) -> dict:
    """The body of a sealed summary; ValueError if it is not one (corrupt), OlderFormat if an older one."""
    body = sealed.unseal(data, where)
    version = body.get("version") if isinstance(body, dict) else None
    if isinstance(version, int) and 0 < version < VERSION:
        raise OlderFormat(f"{where}: version {version}, this zeroloop writes {VERSION}")
    if version != VERSION:
        raise ValueError(f"{where}: unknown version")
    return body


class Summaries:
    """The settled-directory summaries of one kind of self-play output in a BASEDIR."""

    def __init__(self, base: BaseDir, kind: Kind, settle_s: float = SETTLE_S,
                 verify_per_scan: int = VERIFY_PER_SCAN, threads: int = 16, cache: dict | None = None):
        """cache (path -> CountedFile), kept by the caller between surveys, spares recounting a file
        (published files never change)."""
        self.cache = cache
        self._parsed: tuple[tuple, Index] | None = None  # (the index file's stamp, the index)
        self._loaded: OrderedDict[str, dict[str, DirTotals]] = OrderedDict()  # sealed segments read (LRU)
        self._index_written = 0.0
        self._verified_at = -VERIFY_EVERY_S  # (monotonic) when this process last checked entries
        self._dirty = False
        self.base = base
        self.storage = base.storage
        self.kind = kind
        self.settle_s = settle_s
        self.verify_per_scan = verify_per_scan
        self.threads = max(1, threads)
        self.index_path = layout.summary_index(base.root, kind.name)
        self.segment_root = layout.summary_segments(base.root, kind.name)
        self.dir_root = layout.summaries(base.root, kind.name)

    # --- paths ---------------------------------------------------------------------------------

    def data_dir(self, model: str) -> str:
        return layout.model_data(self.base.selfplay, model, self.kind.name)

    def file_list_path(self, model: str) -> str:
        return posixpath.join(self.dir_root, f"{model}.json")

    def segment_path(self, name: str) -> str:
        return posixpath.join(self.segment_root, f"{name}.json")

    # --- the survey ------------------------------------------------------------------------------

    def survey(self, now: float | None = None) -> Survey:
        """Totals of every directory: from the index where it holds, else read in full (and summarised).

        The rotating check's reading (a sealed segment and a stat per entry checked) runs in a thread of its
        own beside the listing and the reading of the recent directories, so that it adds no round trip in
        sequence: a survey of a long history waits for as many answers in a row as one of a short history."""
        now = time.time() if now is None else now
        index = self._read_index()  # (the parsed index itself: changed in place, written when it changes)
        self._dirty = False
        out = Survey(index=index, summaries=self)
        unsettled: list[str] = []
        with ThreadPoolExecutor(max_workers=1) as checker:
            check = None
            if time.monotonic() - self._verified_at >= VERIFY_EVERY_S:  # (every fresh process checks; the same
                self._verified_at = time.monotonic()                    # process again 10 s later at the soonest)
                check = self._start_check(index, checker)
            new = self._find_new(index, now)
            self._read_into(out, index, [*index.unsettled, *new], now, unsettled)
            again = self._finish_check(index, check.result()) if check is not None else []
        if again is None:  # a segment was dropped: its directories are found by a full listing, now
            again = self._find_new(index, now)
        self._read_into(out, index, [m for m in again if m not in out.read and m not in unsettled], now, unsettled)
        if unsettled != index.unsettled:
            index.unsettled = unsettled
            self._dirty = True
        self._seal(index)
        # The check cursor is kept too (so that the checks go round across processes), at most once a minute.
        if self._dirty or now - self._index_written >= VERIFIED_WRITE_S:
            self._write_index(index)
            self._index_written = now
        return out

    def _read_into(self, out: Survey, index: Index, models: list[str], now: float, unsettled: list[str]) -> None:
        """Read models' directories in full into out; the settled ones go to the open segment (summarised),
        the others to unsettled."""
        todo = list(dict.fromkeys(models))
        for model, read in zip(todo, self._map(self._read_dir, todo)):
            if read is None:
                if self.storage.exists(posixpath.join(self.base.selfplay, model)):
                    unsettled.append(model)  # no data directory yet: looked at again next time
                continue
            totals, files, skipped = read
            out.read[model] = totals
            out.files[model] = files
            out.skipped.extend(skipped)
            if not skipped and now - totals.dir_mtime >= self.settle_s and self._write_file_list(model, totals, files):
                index.open[model] = totals
                self._dirty = True
            else:
                totals.settled = False
                unsettled.append(model)

    def _find_new(self, index: Index, now: float) -> list[str]:
        """Directories of selfplay/ the index does not know (and those gone, dropped from it).

        Nothing is listed while selfplay/'s mtime is the one recorded. Else one streamed listing with
        mtimes: a directory made since the last listing has an mtime at least that listing's; if the
        older ones and the known recent ones add up to the directories known, the rest are new; if not
        (a directory removed, or a known one changed), every segment is read and names compared."""
        selfplay = self.base.selfplay
        mtime = None
        if self.storage.local:
            try:
                mtime = self.storage.mtime(selfplay)
            except (FileNotFoundError, NotADirectoryError):
                mtime = None
                if index.known():
                    return self._compare(index, [])
                return []
            if index.listed_mtime is not None and index.listed_mtime == mtime and now - mtime >= FRESH_S:
                return []
        since = index.listed_mtime - FRESH_S if index.listed_mtime is not None and mtime is not None else None
        recent = set(index.open) | set(index.unsettled)
        count, candidates = 0, []
        for path, changed in self.storage.scan_subdirs(selfplay):
            name = posixpath.basename(path)
            if is_tmp(name):
                continue
            count += 1
            if since is None or changed is None or changed >= since:
                candidates.append(name)
        known = [c for c in candidates if c in recent]
        if since is not None and count - len(candidates) + len(known) == index.known():
            new = [c for c in candidates if c not in recent]
        else:
            names = candidates if since is None else \
                [posixpath.basename(p) for p, _ in self.storage.scan_subdirs(selfplay)
                 if not is_tmp(posixpath.basename(p))]
            new = self._compare(index, names)
        if index.listed_mtime != mtime:
            index.listed_mtime = mtime
            self._dirty = True
        return new

    def _compare(self, index: Index, names: list[str]) -> list[str]:
        """Every directory named in the index against names (selfplay/'s listing): those gone are dropped,
        and the names the index does not hold are returned. Reads every sealed segment."""
        present = set(names)
        known = set(index.unsettled) | set(index.open)
        for seg in list(index.segments):
            entries = self._segment(index, seg)
            if entries is None:
                continue  # dropped: its directories are among the new ones
            gone = {m for m in entries if m not in present}
            if gone:
                self._take_out(index, seg, entries, gone)
            known.update(m for m in entries if m in present)
        for model in [m for m in index.open if m not in present]:
            del index.open[model]
            self._dirty = True
        kept = [m for m in index.unsettled if m in present]
        if kept != index.unsettled:
            index.unsettled = kept
            self._dirty = True
        return [m for m in names if m not in known]

    def _start_check(self, index: Index, pool: ThreadPoolExecutor) -> "Future[_Check] | None":
        """Start the check of the entries at the cursor (one segment's, or the open segment's) in pool. What
        the reading needs of the index is taken now: the survey goes on changing the index meanwhile."""
        total = index.entries()
        if total == 0 or self.verify_per_scan <= 0:
            return None
        at = index.cursor % total
        for seg in index.segments:
            if at < seg.dirs:
                return pool.submit(self._read_check, _Check(total, at, seg, self._loaded.get(seg.name)))
            at -= seg.dirs
        due = list(index.open)[at:at + self.verify_per_scan]
        return pool.submit(self._read_check, _Check(total, at, None, {m: index.open[m] for m in due}))

    def _read_check(self, check: "_Check") -> "_Check":
        """The check's reading (no change to the index or to this object: it runs beside the survey): the
        segment's entries unless already parsed, then the current mtime of each directory due."""
        if check.entries is None:
            try:
                check.entries = self._load_segment(check.seg)
            except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
                check.problem = e
                return check
        check.due = list(check.entries)[check.at:check.at + self.verify_per_scan] if check.seg else list(check.entries)

        def mtime(model: str) -> float | None:
            try:
                return self.storage.mtime(self.data_dir(model))
            except FileNotFoundError:
                return None

        check.mtimes = self._map(mtime, check.due)
        return check

    def _finish_check(self, index: Index, check: "_Check") -> list[str] | None:
        """Apply a check: the stale entries are taken out of the index and returned (to be read in full);
        None if the segment turned out missing or corrupt (dropped: its directories are to be listed again)."""
        seg = check.seg
        if seg is not None:
            if seg not in index.segments:
                return []  # (rewritten meanwhile by the listing's comparison: checked another time)
            if check.problem is not None:
                self._drop_segment(index, seg, check.problem)
                index.cursor = 0
                return None
            self._remember(seg.name, check.entries)
        stale = {m for m, current in zip(check.due, check.mtimes) if current != check.entries[m].dir_mtime}
        index.cursor = (index.cursor + len(check.due) - len(stale)) % max(1, check.total - len(stale))
        for model in stale:
            log.info("summary of %s is stale (the directory changed): reading it again", self.data_dir(model))
        if stale:
            if seg is not None:
                self._take_out(index, seg, check.entries, stale)
            else:
                for model in stale:
                    index.open.pop(model, None)
            self._dirty = True
        return sorted(stale)

    def refresh(self, model: str, now: float | None = None) -> tuple[DirTotals, list[CountedFile],
                                                                      list[tuple[str, str, bool]]] | None:
        """Read a directory in full again (its summary was stale or corrupt) and summarise it anew."""
        now = time.time() if now is None else now
        read = self._read_dir(model)
        index = self._parsed[1] if self._parsed is not None else None
        if index is None:
            return read
        self._dirty = False
        self._forget(index, model)
        if read is None:
            index.unsettled.append(model)
        else:
            totals, files, skipped = read
            if not skipped and now - totals.dir_mtime >= self.settle_s and self._write_file_list(model, totals, files):
                index.open[model] = totals
            else:
                totals.settled = False
                index.unsettled.append(model)
        self._seal(index)
        self._write_index(index)
        return read

    def _forget(self, index: Index, model: str) -> None:
        """Take model's entry out of the index, wherever it is."""
        if index.open.pop(model, None) is not None:
            return
        if model in index.unsettled:
            index.unsettled.remove(model)
            return
        for seg in list(index.segments):
            entries = self._segment(index, seg)
            if entries is not None and model in entries:
                self._take_out(index, seg, entries, {model})
                return

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

    # --- sealed segments ---------------------------------------------------------------------------

    def _segment(self, index: Index, seg: Segment) -> dict[str, DirTotals] | None:
        """A sealed segment's entries, checked against its name and its totals in the index. A missing or
        corrupt one is dropped from the index (its directories are then found by a full listing): None."""
        if seg.name in self._loaded:
            self._loaded.move_to_end(seg.name)
            return self._loaded[seg.name]
        try:
            entries = self._load_segment(seg)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
            self._drop_segment(index, seg, e)
            return None
        self._remember(seg.name, entries)
        return entries

    def _load_segment(self, seg: Segment) -> dict[str, DirTotals]:
        """Read and check a sealed segment (no change to anything: the rotating check calls it from a thread
        of its own). Raises OSError if it cannot be read, ValueError (and kin) if it is corrupt."""
        path = self.segment_path(seg.name)
        data = self.storage.read_bytes(path)
        if hashlib.sha256(data).hexdigest() != seg.name:
            raise ValueError(f"{path}: its content is not the one its name says (altered)")
        body = _unseal(data, path)
        if body.get("kind") != self.kind.name:
            raise ValueError(f"{path}: holds {body.get('kind')!r}, not {self.kind.name!r}")
        entries = {str(m): DirTotals.from_json(str(m), e) for m, e in body["dirs"].items()}
        if Segment.of(seg.name, entries) != seg:
            raise ValueError(f"{path}: its totals differ from the index's")
        return entries

    def _drop_segment(self, index: Index, seg: Segment, problem: Exception) -> None:
        why = "missing" if isinstance(problem, FileNotFoundError) else "corrupt"
        log.warning("ignoring %s summary segment %s (reading its directories again): %s", why,
                    self.segment_path(seg.name), problem)
        if seg in index.segments:
            index.segments.remove(seg)
        index.listed_mtime = None  # its directories: found again by the next listing
        self._write_index(index)

    def _remember(self, name: str, entries: dict[str, DirTotals]) -> None:
        """Keep a sealed segment's entries read or written, the SEGMENTS_CACHED most recent only."""
        self._loaded[name] = entries
        self._loaded.move_to_end(name)
        while len(self._loaded) > SEGMENTS_CACHED:
            self._loaded.popitem(last=False)

    def _write_segment(self, entries: Mapping[str, DirTotals]) -> Segment | None:
        data = sealed.seal({"version": VERSION, "kind": self.kind.name,
                            "dirs": {m: e.to_json() for m, e in entries.items()}})
        name = hashlib.sha256(data).hexdigest()
        try:
            self.storage.makedirs(self.segment_root)
            self.storage.write_bytes(self.segment_path(name), data)
        except OSError as e:
            log.warning("cannot write a summary segment in %s: %s", self.segment_root, e)
            return None
        self._remember(name, dict(entries))
        return Segment.of(name, entries)

    def _take_out(self, index: Index, seg: Segment, entries: Mapping[str, DirTotals], models: set[str]) -> None:
        """A sealed segment without models: written anew (a sealed file never changes), or, if that fails,
        its other entries back in the open segment."""
        rest = {m: e for m, e in entries.items() if m not in models}
        at = index.segments.index(seg)
        index.segments.pop(at)
        self._dirty = True
        if not rest:
            return
        new = self._write_segment(rest)
        if new is None:
            index.open.update(rest)
        else:
            index.segments.insert(at, new)

    def _seal(self, index: Index) -> None:
        """The open segment's oldest entries become sealed segments of SEGMENT_SIZE each (directories close
        in time share a segment, so a reader wanting the newest reads few); then segments no index names, an
        hour old, are removed."""
        sealed_one = False
        while len(index.open) >= SEGMENT_SIZE:
            oldest = dict(sorted(index.open.items(), key=lambda kv: (kv[1].newest or (0.0, ""), kv[0]))[:SEGMENT_SIZE])
            seg = self._write_segment(oldest)
            if seg is None:
                return
            index.segments.append(seg)
            for model in oldest:
                del index.open[model]
            self._dirty = sealed_one = True
        if sealed_one:
            self._sweep(index)

    def _sweep(self, index: Index) -> None:
        named = {s.name for s in index.segments}
        now = time.time()
        for path, mtime in self._segment_files():
            name = posixpath.basename(path).removesuffix(".json")
            if name not in named and mtime is not None and now - mtime >= ORPHAN_AGE_S:
                try:
                    self.storage.remove(path)
                except OSError:
                    pass

    def _segment_files(self) -> Iterator[tuple[str, float | None]]:
        for path in self.storage.list_files(self.segment_root, ".json"):
            try:
                yield path, self.storage.mtime(path)
            except OSError:
                continue

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

    def _read_index(self) -> Index:
        """The index; a process that surveys again and again reads it again only when it changed."""
        try:
            info = self.storage.fs.info(self.index_path)
        except FileNotFoundError:
            self._index_written = 0.0
            self._parsed = None
            return Index()
        except OSError as e:
            log.warning("cannot read %s (reading every directory): %s", self.index_path, e)
            return Index()
        stamp = (info.get("mtime"), info.get("size"), info.get("ino"))
        if self._parsed is not None and self._parsed[0] == stamp and stamp[0] is not None:
            return self._parsed[1]
        self._index_written = float(stamp[0] or 0.0)
        try:
            data = self.storage.read_bytes(self.index_path)
        except OSError as e:
            log.warning("cannot read %s (reading every directory): %s", self.index_path, e)
            return Index()
        try:
            body = _unseal(data, self.index_path)
            if body.get("kind") != self.kind.name:
                raise ValueError(f"{self.index_path}: holds {body.get('kind')!r}, not {self.kind.name!r}")
            index = Index.from_json(body)
        except OlderFormat as e:  # (an upgrade: every directory is read in full once, then summarised anew)
            log.warning("summary index of an older format, rebuilt once by reading every self-play directory in "
                        "full: %s", e)
            return Index()
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
            log.warning("ignoring corrupt summary index (reading every directory again): %s", e)
            return Index()
        self._parsed = (stamp, index)
        return index

    def _write_index(self, index: Index) -> None:
        try:
            self.storage.makedirs(posixpath.dirname(self.index_path))
            self.storage.write_bytes(self.index_path, sealed.seal(index.to_json(self.kind.name)))
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
            self.storage.write_bytes(self.file_list_path(model), sealed.seal(body))
        except OSError as e:
            log.warning("cannot write the summary of %s: %s", self.data_dir(model), e)
            return False
        return True
