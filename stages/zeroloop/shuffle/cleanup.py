"""Removing old shuffles without pulling data from under a trainer.

A shuffle dir is deleted only when all of these hold:
- it is not among the ``keep_newest`` newest complete shuffles;
- it is older than ``grace_s`` (a trainer that just listed it has time to
  open its files and mark it);
- no trainer's in-use mark (``zeroloop.shuffled``) younger than
  ``in_use_expiry_s`` names it.

Staging dirs (``*.tmp``, or without a commit marker on object stores) and
scratch dirs belong to interrupted shuffles and are removed too: on a
local filesystem as soon as no live shuffle holds their lock
(``storage.is_abandoned``), elsewhere once older than ``grace_s``. The choice is a pure function (``to_delete``) over names and
ages; ``clean`` does the I/O.
"""

from __future__ import annotations

import logging
import posixpath
import time

from zeroloop import shuffled
from zeroloop.storage import BaseDir, Storage, is_abandoned, is_tmp

log = logging.getLogger(__name__)


def to_delete(dirs: list[tuple[str, float]], keep_newest: int, grace_s: float,
              in_use: set[str], now: float) -> list[str]:
    """Names of complete shuffle dirs to remove; dirs are (name, mtime)."""
    newest_first = sorted(dirs, key=lambda d: (d[0], d[1]), reverse=True)
    out = []
    for i, (name, mtime) in enumerate(newest_first):
        if i < keep_newest or now - mtime < grace_s or name in in_use:
            continue
        out.append(name)
    return out


def _subdirs(storage: Storage, parent: str) -> list[str]:
    try:
        entries = storage.fs.ls(parent, detail=True)
    except FileNotFoundError:
        return []
    return [e["name"].rstrip("/") for e in entries if e.get("type") == "directory"]


def _age(storage: Storage, path: str, now: float) -> float:
    try:
        return now - storage.mtime(path)
    except (FileNotFoundError, OSError):
        return 0.0


def clean_shuffles(base: BaseDir, keep_newest: int, grace_s: float, in_use_expiry_s: float,
                   now: float | None = None) -> list[str]:
    """Remove old complete shuffles and stale staging dirs; return what was removed."""
    now = time.time() if now is None else now
    storage = base.storage
    complete = shuffled.complete_dirs(base)
    in_use = shuffled.dirs_in_use(base, in_use_expiry_s, now)
    names = to_delete([(posixpath.basename(d), storage.mtime(d)) for d in complete],
                      keep_newest, grace_s, in_use, now)
    removed = [posixpath.join(base.shuffleddata, n) for n in names]
    complete_set = set(complete)
    for d in _subdirs(storage, base.shuffleddata):
        if d in complete_set:
            continue
        if (is_tmp(d) or not storage.is_complete_dir(d)) and _age(storage, d, now) >= grace_s:
            removed.append(d)
    for d in removed:
        log.info("removing old shuffle %s", d)
        storage.remove_tree(d)
    return removed


def clean_scratch(storage: Storage, scratch_root: str, grace_s: float, now: float | None = None) -> None:
    """Remove scratch dirs of interrupted shuffles: unlocked ones (local), else older than grace_s."""
    now = time.time() if now is None else now
    for d in _subdirs(storage, scratch_root):
        if (storage.local and is_abandoned(d, now=now)) or _age(storage, d, now) >= grace_s:
            log.info("removing stale shuffle scratch %s", d)
            storage.remove_tree(d)
