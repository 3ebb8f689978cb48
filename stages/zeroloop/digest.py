"""A bounded digest of a directory's settled entries, checked against the directory at every use.

The report wants, of every gating record and every accepted model, a count,
the last few and a plot: a few hundred points. Reading every entry for that
costs a read per entry in every fresh process (the report is one, after
every cycle). A ``Digest`` folds each *settled* entry (a subdirectory whose
mtime is ``SETTLE_S`` old: its writer moved on long ago) into a small state
the caller defines (counts, the last few, a ``Decimated`` series) once, and
keeps it, sealed (``zeroloop.sealed``), in one file. A use costs one
streamed listing of the directory (one call on a network filesystem,
memory for one entry at a time), the read of the digest, and a read of
each entry that settled since or is still recent.

Never trusted blindly: the digest records the *watermark* (every entry it
folded had an older mtime, every entry it did not has a newer one), how
many entries it folded, and an order-free checksum of their names and
mtimes (the sum of their SHA-256s, modulo 2**64). Each use compares the
listing's entries older than the watermark with both: an entry removed,
added with an old mtime (moved in), renamed, or changed since (its mtime
moves past the watermark) makes them differ, and the digest is folded
again from every entry. A digest that is unreadable, cut short, fails its
seal or describes another directory or fold is ignored with a warning and
folded again. Deleting it loses nothing. An entry's content is taken to
change only with its directory's mtime: every stage writes by renaming a
file into the directory. Where a store has no directory mtimes (object
storage), nothing settles and every entry is read at every use.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass

from zeroloop import sealed
from zeroloop.storage import Storage, is_tmp

log = logging.getLogger(__name__)

VERSION = 1
SETTLE_S = 3600.0  # an entry unchanged this long is settled (as zeroloop.datasummary's directories)
_MOD = 1 << 64

Entry = tuple[float, str]  # (mtime, path)
Fold = Callable[[dict, list[Entry]], None]  # folds settled entries, oldest first, into a state


def entry_hash(name: str, mtime: float) -> int:
    return int.from_bytes(hashlib.sha256(f"{name}\0{mtime!r}".encode()).digest()[:8], "big")


@dataclass
class View:
    """What a use of a digest gives: the fold of the settled entries, and the others to read now."""

    state: dict
    recent: list[Entry]  # oldest first
    folded: int  # settled entries in state
    rebuilt: bool  # the digest was folded again from every entry (tests, logs)


class Digest:
    """The digest of one directory's subdirectories (staging ``*.tmp`` entries left out)."""

    def __init__(self, storage: Storage, directory: str, path: str, describes: str, empty: Callable[[], dict],
                 fold: Fold, check: Callable[[dict], None], settle_s: float = SETTLE_S):
        """describes names the fold and its version (a digest of another is not used); empty gives the
        state of no entries; check raises ValueError (or KeyError, TypeError) for a state that is not one."""
        self.storage, self.directory, self.path = storage, directory, path
        self.describes, self.empty, self.fold, self.check, self.settle_s = describes, empty, fold, check, settle_s

    def view(self, now: float | None = None) -> View:
        now = time.time() if now is None else now
        cutoff = now - self.settle_s
        body = self._load()
        watermark, count, checksum = body["watermark"], body["count"], body["checksum"]
        seen, seen_sum, settling, recent = 0, 0, [], []
        for mtime, path in self._entries():
            if mtime is not None and mtime < watermark:
                seen += 1
                seen_sum = (seen_sum + entry_hash(posixpath.basename(path), mtime)) % _MOD
            elif mtime is not None and mtime < cutoff:
                settling.append((mtime, path))
            else:
                recent.append((-1.0 if mtime is None else mtime, path))
        rebuilt = (seen, seen_sum) != (count, checksum)
        if rebuilt:
            if count:
                log.info("digest %s no longer describes %s (%d entries folded, %d found): folding every entry "
                         "again", self.path, self.directory, count, seen)
            body = self._blank()
            settling = [(m, p) for m, p in self._entries() if m is not None and m < cutoff]
        if settling:
            settling.sort()
            state = copy.deepcopy(body["state"])
            try:
                self.fold(state, settling)
            except OSError as e:  # (an entry unreadable for now: tried again at the next use)
                log.warning("cannot fold %s into %s now: %s", self.directory, self.path, e)
                return View(body["state"], sorted(settling + recent), body["count"], rebuilt)
            body = {**body, "state": state, "watermark": cutoff, "count": body["count"] + len(settling),
                    "checksum": (body["checksum"] + sum(entry_hash(posixpath.basename(p), m)
                                                        for m, p in settling)) % _MOD}
        if settling or rebuilt:
            self._save(body)
        return View(body["state"], sorted(recent), body["count"], rebuilt)

    # --- the file ---------------------------------------------------------------------------------

    def _entries(self):
        for path, mtime in self.storage.scan_subdirs(self.directory):  # (streamed)
            if not is_tmp(path):
                yield mtime, path

    def _blank(self) -> dict:
        return {"version": VERSION, "describes": self.describes, "directory": posixpath.basename(self.directory),
                "watermark": float("-inf"), "count": 0, "checksum": 0, "state": self.empty()}

    def _load(self) -> dict:
        try:
            data = self.storage.read_bytes(self.path)
        except FileNotFoundError:
            return self._blank()
        except OSError as e:
            log.warning("cannot read digest %s (folding every entry again): %s", self.path, e)
            return self._blank()
        try:
            body = sealed.unseal(data, self.path)
            if not isinstance(body, dict) or (body.get("version"), body.get("describes"), body.get("directory")) \
                    != (VERSION, self.describes, posixpath.basename(self.directory)):
                raise ValueError("describes another directory or fold")
            body["watermark"], body["count"] = float(body["watermark"]), int(body["count"])
            body["checksum"] = int(body["checksum"])
            if not isinstance(body.get("state"), dict) or body["count"] < 0:
                raise ValueError("bad fields")
            self.check(body["state"])
        except (ValueError, KeyError, TypeError) as e:
            log.warning("ignoring corrupt digest %s (folding every entry again): %s", self.path, e)
            return self._blank()
        return body

    def _save(self, body: dict) -> None:
        try:
            self.storage.makedirs(posixpath.dirname(self.path))
            self.storage.write_bytes(self.path, sealed.seal(body))
        except OSError as e:
            log.warning("cannot write %s: %s", self.path, e)


class Decimated:
    """Every stride-th of a sequence, at most max_points of them: when full, every other point is dropped
    and the stride doubles, so the points kept depend only on the sequence (a plot's shape, bounded).
    Works on a JSON-able dict in place: {"stride", "seen", "points"}."""

    @staticmethod
    def empty() -> dict:
        return {"stride": 1, "seen": 0, "points": []}

    @staticmethod
    def check(d: dict, width: int) -> None:
        """ValueError unless d is one, its points lists of width items."""
        if not (isinstance(d, dict) and isinstance(d.get("stride"), int) and d["stride"] >= 1
                and isinstance(d.get("seen"), int) and isinstance(d.get("points"), list)
                and all(isinstance(p, list) and len(p) == width for p in d["points"])):
            raise ValueError("not a decimated series")

    @staticmethod
    def add(d: dict, point: list, max_points: int) -> None:
        if d["seen"] % d["stride"] == 0:
            d["points"].append(point)
        d["seen"] += 1
        if len(d["points"]) > max_points:
            d["points"] = d["points"][::2]
            d["stride"] *= 2
