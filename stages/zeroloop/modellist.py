"""Which models a models directory holds, and which is the newest.

A model is a complete directory holding both files of ``zeroloop.layout``'s
model layout (``model.safetensors``, ``model.json``; what they hold is
``zeroloop.nn.modelfile``'s). ``find_latest_model`` picks the newest by the
weights' modification time, as KataGo's findLatestModel does, so self-play
and the gatekeeper agree on "newest"; a model dated in the future ranks
below the others (``list_models``). ``ModelListing`` answers the same for a
process that asks again and again, at the cost of one stat while nothing
changed. Imports without torch.
"""

from __future__ import annotations

import logging
import time

from zeroloop import layout
from zeroloop.storage import Storage, is_tmp

CLOCK_SKEW_TOLERANCE_S = 60.0
_warned_future: set[str] = set()
log = logging.getLogger(__name__)


def is_model_dir(storage: Storage, path: str) -> bool:
    """Whether path is a complete directory with both model files (contents unchecked)."""
    return storage.is_complete_dir(path) and all(
        storage.exists(f) for f in (layout.model_weights(path), layout.model_info(path)))


def list_models(storage: Storage, models_dir: str, now: float | None = None) -> list[tuple[float, str]]:
    """(mtime of the weights, path) of every complete model under models_dir, oldest first.

    A model dated in the future (beyond ``CLOCK_SKEW_TOLERANCE_S``: a writer
    whose clock runs ahead, or a copy that kept odd times) counts as older than
    every model dated in the past, with a warning naming it: otherwise it would
    stay "newest" and hide every model exported after it until the clock
    caught up with its date.
    """
    found = []
    for path in storage.list_dirs(models_dir):
        mtime = _model_mtime(storage, path)
        if mtime is not None:
            found.append((mtime, path))
    return ranked(found, now)


def _model_mtime(storage: Storage, path: str) -> float | None:
    """The weights' mtime of a complete model directory; None if path is not one (or vanished)."""
    if not is_model_dir(storage, path):
        return None
    try:
        return storage.mtime(layout.model_weights(path))
    except FileNotFoundError:  # removed while we looked
        return None


def rank_key(mtime: float, path: str, now: float) -> tuple[bool, float, str]:
    """A model's place in the order of ``ranked``: a larger key is newer (dated in the future: below the rest)."""
    return mtime <= now + CLOCK_SKEW_TOLERANCE_S, mtime, path


def ranked(found: list[tuple[float, str]], now: float | None = None) -> list[tuple[float, str]]:
    """(mtime, path) pairs oldest first, a model dated in the future below the rest (with a warning)."""
    now = time.time() if now is None else now
    for t, p in found:
        if t > now + CLOCK_SKEW_TOLERANCE_S and p not in _warned_future:
            _warned_future.add(p)
            log.warning("model %s is dated %.0f s in the future (clock skew?): ranking it below the models "
                        "dated in the past", p, t - now)
    return sorted(found, key=lambda tp: rank_key(tp[0], tp[1], now))


def find_latest_model(storage: Storage, models_dir: str) -> str | None:
    """The newest complete model directory in models_dir (by weights mtime, then name), or None."""
    models = list_models(storage, models_dir)
    return models[-1][1] if models else None


class ModelListing:
    """``list_models`` of one directory for a process that asks again and again (self-play, gatekeeper).

    Models are published by renaming a complete directory into models_dir and
    leave it by a rename too, and either changes models_dir's mtime. So a
    look costs one stat while nothing changed; after a change, one listing
    with each entry's inode and mtime, and a full check only of entries not
    seen before under that identity. A models_dir modified within the last
    ``FRESH_S`` seconds is listed again at every look (mtimes may be as
    coarse as a second, and a model published in the same tick as the last
    listing would hide). Only local filesystems have directory mtimes; on
    other stores every look is a full ``list_models``.
    """

    FRESH_S = 2.0

    def __init__(self, storage: Storage, models_dir: str):
        self.storage = storage
        self.models_dir = models_dir
        self._dir_mtime: float | None = None
        self._known: dict[str, tuple[tuple, float | None]] = {}  # path -> (identity, weights mtime or None)
        self._ranked: tuple[tuple[float, str], ...] = ()

    def models(self, now: float | None = None) -> tuple[tuple[float, str], ...]:
        """(mtime of the weights, path) of every complete model, oldest first (as ``list_models``).

        The same tuple while nothing changed: a look allocates nothing, however long the history."""
        if not self.storage.local:
            return tuple(list_models(self.storage, self.models_dir, now))
        try:
            dir_mtime = self.storage.mtime(self.models_dir)
        except (FileNotFoundError, NotADirectoryError):
            self._dir_mtime, self._known, self._ranked = None, {}, ()
            return ()
        if dir_mtime != self._dir_mtime or time.time() - dir_mtime < self.FRESH_S or now is not None:
            self._refresh()
            self._dir_mtime = dir_mtime
            self._ranked = tuple(ranked([(t, p) for p, (_, t) in self._known.items() if t is not None], now))
        return self._ranked  # (ranked once per change: a look costs no sort of the whole history)

    def latest(self) -> str | None:
        models = self.models()
        return models[-1][1] if models else None

    def _refresh(self) -> None:
        try:
            entries = self.storage.fs.ls(self.models_dir, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            self._known = {}
            return
        known = {}
        for e in entries:
            path = e["name"].rstrip("/")
            if e.get("type") != "directory" or is_tmp(path):  # (locally, a directory under its final name is complete)
                continue
            identity = (e.get("ino"), e.get("mtime"))
            before = self._known.get(path)
            if before is not None and before[0] == identity and before[1] is not None:
                known[path] = before
            else:
                known[path] = (identity, _model_mtime(self.storage, path))
        self._known = known
