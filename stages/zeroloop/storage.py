"""BASEDIR: the directory every stage shares, and how files appear in it.

All paths of the layout are built here (``BaseDir``); no stage joins path
strings by hand. ``Storage`` wraps an fsspec filesystem and gives the one
publishing rule every stage keeps: a file or directory appears under its
final name only when complete.

- On a local filesystem (the default; a ReadWriteMany volume on Kubernetes)
  a file is written as ``X.tmp``, fsynced and renamed; a directory is built
  as ``D.tmp/`` and renamed. Readers skip ``*.tmp``.
- Other fsspec filesystems (object stores, ``memory://``) cannot rename
  atomically. A single file is written with one put, which those stores make
  atomic; a directory is written in place and committed by a marker file
  (``_COMPLETE``) written last. Readers skip directories without it.

Writers never share a path: names come from ``unique_name()``.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec
from fsspec.implementations.local import LocalFileSystem

TMP_SUFFIX = ".tmp"
COMPLETE_MARKER = "_COMPLETE"


def unique_name() -> str:
    """A random 16-hex-digit name: writers on many machines never collide."""
    return secrets.token_hex(8)


def is_tmp(name: str) -> bool:
    """Whether a name is an incomplete entry that readers must ignore."""
    base = posixpath.basename(name.rstrip("/"))
    return base.endswith(TMP_SUFFIX) or ".tmp-" in base


class Storage:
    """An fsspec filesystem with atomic publishing of files and directories."""

    def __init__(self, fs: fsspec.AbstractFileSystem):
        self.fs = fs
        self.local = isinstance(fs, LocalFileSystem)

    # --- writing ----------------------------------------------------------

    def write_bytes(self, path: str, data: bytes) -> None:
        """Publish a whole file atomically."""
        with self.open_write(path) as f:
            f.write(data)

    @contextlib.contextmanager
    def open_write(self, path: str) -> Iterator[io.BufferedIOBase]:
        """A binary file object whose content appears at path only on success."""
        if self.local:
            tmp = path + TMP_SUFFIX
            try:
                with open(tmp, "wb") as f:
                    yield f
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.remove(tmp)
                raise
            _fsync_dir(posixpath.dirname(path))
        else:
            buf = io.BytesIO()
            yield buf
            self.fs.pipe_file(path, buf.getvalue())

    @contextlib.contextmanager
    def publishing_dir(self, final: str) -> Iterator[str]:
        """Build a directory that appears as ``final`` only if the block succeeds.

        Yields the path to write into. Raises FileExistsError if final exists.
        """
        if self.local:
            if self.exists(final):
                raise FileExistsError(f"{final} already exists")
            staging = final + TMP_SUFFIX
        else:
            if self.is_complete_dir(final):
                raise FileExistsError(f"{final} already exists")
            staging = final  # committed by the marker, written last
        if self.exists(staging):
            self.remove_tree(staging)  # what a killed writer left behind
        self.fs.makedirs(staging, exist_ok=True)
        try:
            yield staging
        except BaseException:
            with contextlib.suppress(Exception):
                self.remove_tree(staging)
            raise
        if self.local:
            for parent, _, names in os.walk(staging):
                for name in names:
                    _fsync_file(os.path.join(parent, name))
            os.rename(staging, final)
            _fsync_dir(posixpath.dirname(final))
        else:
            self.fs.pipe_file(posixpath.join(final, COMPLETE_MARKER), b"")

    def move_dir(self, src: str, dst: str) -> None:
        """Move a complete directory to a new complete name (accept/reject).

        On stores without rename the copy is committed before the source is
        removed, so a crash in between leaves both (never neither).
        """
        if not self.is_complete_dir(src):
            raise FileNotFoundError(f"{src} is not a complete directory")
        taken = self.exists(dst) if self.local else self.is_complete_dir(dst)
        if taken:
            raise FileExistsError(f"{dst} already exists")
        if self.local:
            os.rename(src, dst)
            _fsync_dir(posixpath.dirname(dst))
            return
        with self.publishing_dir(dst) as staging:
            for path in self.fs.find(src):
                if posixpath.basename(path) == COMPLETE_MARKER:
                    continue
                rel = posixpath.relpath(path, src)
                self.fs.pipe_file(posixpath.join(staging, rel), self.fs.cat_file(path))
        self.remove_tree(src)

    def claim(self, src: str, dst: str) -> bool:
        """Rename file src to dst (a name no other process uses); False if src is gone.

        On a local or network POSIX filesystem the rename is atomic, so of
        many processes claiming the same src exactly one succeeds. Object
        stores have no atomic rename: there this is a copy and a delete, and
        two claimants racing for one file may both succeed.
        """
        if self.local:
            try:
                os.rename(src, dst)
            except FileNotFoundError:
                return False
            _fsync_dir(posixpath.dirname(dst))
            return True
        try:
            self.fs.mv(src, dst)
        except FileNotFoundError:
            return False
        return True

    def touch(self, path: str) -> None:
        """Set a file's modification time to now (a heartbeat); FileNotFoundError if it is gone."""
        if self.local:
            os.utime(path)
        else:
            self.fs.pipe_file(path, self.fs.cat_file(path))

    def makedirs(self, path: str) -> None:
        self.fs.makedirs(path, exist_ok=True)

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)

    def remove_tree(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(path, recursive=True)

    # --- reading ----------------------------------------------------------

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def read_bytes(self, path: str) -> bytes:
        return self.fs.cat_file(path)

    def is_complete_dir(self, path: str) -> bool:
        if is_tmp(path) or not self.fs.isdir(path):
            return False
        return self.local or self.fs.exists(posixpath.join(path, COMPLETE_MARKER))

    def list_dirs(self, parent: str) -> list[str]:
        """Complete subdirectories of parent (full paths), sorted by name."""
        return sorted(
            p for p in self._ls(parent, "directory") if self.is_complete_dir(p)
        )

    def list_subdirs(self, parent: str) -> list[str]:
        """Every subdirectory of parent that is not a *.tmp staging dir, published or not
        (plain containers such as selfplay/<model>/ carry no commit marker on object stores)."""
        return sorted(p for p in self._ls(parent, "directory") if not is_tmp(p))

    def list_files(self, parent: str, suffix: str = "") -> list[str]:
        """Complete files in parent ending with suffix (full paths), sorted."""
        return sorted(
            p
            for p in self._ls(parent, "file")
            if p.endswith(suffix) and not is_tmp(p) and posixpath.basename(p) != COMPLETE_MARKER
        )

    def mtime(self, path: str) -> float:
        """Modification time in seconds since the epoch."""
        if self.local:
            return os.stat(path).st_mtime
        info = self.fs.info(path)
        for key in ("mtime", "LastModified", "updated", "modified", "created"):
            value = info.get(key)
            if value is None:
                continue
            if hasattr(value, "timestamp"):
                return value.timestamp()
            return float(value)
        if info.get("type") == "directory":
            return max((self.mtime(p) for p in self.fs.find(path)), default=0.0)
        return 0.0

    def _ls(self, parent: str, kind: str) -> list[str]:
        try:
            entries = self.fs.ls(parent, detail=True)
        except FileNotFoundError:
            return []
        return [e["name"].rstrip("/") for e in entries if e.get("type") == kind]


def _fsync_dir(path: str) -> None:
    # Makes a rename durable; some filesystems refuse, which is harmless.
    with contextlib.suppress(OSError):
        fd = os.open(path or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: str) -> None:
    if os.path.isfile(path):
        with open(path, "rb") as f:
            os.fsync(f.fileno())


@dataclass(frozen=True)
class BaseDir:
    """The shared BASEDIR layout of docs/DESIGN (paths, not I/O)."""

    storage: Storage
    root: str

    @classmethod
    def open(cls, url: str, create: bool = True) -> "BaseDir":
        """BASEDIR from a local path or fsspec URL (memory://, s3://, ...)."""
        fs, root = fsspec.core.url_to_fs(url)
        if isinstance(fs, LocalFileSystem):
            root = os.path.abspath(root)
        root = root.rstrip("/") or "/"
        if create:
            fs.makedirs(root, exist_ok=True)
        elif not fs.isdir(root):
            from zeroloop.errors import UserError

            raise UserError(f"BASEDIR {url} does not exist or is not a directory")
        return cls(Storage(fs), root)

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    # self-play
    @property
    def selfplay(self) -> str:
        return self.path("selfplay")

    def selfplay_model(self, model: str) -> str:
        return self.path("selfplay", model)

    def tdata(self, model: str) -> str:
        return self.path("selfplay", model, "tdata")

    def sgfs(self, model: str) -> str:
        return self.path("selfplay", model, "sgfs")

    def inprogress(self, model: str) -> str:
        return self.path("selfplay", model, "inprogress")

    def precreate_selfplay(self, model: str) -> None:
        """Create selfplay/<model>/{tdata,sgfs} once, so writers never race."""
        for d in (self.tdata(model), self.sgfs(model)):
            self.storage.makedirs(d)

    # shuffle and train
    @property
    def shuffleddata(self) -> str:
        return self.path("shuffleddata")

    @property
    def shufflescratch(self) -> str:
        return self.path("shufflescratch")

    def train(self, name: str) -> str:
        return self.path("train", name)

    def toexport(self, extra: bool = False) -> str:
        return self.path("torchmodels_toexport_extra" if extra else "torchmodels_toexport")

    # models
    @property
    def models(self) -> str:
        return self.path("models")

    @property
    def models_extra(self) -> str:
        return self.path("models_extra")

    @property
    def modelstobetested(self) -> str:
        return self.path("modelstobetested")

    @property
    def rejectedmodels(self) -> str:
        return self.path("rejectedmodels")

    @property
    def gatekeepersgf(self) -> str:
        return self.path("gatekeepersgf")

    @property
    def logs(self) -> str:
        return self.path("logs")


def stamp(now: float | None = None) -> str:
    """A sortable UTC time stamp for directory names (YYYYmmdd-HHMMSS-ffffff)."""
    now = time.time() if now is None else now
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f"-{int(now % 1 * 1e6):06d}"
