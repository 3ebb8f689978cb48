"""A local filesystem whose metadata calls each cost a network round trip.

``LatencyFileSystem`` is fsspec's ``LocalFileSystem`` with a sleep of
``latency_s`` before every call that asks the server something: listing a
directory, a stat, an existence test, opening a file (a small read is one
open), creating, renaming or removing an entry. On NFS (Filestore, EFS)
each of those is a round trip of a millisecond or more; a local disk
answers in microseconds, so a cost that grows with the number of calls
hides there and shows here. A listing counts as one call whatever its
length (READDIRPLUS returns many entries with their attributes at once).

It stays a ``LocalFileSystem``, so ``Storage`` keeps the local publishing
rules (rename, locks) and only the speed of the answers changes. ``calls``
counts the delayed calls (a benchmark reports them); ``serial_calls`` those
of them made by the thread that made this object, which wait one after
another, while calls in worker threads wait side by side: with latency L a
caller waits at least ``serial_calls`` x L, whatever its threads do.
"""

from __future__ import annotations

import os
import threading
import time

from fsspec.implementations.local import LocalFileSystem

# Methods that are one round trip each (AbstractFileSystem's exists and cat_file go through info and _open).
DELAYED = ("ls", "info", "lexists", "isfile", "isdir", "_open", "mv", "rm_file", "rm", "mkdir", "makedirs",
           "touch", "modified", "created", "cp_file", "rmdir", "link")


class LatencyFileSystem(LocalFileSystem):
    """LocalFileSystem plus ``latency_s`` per metadata call."""

    cachable = False  # fsspec would otherwise hand back one instance for every latency

    def __init__(self, latency_s: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.latency_s = float(latency_s)
        self.calls = 0
        self.serial_calls = 0
        self._owner = threading.get_ident()
        self._count_lock = threading.Lock()
        self._inside = threading.local()  # a call made by another delayed call is part of its round trip

    def scandir(self, path: str):
        """``os.scandir`` of path: one round trip, as a listing (``Storage.scan_subdirs`` streams it)."""
        self.delay()
        return os.scandir(self._strip_protocol(path))

    def delay(self) -> None:
        with self._count_lock:
            self.calls += 1
            if threading.get_ident() == self._owner:
                self.serial_calls += 1
        if self.latency_s > 0:
            time.sleep(self.latency_s)


def _delayed(name: str):
    inner = getattr(LocalFileSystem, name)

    def method(self, *args, **kwargs):
        if getattr(self._inside, "active", False):
            return inner(self, *args, **kwargs)
        self.delay()
        self._inside.active = True
        try:
            return inner(self, *args, **kwargs)
        finally:
            self._inside.active = False

    method.__name__ = name
    method.__doc__ = inner.__doc__
    return method


for _name in DELAYED:
    setattr(LatencyFileSystem, _name, _delayed(_name))
