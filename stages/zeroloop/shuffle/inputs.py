"""Finding the self-play rows a shuffle may use: every selfplay/*/tdata/*.npz.

Each file's row count and data board length (pos_len) come from its count
file (``rows.file_info``), read in parallel threads; a file whose count
cannot be read is skipped with a warning naming it (and reported as
corrupt when its content is malformed, for quarantine). Files dated in the
future (clock skew) are used, as the newest, with a warning naming them:
their rows still count toward the data total, and no row is lost. Rows of different
pos_len cannot share a training batch, so they are never mixed silently:
either ``pos_len`` selects one and the others are left out (logged), or
finding several is an error that lists them.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from zeroloop import layout, rows
from zeroloop.errors import CorruptFileError, DataFileError, UserError
from zeroloop.shuffle.window import TdataFile
from zeroloop.storage import BaseDir

log = logging.getLogger(__name__)

# mtimes this far ahead of the shuffler's clock are reported as clock skew
CLOCK_SKEW_TOLERANCE_S = 60.0
# Self-play without a model writes under this name (DESIGN: the "random" net).
RANDOM_MODEL_DIR = "random"


@dataclass(frozen=True)
class Scan:
    files: list[TdataFile]
    pos_len: int | None
    skipped: list[tuple[str, str]]  # (path, why)
    corrupt: list[tuple[str, str]]  # the skipped ones whose content is malformed (to quarantine)


def tdata_paths(base: BaseDir) -> list[tuple[str, bool]]:
    """(path, from the random bootstrap) of every complete tdata file."""
    out = []
    for model_dir in base.storage.list_subdirs(base.selfplay):
        model = posixpath.basename(model_dir)
        tdata = layout.model_tdata(base.selfplay, model)
        is_random = model == RANDOM_MODEL_DIR
        out.extend((p, is_random) for p in base.storage.list_files(tdata, ".npz") if rows.is_tdata_name(p))
    return out


def _probe(base: BaseDir, path: str) -> tuple[int, int, float]:
    n, pos_len = rows.file_info(base.storage, path)
    return n, pos_len, base.storage.mtime(path)


def scan(base: BaseDir, pos_len: int | None = None, threads: int = 16) -> Scan:
    """Every usable tdata file with its rows, mtime and pos_len."""
    paths = tdata_paths(base)
    skipped: list[tuple[str, str]] = []
    found: list[tuple[TdataFile, int]] = []

    corrupt: list[tuple[str, str]] = []

    def probe(item):
        path, is_random = item
        try:
            n, p, mtime = _probe(base, path)
        except CorruptFileError as e:
            return path, (str(e), True)
        except (DataFileError, OSError) as e:
            return path, (str(e), False)
        return TdataFile(path, mtime, n, is_random), p

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for path_or_file, info in pool.map(probe, paths):
            if isinstance(info, tuple):
                why, is_corrupt = info
                skipped.append((path_or_file, why))
                if is_corrupt:
                    corrupt.append((path_or_file, why))
                log.warning("skipping unreadable tdata file: %s", why)
            else:
                found.append((path_or_file, info))
    now = time.time()
    future = sorted(f.path for f, _ in found if f.mtime > now + CLOCK_SKEW_TOLERANCE_S)
    if future:
        log.warning("%d tdata files are dated in the future (clock skew?), so they count as the newest: %s%s",
                    len(future), ", ".join(future[:3]), " ..." if len(future) > 3 else "")
    by_len = Counter()
    for f, p in found:
        by_len[p] += f.rows
    if pos_len is None:
        if len(by_len) > 1:
            listing = ", ".join(f"{n} rows at pos_len {p}" for p, n in sorted(by_len.items()))
            raise UserError(f"self-play data of several board lengths found ({listing}); "
                            f"pass --pos-len to shuffle one of them")
        chosen = next(iter(by_len), None)
    else:
        chosen = pos_len
        others = {p: n for p, n in by_len.items() if p != pos_len}
        if others:
            log.info("leaving out rows of other board lengths: %s",
                     ", ".join(f"{n} rows at pos_len {p}" for p, n in sorted(others.items())))
    files = [f for f, p in found if p == chosen]
    return Scan(files, chosen, skipped, corrupt)
