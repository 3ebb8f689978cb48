"""BASEDIR: the directory every stage shares, and how files appear in it.

The paths of the layout are pure functions in ``zeroloop.layout``; this
module does the I/O. ``open_location`` is the one way to open a location,
a local path or a supported URL (``open_fs``), as a ``Storage`` and a path; ``BaseDir``
pairs a run's root with its Storage and names the layout's directories
(through ``layout``). ``Storage`` wraps an fsspec filesystem and gives the
one publishing rule every stage keeps: a file or directory appears under
its final name only when complete.

- On a local filesystem (the default; a ReadWriteMany volume on Kubernetes)
  a file is written as ``X.<random>.tmp``, fsynced and renamed; a directory
  is built as ``D.<random>.tmp/`` and renamed. Readers skip ``*.tmp``.
- ``memory://`` (tests, one process) cannot rename: a single file is
  written with one put, a directory is written in place and committed by a
  marker file (``_COMPLETE``) written last; readers skip directories
  without it.

Object stores (``s3://``, ``gs://``, ...) are refused (``open_fs``): they
rename by copying, so a claim or an accept/reject can happen twice; they
have no locks, so ``sweep_tmp`` cannot tell a dead writer's staging files
from a live one's; directories have no mtime, so the summaries of settled
directories (``datasummary``) and the model listings (``ModelListing``)
could not be checked against them; and the loop keeps its lock, logs and
report as local files. A BASEDIR is a directory on a local or network
filesystem (a ReadWriteMany volume: NFS, Filestore, EFS).

Writers never share a path: names come from ``unique_name()``, and each
staging name carries its own random part, so two writers racing for one
final name never touch each other's half-written files.

Leftovers of killed writers: a writer holds an advisory lock (``flock``) on
its staging file or directory until it is renamed, and the kernel drops
the lock when the process dies, however it dies. ``sweep_tmp`` removes the
staging entries whose lock is free, so a stage that restarts after SIGKILL
clears what it left without ever touching a live writer's file, even when
many processes share the directory. Where locks are unsupported (some
network filesystems refuse them on directories) an entry counts as
abandoned only after ``UNLOCKED_STALE_S``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import logging
import os
import posixpath
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec
from fsspec.implementations.local import LocalFileSystem

from zeroloop import layout

log = logging.getLogger(__name__)

TMP_SUFFIX = ".tmp"
COMPLETE_MARKER = "_COMPLETE"
# A staging entry whose lock is free is abandoned once this old (covers the
# instant between creating it and locking it).
STALE_GRACE_S = 2.0
# Without working locks, only age tells a dead writer's entry from a live one.
UNLOCKED_STALE_S = 6 * 3600.0


SUPPORTED_PROTOCOLS = ("file", "local", "memory")


def open_fs(url: str, what: str = "BASEDIR") -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and path of a local path, ``file://`` or ``memory://`` URL; UserError for others."""
    from zeroloop.errors import UserError

    protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
    if protocol not in SUPPORTED_PROTOCOLS:
        raise UserError(f"{what} {url}: {protocol}:// is not supported. Use a directory on a local or network "
                        f"filesystem (on Kubernetes a ReadWriteMany volume: NFS, Filestore, EFS); object stores "
                        f"cannot publish, claim or lock atomically (docs/scale.md)")
    fs, path = fsspec.core.url_to_fs(url)
    if isinstance(fs, LocalFileSystem):
        path = os.path.abspath(path)
    return fs, path.rstrip("/") or "/"


def unique_name() -> str:
    """A random 16-hex-digit name: writers on many machines never collide."""
    return secrets.token_hex(8)


def is_tmp(name: str) -> bool:
    """Whether a name is an incomplete entry that readers must ignore."""
    base = posixpath.basename(name.rstrip("/"))
    return base.endswith(TMP_SUFFIX) or ".tmp-" in base


def staging_name(final: str) -> str:
    """Where one writer builds ``final``: a name no other writer uses, ending in .tmp."""
    return f"{final.rstrip('/')}.{secrets.token_hex(4)}{TMP_SUFFIX}"


