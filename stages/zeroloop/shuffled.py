"""Shuffled data: the directory format the shuffler writes and the trainer reads.

One shuffle is ``shuffleddata/<stamp>/`` (published whole, see ``storage``):

- ``train/data<b>_<j>.npz``: rows in the ``zeroloop.rows`` format, already
  uniformly shuffled; each has ``data<b>_<j>.json`` = ``{"num_rows": N,
  "pos_len": P, "sha256": H}`` beside it (KataGo's per-file count, plus the
  content hash that no-repeat tracking uses instead of the path).
- ``train.json``: ``range`` = [first, end) cumulative data rows of the
  window (KataGo's; ``range[1]`` is the run's total data rows, which feeds
  the train bucket), ``shuffle_id`` (random: a shuffle's identity survives
  the directory being moved or copied), ``pos_len``, ``num_rows`` and
  ``files`` (name, num_rows, sha256 for each), so a reader needs one read.

The shuffler deletes old shuffles; a trainer protects the one it reads by
writing an in-use mark ``train/<name>/shuffle_in_use.json`` (``{"dir":
<stamp>, "time": t}``) that it refreshes while reading. Marks older than
their expiry are ignored (the trainer that wrote them is gone).
"""

from __future__ import annotations

import json
import logging
import posixpath
import time
from dataclasses import dataclass

from zeroloop import layout
from zeroloop.errors import DataFileError
from zeroloop.storage import BaseDir

log = logging.getLogger(__name__)

SUMMARY_NAME = "train.json"
FILES_SUBDIR = "train"
IN_USE_NAME = "shuffle_in_use.json"


@dataclass(frozen=True)
class ShuffledFile:
    name: str  # relative to the shuffle dir, e.g. "train/data0_0.npz"
    num_rows: int
    sha256: str


@dataclass(frozen=True)
class ShuffleSummary:
    """train.json of one shuffle."""

    range: tuple[int, int]
    shuffle_id: str
    pos_len: int
    num_rows: int
    files: tuple[ShuffledFile, ...]

    @property
    def total_data_rows(self) -> int:
        return self.range[1]

    def to_json(self) -> bytes:
        return json.dumps({
            "range": list(self.range),
            "shuffle_id": self.shuffle_id,
            "pos_len": self.pos_len,
            "num_rows": self.num_rows,
            "files": [{"name": f.name, "num_rows": f.num_rows, "sha256": f.sha256} for f in self.files],
        }, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> "ShuffleSummary":
        try:
            d = json.loads(data)
            start, end = (int(x) for x in d["range"])
            files = tuple(ShuffledFile(str(f["name"]), int(f["num_rows"]), str(f["sha256"])) for f in d["files"])
            summary = cls((start, end), str(d["shuffle_id"]), int(d["pos_len"]), int(d["num_rows"]), files)
        except (ValueError, KeyError, TypeError) as e:
            raise DataFileError(f"{where}: malformed shuffle summary ({e})") from None
        if end < start or summary.pos_len < 2 or any(f.num_rows < 0 or ".." in f.name for f in files):
            raise DataFileError(f"{where}: inconsistent shuffle summary")
        return summary


def file_json(num_rows: int, pos_len: int, sha256: str) -> bytes:
    """A shuffled file's count file (KataGo's num_rows, plus pos_len and content hash)."""
    return json.dumps({"num_rows": num_rows, "pos_len": pos_len, "sha256": sha256}).encode()


def complete_dirs(base: BaseDir) -> list[str]:
    """Complete shuffle dirs that have a summary, oldest first (stamps sort by time)."""
    storage = base.storage
    return [d for d in storage.list_dirs(base.shuffleddata)
            if storage.exists(posixpath.join(d, SUMMARY_NAME))]


def latest_dir(base: BaseDir) -> str | None:
    dirs = complete_dirs(base)
    return dirs[-1] if dirs else None


def read_summary(base: BaseDir, shuffle_dir: str) -> ShuffleSummary:
    path = posixpath.join(shuffle_dir, SUMMARY_NAME)
    try:
        data = base.storage.read_bytes(path)
    except (FileNotFoundError, OSError) as e:
        raise DataFileError(f"{path}: cannot read ({e})") from None
    return ShuffleSummary.from_json(data, path)


# --- in-use marks --------------------------------------------------------

def in_use_path(base: BaseDir, trainer: str) -> str:
    return posixpath.join(base.train(trainer), IN_USE_NAME)


def mark_in_use(base: BaseDir, trainer: str, shuffle_dir: str, now: float | None = None) -> None:
    """Record that trainer reads shuffle_dir (by its stamp name)."""
    mark = {"dir": posixpath.basename(shuffle_dir), "time": time.time() if now is None else now}
    base.storage.makedirs(base.train(trainer))
    base.storage.write_bytes(in_use_path(base, trainer), json.dumps(mark).encode())


def dirs_in_use(base: BaseDir, expiry_s: float, now: float | None = None) -> set[str]:
    """Stamp names of shuffle dirs some live trainer has marked as in use."""
    now = time.time() if now is None else now
    used = set()
    for trainer_dir in base.storage.list_subdirs(layout.train_root(base.root)):
        path = posixpath.join(trainer_dir, IN_USE_NAME)
        try:
            mark = json.loads(base.storage.read_bytes(path))
            if now - float(mark["time"]) <= expiry_s:
                used.add(str(mark["dir"]))
        except (FileNotFoundError, OSError, ValueError, KeyError, TypeError):
            continue
    return used
