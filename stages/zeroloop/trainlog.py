"""A training run's reports, read once: a bounded summary of its metrics_train.jsonl.

The trainer appends one line per report to ``train/<name>/metrics_train.jsonl``
(``zeroloop.train.progress``): a month-long run holds hundreds of thousands.
The run statistics need the last losses and the samples trained, and the
report a plot of each loss term against samples; reading the whole file for
that, in every fresh process (the report runs after every cycle), costs time
and memory in proportion to the run's history. So a ``TrainLog`` keeps:

- the offset read up to, with a SHA-256 of the file's first bytes and of the
  bytes just before the offset (``CHECK_BYTES`` each), to recognise the file;
- the samples trained (the largest ``samples`` of any line), the last
  losses, and each loss term as a **downsampled series**: at most
  ``MAX_POINTS`` points, each the mean of ``stride`` consecutive reports;
  when the series is full, neighbouring points are merged pairwise and the
  stride doubles. Every point but the last holds exactly ``stride`` reports,
  so the series depends only on the lines, not on how they were read.

It is persisted, sealed (``zeroloop.sealed``), as two caches that a
process reads apart: ``summaries/train/<name>.json`` holds the scalars
(offset, checks, samples, last losses: a few hundred bytes, whatever the
run's length) and ``summaries/train/<name>.series.json`` the scalars and
the series. The run statistics (every cycle, every status line) want only
the scalars, so a ``TrainLog(series=False)`` reads the small file and
nothing of the series; the report's loss plot reads the series file, and
writes both. Each file carries its own offset and checks, so either may be
behind the other, missing or damaged on its own. A process reads the
summary, checks it against the file, and reads only what was appended
since; a process that asks again (the loop's progress bar) stats the file
and reads only when its size or mtime changed. A run whose summary
predates the split (version 1: one file with the series) is read from
that file once and written anew in the two.

Never trusted blindly: a summary that is unreadable, fails its seal or names
another file is **corrupt**; one whose offset lies past the file's end, or
whose checked bytes differ from the file's (a trainer restarted from a
checkpoint truncates the file to the checkpoint's length and writes new
lines; a new run may reuse the name) is **stale**. Either way the file is
read again from its start. Deleting ``summaries/train/`` loses nothing.
The check covers the two ends of what was read, not its middle: the file
is append-only, and the one rewrite the trainer does (truncate, then
append) changes the bytes before the old offset.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import time
from dataclasses import dataclass, field

from zeroloop import layout, sealed
from zeroloop.storage import BaseDir

log = logging.getLogger(__name__)

VERSION = 2  # 1: one file with the series (read, never written)
MAX_POINTS = 1024  # points per loss series: a plot 8 inches wide shows no more
CHECK_BYTES = 4096  # bytes hashed at the file's start and before the offset
READ_CHUNK = 1 << 20  # appended data is parsed a megabyte at a time: memory stays bounded
WRITE_EVERY_S = 30.0  # a process that reads again and again rewrites the summary at most this often


@dataclass
class Point:
    """The mean of ``n`` consecutive reports: samples, and each loss term over the reports that had it."""

    n: int = 0
    samples: float = 0.0  # sum over the n reports
    losses: dict[str, list[float]] = field(default_factory=dict)  # term -> [sum, reports with it]

    def add(self, other: "Point") -> None:
        self.n += other.n
        self.samples += other.samples
        for term, (s, k) in other.losses.items():
            acc = self.losses.setdefault(term, [0.0, 0])
            acc[0] += s
            acc[1] += k

    def to_json(self) -> list:
        return [self.n, self.samples, {t: [s, k] for t, (s, k) in sorted(self.losses.items())}]

    @classmethod
    def from_json(cls, d: list) -> "Point":
        n, samples, losses = d
        point = cls(int(n), float(samples), {str(t): [float(s), int(k)] for t, (s, k) in losses.items()})
        if point.n < 1 or any(k < 0 or k > point.n for _, k in point.losses.values()):
            raise ValueError("bad point")
        return point


@dataclass
class Series:
    """Loss terms against samples, downsampled to at most max_points points."""

    max_points: int = MAX_POINTS
    stride: int = 1
    points: list[Point] = field(default_factory=list)

    def add(self, samples: float, losses: dict[str, float]) -> None:
        one = Point(1, float(samples), {t: [float(v), 1] for t, v in losses.items()})
        if self.points and self.points[-1].n < self.stride:
            self.points[-1].add(one)
        else:
            self.points.append(one)
        if len(self.points) > self.max_points:
            merged = []
            for i in range(0, len(self.points), 2):
                p = self.points[i]
                for q in self.points[i + 1:i + 2]:
                    p.add(q)
                merged.append(p)
            self.points = merged
            self.stride *= 2

    def curve(self, term: str) -> tuple[list[float], list[float]]:
        """(samples, mean loss) of each point that has the term."""
        xs, ys = [], []
        for p in self.points:
            s, k = p.losses.get(term, (0.0, 0))
            if k:
                xs.append(p.samples / p.n)
                ys.append(s / k)
        return xs, ys

    def terms(self) -> list[str]:
        return sorted({t for p in self.points for t in p.losses})


@dataclass
class Summary:
    """What has been read of one metrics_train.jsonl."""

    offset: int = 0  # bytes read (whole lines)
    head: str = ""  # SHA-256 of the file's first min(CHECK_BYTES, offset) bytes
    tail: str = ""  # SHA-256 of the CHECK_BYTES bytes before offset
    samples: int = 0  # the largest "samples" of any line
    last_time: float = 0.0  # time of the last report with losses
    last_losses: dict[str, float] = field(default_factory=dict)
    series: Series | None = field(default_factory=Series)  # None: the scalars only

    def to_json(self, training: str, series: bool) -> dict:
        """The scalars, and the series if asked (a summary without one cannot give it)."""
        body = {"version": VERSION, "training": training, "series": series, "offset": self.offset,
                "head": self.head, "tail": self.tail, "samples": self.samples, "last_time": self.last_time,
                "last_losses": self.last_losses}
        if series:
            assert self.series is not None
            body.update(stride=self.series.stride, max_points=self.series.max_points,
                        points=[p.to_json() for p in self.series.points])
        return body

    @classmethod
    def from_json(cls, body: dict, training: str, series: bool) -> "Summary":
        """A summary from a cache file's body: with its series if asked (then the body must hold one),
        else the scalars alone. Version 1 (one file, always with the series) is read as either."""
        version, holds = body.get("version"), body.get("series")
        if body.get("training") != training or not (version == 1 or (version == VERSION and holds in (True, False))):
            raise ValueError(f"describes {body.get('training')!r} (version {version!r})")
        if series and version == VERSION and not holds:
            raise ValueError("holds no series")
        kept = None
        if series:
            kept = Series(int(body["max_points"]), int(body["stride"]), [Point.from_json(p) for p in body["points"]])
            if kept.stride < 1 or len(kept.points) > kept.max_points:
                raise ValueError("bad series")
        if int(body["offset"]) < 0:
            raise ValueError("bad offset")
        return cls(int(body["offset"]), str(body["head"]), str(body["tail"]), int(body["samples"]),
                   float(body["last_time"]), {str(k): float(v) for k, v in body["last_losses"].items()}, kept)

    def take(self, item: dict) -> None:
        """Account for one parsed line."""
        samples = item.get("samples")
        if isinstance(samples, (int, float)) and not isinstance(samples, bool):
            self.samples = max(self.samples, int(samples))
        if "event" in item:
            return
        losses = {k[len("loss_"):]: float(v) for k, v in item.items()
                  if k.startswith("loss_") and isinstance(v, (int, float)) and not isinstance(v, bool)}
        if not losses:
            return
        self.last_losses = losses
        t = item.get("time")
        self.last_time = float(t) if isinstance(t, (int, float)) else self.last_time
        if self.series is not None and isinstance(samples, (int, float)) and not isinstance(samples, bool):
            self.series.add(samples, losses)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parse(line: bytes) -> dict | None:
    try:
        item = json.loads(line)
    except ValueError:
        return None  # a line cut short by a kill
    return item if isinstance(item, dict) else None


class TrainLog:
    """The summary of one training run's metrics_train.jsonl, kept up to date by reading only what is new.

    With ``series=False`` it keeps the scalars alone (samples, last losses), read from and written to the
    small cache file; with ``series=True`` the loss series too, and it writes both files."""

    def __init__(self, base: BaseDir, training: str, max_points: int = MAX_POINTS, series: bool = True):
        self.storage = base.storage
        self.training = training
        self.path = layout.train_metrics(base.root, training)
        self.scalars_path = layout.train_summary(base.root, training)
        self.series_path = layout.train_series(base.root, training)
        self.cache_path = self.series_path if series else self.scalars_path  # the one it reads
        self.max_points = max_points
        self.with_series = series
        self.summary: Summary | None = None  # None: the persisted summary not read yet
        self._stamp: tuple | None = None  # (size, mtime) of the file when last read to its end
        self._written = 0.0  # when this process last wrote the summary
        self._dirty = False
        self.bytes_read = 0  # of metrics_train.jsonl, by this object (tests, benchmarks)

    def _fresh(self) -> Summary:
        return Summary(series=Series(self.max_points) if self.with_series else None)

    def update(self, now: float | None = None) -> Summary:
        """The summary of the file as it is now."""
        try:
            info = self.storage.fs.info(self.path)
        except (FileNotFoundError, NotADirectoryError):
            self.summary, self._stamp = self._fresh(), None
            return self.summary
        stamp = (int(info.get("size") or 0), info.get("mtime"))
        if self.summary is not None and stamp == self._stamp and stamp[1] is not None:
            return self.summary  # unchanged since the last read
        if self.summary is None:
            self.summary = self._load()
        with self.storage.fs.open(self.path, "rb") as f:
            if not self._matches(f, stamp[0]):
                self.summary = self._fresh()
            self._read_from(f, stamp[0])
        self._stamp = stamp
        now = time.time() if now is None else now
        if self._dirty and (self._written == 0.0 or now - self._written >= WRITE_EVERY_S):
            self.save(now)
        return self.summary

    def save(self, now: float | None = None) -> None:
        """Write the summary (atomically, sealed): the scalars, and the series file if kept; a failure is
        logged: it is a cache."""
        if self.summary is None or not self._dirty:
            return
        files = [(self.scalars_path, False)] + ([(self.series_path, True)] if self.with_series else [])
        try:
            self.storage.makedirs(posixpath.dirname(self.cache_path))
            for path, series in files:
                self.storage.write_bytes(path, sealed.seal(self.summary.to_json(self.training, series)))
        except OSError as e:
            log.warning("cannot write %s: %s", self.cache_path, e)
            return
        self._written = time.time() if now is None else now
        self._dirty = False

    # --- checks and reading ------------------------------------------------------------------------

    def _load(self) -> Summary:
        """The persisted summary; a fresh one (the file read from its start) if it is missing or corrupt."""
        paths = [self.cache_path]
        if self.with_series:
            paths.append(self.scalars_path)  # (a summary of version 1 held the series there)
        for path in paths:
            try:
                data = self.storage.read_bytes(path)
            except FileNotFoundError:
                continue
            except OSError as e:
                log.warning("cannot read %s (reading %s from its start): %s", path, self.path, e)
                return self._fresh()
            try:
                body = sealed.unseal(data, path)
                if not isinstance(body, dict):
                    raise ValueError("not an object")
                if path != self.cache_path and body.get("version") != 1:
                    continue  # (the scalars of this version: no series)
                summary = Summary.from_json(body, self.training, self.with_series)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                log.warning("ignoring corrupt summary %s (reading %s from its start): %s", path, self.path, e)
                self._dirty = True  # (replace it even if nothing new is read)
                return self._fresh()
            self._dirty = path != self.cache_path or body.get("version") != VERSION  # (an old summary: rewritten)
            return summary
        return self._fresh()

    def _matches(self, f, size: int) -> bool:
        """Whether the bytes the summary read are still the file's first offset bytes (checked at both ends)."""
        s = self.summary
        assert s is not None
        if s.offset == 0:
            return True
        why = None
        if s.offset > size:
            why = f"it read {s.offset} bytes, the file has {size}"
        else:
            f.seek(0)
            head = f.read(min(CHECK_BYTES, s.offset))
            start = max(0, s.offset - CHECK_BYTES)
            f.seek(start)
            tail = f.read(s.offset - start)
            self.bytes_read += len(head) + len(tail)
            if _sha(head) != s.head or _sha(tail) != s.tail:
                why = "the file's bytes differ from those it read"
        if why is None:
            return True
        log.info("summary of %s is stale (%s): reading it from its start", self.path, why)
        self._dirty = True
        return False

    def _read_from(self, f, size: int) -> None:
        """Read the whole lines between the summary's offset and size, a chunk at a time."""
        s = self.summary
        assert s is not None
        start = s.offset
        f.seek(start)
        pending = b""
        pos = start
        while pos < size:
            chunk = f.read(min(READ_CHUNK, size - pos))
            if not chunk:
                break
            pos += len(chunk)
            self.bytes_read += len(chunk)
            data = pending + chunk
            end = data.rfind(b"\n") + 1  # a line still being written is read next time
            for line in data[:end].splitlines():
                item = _parse(line)
                if item is not None:
                    s.take(item)
            s.offset += end
            pending = data[end:]
        if s.offset == start:
            return
        self._dirty = True
        f.seek(0)
        s.head = _sha(f.read(min(CHECK_BYTES, s.offset)))
        tail_start = max(0, s.offset - CHECK_BYTES)
        f.seek(tail_start)
        s.tail = _sha(f.read(s.offset - tail_start))