def _lock(fd: int) -> None:
    """Take the writer's lock on fd; unsupported locks are not an error."""
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def is_abandoned(path: str, min_age_s: float = STALE_GRACE_S, now: float | None = None) -> bool:
    """Whether the local staging entry path belongs to no live writer (its lock is free)."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if os.path.isdir(path) else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return False  # gone (renamed or removed) or not ours to judge
    try:
        opened = os.fstat(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            min_age = min_age_s
        except BlockingIOError:
            return False  # a live writer holds it
        except OSError:
            min_age = max(min_age_s, UNLOCKED_STALE_S)  # no locks here: go by age alone
        try:
            current = os.stat(path)
        except OSError:
            return False
        if (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino):
            return False  # the name now belongs to another entry
        now = time.time() if now is None else now
        return now - current.st_mtime >= min_age
    finally:
        os.close(fd)


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
            tmp = staging_name(path)
            f = os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb")  # (umask applies)
            try:
                _lock(f.fileno())
                yield f
                f.flush()
                os.fsync(f.fileno())
                os.replace(tmp, path)
            except OSError as e:
                with contextlib.suppress(OSError):
                    os.remove(tmp)
                if e.filename is None and e.errno is not None:  # a failed write names no file: name it
                    raise OSError(e.errno, e.strerror, path) from None
                raise
            except BaseException:
                with contextlib.suppress(OSError):
                    os.remove(tmp)
                raise
            finally:
                with contextlib.suppress(OSError):  # (closing releases the lock, after the rename)
                    f.close()
            _fsync_dir(posixpath.dirname(path))
        else:
            buf = io.BytesIO()
            yield buf
            self.fs.pipe_file(path, buf.getvalue())

    @contextlib.contextmanager
    def publishing_dir(self, final: str) -> Iterator[str]:
        """Build a directory that appears as ``final`` only if the block succeeds.

        Yields the path to write into. Raises FileExistsError if final exists
        (before the block, or when another writer published it first).
        """
        if not self.local:
            yield from self._publishing_dir_by_marker(final)
            return
        if self.exists(final):
            raise FileExistsError(f"{final} already exists")
        parent, base = posixpath.split(final.rstrip("/"))
        self.sweep_tmp(parent, prefix=base + ".")  # what killed writers of this name left
        staging = staging_name(final)
        os.makedirs(staging)
        fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
        try:
            _lock(fd)
            try:
                yield staging
                for folder, _, names in os.walk(staging):
                    for name in names:
                        _fsync_file(os.path.join(folder, name))
                try:
                    os.rename(staging, final)
                except OSError as e:
                    if e.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR):
                        raise FileExistsError(f"{final} already exists (published by another writer)") from None
                    raise
            except BaseException:
                with contextlib.suppress(Exception):
                    self.remove_tree(staging)
                raise
        finally:
            os.close(fd)
        _fsync_dir(parent)

    def _publishing_dir_by_marker(self, final: str) -> Iterator[str]:
        # Object stores: written in place, committed by the marker written last.
        if self.is_complete_dir(final):
            raise FileExistsError(f"{final} already exists")
        if self.exists(final):
            self.remove_tree(final)  # what a killed writer left behind
        self.fs.makedirs(final, exist_ok=True)
        try:
            yield final
        except BaseException:
            with contextlib.suppress(Exception):
                self.remove_tree(final)
            raise
        self.fs.pipe_file(posixpath.join(final, COMPLETE_MARKER), b"")

    def sweep_tmp(self, parent: str, prefix: str = "", min_age_s: float = STALE_GRACE_S) -> list[str]:
        """Remove staging files and dirs in parent (names starting with prefix) whose writer is gone.

        Returns what was removed. Only local filesystems leave staging entries.
        """
        if not self.local:
            return []
        scandir = getattr(self.fs, "scandir", os.scandir)  # (one listing, streamed: models/ may hold thousands)
        try:
            listing = scandir(parent)
        except (FileNotFoundError, NotADirectoryError):
            return []
        with listing:
            staged = [posixpath.join(parent, e.name) for e in listing if is_tmp(e.name) and e.name.startswith(prefix)]
        removed = []
        for path in staged:
            if not is_abandoned(path, min_age_s):
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                self.remove_tree(path)
            else:
                self.remove(path)
            log.info("removed %s, left by a writer that was stopped", path)
            removed.append(path)
        return removed

    @contextlib.contextmanager
    def holding_lock(self, path: str) -> Iterator[None]:
        """Hold the writer's lock on an existing local directory (scratch space) while in the block."""
        if not self.local:
            yield
            return
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            _lock(fd)
            yield
        finally:
            os.close(fd)

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

    def list_names(self, parent: str) -> list[str]:
        """Names of parent's entries that are not *.tmp staging entries, sorted, without a stat of each
        (one round trip on a network filesystem, however many entries)."""
        try:
            paths = self.fs.ls(parent, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        names = (posixpath.basename(p.rstrip("/")) for p in paths)
        return sorted(n for n in names if not is_tmp(n) and n != COMPLETE_MARKER)

    def scan_subdirs(self, parent: str) -> Iterator[tuple[str, float | None]]:
        """(path, mtime or None where the store has none) of parent's subdirectories, streamed: however
        many there are, memory holds one entry at a time (locally ``os.scandir``, one round trip on a
        network filesystem: READDIRPLUS brings each entry's attributes with the listing)."""
        if not self.local:
            try:
                entries = self.fs.ls(parent, detail=True)
            except (FileNotFoundError, NotADirectoryError):
                return
            for e in entries:
                if e.get("type") == "directory":
                    yield e["name"].rstrip("/"), float(e["mtime"]) if e.get("mtime") is not None else None
            return
        scandir = getattr(self.fs, "scandir", os.scandir)  # (a slow test filesystem delays it)
        try:
            listing = scandir(parent)
        except (FileNotFoundError, NotADirectoryError):
            return
        with listing:
            for entry in listing:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        yield posixpath.join(parent, entry.name), entry.stat(follow_symlinks=False).st_mtime
                except FileNotFoundError:  # removed while we looked
                    continue

    def list_files(self, parent: str, suffix: str = "") -> list[str]:
        """Complete files in parent ending with suffix (full paths), sorted."""
        return sorted(
            p
            for p in self._ls(parent, "file")
            if p.endswith(suffix) and not is_tmp(p) and posixpath.basename(p) != COMPLETE_MARKER
        )

    def mtime(self, path: str) -> float:
        """Modification time in seconds since the epoch."""
        info = self.fs.info(path)  # (locally an os.stat; through fs, so a slow filesystem's cost shows)
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


def open_location(location: str, what: str = "path") -> tuple[Storage, str]:
    """A Storage and the path within it for a local path or a ``file://``/``memory://`` URL (``open_fs``).

    Local paths are made absolute; the path never ends with a slash (the root is "/")."""
    fs, path = open_fs(location, what)
    return Storage(fs), path


@dataclass(frozen=True)
class BaseDir:
    """A run's BASEDIR: its root, its Storage, and its directories (named by ``zeroloop.layout``)."""

    storage: Storage
    root: str

    @classmethod
    def open(cls, url: str, create: bool = True) -> "BaseDir":
        """BASEDIR from a local path (or memory://, for tests); other URLs are refused (``open_fs``)."""
        storage, root = open_location(url, "BASEDIR")
        fs = storage.fs
        from zeroloop.errors import UserError

        if fs.exists(root) and not fs.isdir(root):
            raise UserError(f"BASEDIR {url} is a file, not a directory")
        if create:
            try:
                fs.makedirs(root, exist_ok=True)
            except OSError as e:
                raise UserError(f"BASEDIR {url}: cannot create it ({e.strerror or e})") from None
        if not fs.isdir(root):
            raise UserError(f"BASEDIR {url} does not exist or is not a directory")
        if isinstance(fs, LocalFileSystem) and not os.access(root, os.R_OK | os.W_OK | os.X_OK):
            raise UserError(f"BASEDIR {url}: permission denied (every stage needs to read, write and list it)")
        return cls(storage, root)

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    # self-play
    @property
    def selfplay(self) -> str:
        return layout.selfplay(self.root)

    def selfplay_model(self, model: str) -> str:
        return layout.model_selfplay(self.selfplay, model)

    def tdata(self, model: str) -> str:
        return layout.tdata(self.root, model)

    def sgfs(self, model: str) -> str:
        return layout.sgfs(self.root, model)

    def inprogress(self, model: str) -> str:
        return layout.inprogress(self.root, model)

    def precreate_selfplay(self, model: str) -> None:
        """Create selfplay/<model>/{tdata,sgfs} once, so writers never race."""
        precreate_selfplay(self.storage, self.selfplay, model)

    # shuffle and train
    @property
    def shuffleddata(self) -> str:
        return layout.shuffleddata(self.root)

    @property
    def shufflescratch(self) -> str:
        return layout.shufflescratch(self.root)

    def train(self, name: str) -> str:
        return layout.train(self.root, name)

    def train_stop(self, name: str) -> str:
        return layout.train_stop(self.root, name)

    def toexport(self, extra: bool = False) -> str:
        return layout.toexport(self.root, extra)

    # models
    @property
    def models(self) -> str:
        return layout.models(self.root)

    @property
    def models_extra(self) -> str:
        return layout.models_extra(self.root)

    @property
    def modelstobetested(self) -> str:
        return layout.modelstobetested(self.root)

    @property
    def rejectedmodels(self) -> str:
        return layout.rejectedmodels(self.root)

    @property
    def gatekeepersgf(self) -> str:
        return layout.gatekeepersgf(self.root)

    @property
    def logs(self) -> str:
        return layout.logs(self.root)


def precreate_selfplay(storage: Storage, selfplay_dir: str, model: str) -> None:
    """Create <selfplay_dir>/<model>/{tdata,sgfs} before any writer or mover needs them."""
    for d in (layout.model_tdata(selfplay_dir, model), layout.model_sgfs(selfplay_dir, model)):
        storage.makedirs(d)


def stamp(now: float | None = None) -> str:
    """A sortable UTC time stamp for directory names (YYYYmmdd-HHMMSS-ffffff)."""
    now = time.time() if now is None else now
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f"-{int(now % 1 * 1e6):06d}"
