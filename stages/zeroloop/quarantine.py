"""Quarantine: corrupt files moved out of the run's way, kept for a person to look at.

A file under its final name is complete by construction (``storage``), so one
whose content is malformed (``errors.CorruptFileError``: bit rot, a copy gone
wrong, something dropped in by hand) will never become readable. Skipping it
on every pass would log the same warning forever and count its rows in
nothing; deleting it would destroy the evidence. Instead its reader moves it
to ``BASEDIR/quarantine/<its path relative to BASEDIR>``, with its sidecar
files (``<name>.json`` row counts), and writes ``<name>.why`` beside it
saying what was wrong and who found it. Files that merely failed to read
(an I/O error, a vanished file) are never quarantined: the next pass
retries them.
"""

from __future__ import annotations

import logging
import posixpath
import time

from zeroloop import layout
from zeroloop.storage import BaseDir, unique_name

log = logging.getLogger(__name__)

REASON_SUFFIX = ".why"


def quarantine_path(base: BaseDir, path: str) -> str:
    """Where path goes in quarantine (its place relative to BASEDIR, under quarantine/)."""
    rel = posixpath.relpath(path, base.root)
    if rel.startswith(".."):
        rel = posixpath.basename(path)  # not inside BASEDIR: keep the name only
    return posixpath.join(layout.quarantine(base.root), rel)


def quarantine_file(base: BaseDir, path: str, why: str, found_by: str, sidecars: tuple[str, ...] = ()) -> str | None:
    """Move path (and its sidecars) into quarantine with a reason; return the new path, or None if it vanished."""
    storage = base.storage
    dest = quarantine_path(base, path)
    suffix = f".{unique_name()}" if storage.exists(dest) else ""  # one quarantined before under this name
    dest += suffix
    storage.makedirs(posixpath.dirname(dest))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    storage.write_bytes(dest + REASON_SUFFIX, f"{stamp} {found_by}: {why}\n".encode())
    try:
        storage.fs.mv(path, dest)
    except FileNotFoundError:
        storage.remove(dest + REASON_SUFFIX)  # another reader moved it first
        return None
    for side in sidecars:
        try:
            storage.fs.mv(side, quarantine_path(base, side) + suffix)
        except FileNotFoundError:
            pass
    log.warning("quarantined %s as %s: %s", path, dest, why)
    return dest


def list_quarantined(base: BaseDir) -> list[str]:
    """Every quarantined file (the ones with a .why note; sidecars not counted), sorted."""
    root = layout.quarantine(base.root)
    if not base.storage.exists(root):
        return []
    notes = [p for p in base.storage.fs.find(root) if p.endswith(REASON_SUFFIX)]
    return sorted(p[: -len(REASON_SUFFIX)] for p in notes)
