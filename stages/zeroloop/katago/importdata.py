"""`zeroloop import-katago-data SRC BASEDIR`: KataGo self-play data as a run's training rows.

SRC is a KataGo ``.npz`` file or a directory searched for them (KataGo's
``selfplay/<model>/tdata/*.npz``; ``*.tmp`` files, still being written,
are left alone). Each file becomes one zeroloop tdata file
``BASEDIR/selfplay/<model>/tdata/<same name>.npz`` (``tdata.convert``),
where ``<model>`` is ``--model-name`` or ``katago-<KataGo's model dir>``, so
the shuffler takes the rows into its window like self-play's own and a run
can start or continue from them. ``--pos-len`` crops rows to a smaller
grid (a 9x9 run from KataGo's 19-wide data); rows of larger boards are
skipped, as are rows under rules zeroloop does not play (counted by reason).

Every file is checked against ``trainingwrite.cpp``'s layout before
anything of it is written, and written whole (count file, then the npz,
each atomically). A malformed file stops the import with an error naming
it: the files before it are imported whole, and running again skips them
(a target that exists is never rewritten).
"""

from __future__ import annotations

import argparse
import json
import logging
import posixpath
import re
from collections import Counter

from zeroloop import cliflags, layout, modelnames, rows
from zeroloop.errors import CorruptFileError, UserError
from zeroloop.katago import tdata
from zeroloop.nn import modelfile
from zeroloop.storage import BaseDir, open_location

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="SRC", help="a KataGo self-play .npz, or a directory holding them")
    parser.add_argument("basedir", metavar="BASEDIR", help="the run's shared directory (path or fsspec URL)")
    cliflags.flag(parser, "--model-name", help="model name the rows are filed under "
                  "(default: katago-<the KataGo model directory above tdata/>)")
    cliflags.flag(parser, "--pos-len", type=int, default=None,
                  help="data board length of the rows written (default: KataGo's dataBoardLen)")
    cliflags.flag(parser, "--json", action="store_true", help="print the summary as JSON")
    cliflags.add_common(parser)


def find_sources(storage, src: str) -> list[str]:
    if not storage.exists(src):
        raise UserError(f"SRC {src}: does not exist")
    if not storage.fs.isdir(src):
        return [src]
    found = [p for p in storage.fs.find(src) if p.endswith(".npz") and ".tmp" not in posixpath.basename(p)]
    if not found:
        raise UserError(f"SRC {src}: no .npz files in it")
    return sorted(found)


def default_model_name(path: str) -> str:
    parts = path.split("/")
    katago_model = parts[-3] if len(parts) >= 3 and parts[-2] == "tdata" else ""
    name = "katago-" + re.sub(r"[^A-Za-z0-9._+=-]", "_", katago_model) if katago_model else "katago"
    return name[: modelnames.MAX_NAME_LEN]


def import_file(base: BaseDir, path: str, model: str, pos_len: int | None) -> tuple[str, tdata.Converted | None]:
    """Convert and publish one file; (target, None) if the target exists already."""
    stem = posixpath.basename(path).removesuffix(layout.TDATA_SUFFIX)
    target = layout.tdata_file(base.selfplay, model, stem)
    if base.storage.exists(target):
        return target, None
    try:
        data = base.storage.read_bytes(path)
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e})") from None
    converted = tdata.convert(tdata.load_npz(data, path), model, pos_len)
    if len(converted.arrays["gameIdN"]):
        base.storage.makedirs(base.tdata(model))
        rows.write(base.storage, target, converted.arrays)
    return target, converted


def run(args: argparse.Namespace) -> int:
    if args.pos_len is not None and not 2 <= args.pos_len <= modelfile.MAX_POS_LEN:
        raise UserError(f"--pos-len {args.pos_len}: must be in 2..{modelfile.MAX_POS_LEN}")
    if args.model_name is not None:
        problem = modelnames.check_model_name(args.model_name)
        if problem:
            raise UserError(f"--model-name: {problem}")
    src_storage, src = open_location(args.src, "SRC")
    base = BaseDir.open(args.basedir)
    if type(src_storage.fs) is not type(base.storage.fs):
        raise UserError("SRC and BASEDIR must be on the same kind of filesystem")
    summary = {"files": 0, "files_already_imported": 0, "rows_in": 0, "rows_written": 0, "skipped": Counter()}
    for path in find_sources(base.storage, src):
        model = args.model_name or default_model_name(path)
        try:
            target, converted = import_file(base, path, model, args.pos_len)
        except CorruptFileError as e:
            raise UserError(f"{e}; nothing of it was written (files before it were imported whole, "
                            f"and a rerun skips them)") from None
        if converted is None:
            summary["files_already_imported"] += 1
            continue
        summary["files"] += 1
        summary["rows_in"] += converted.rows_in
        summary["rows_written"] += len(converted.arrays["gameIdN"])
        summary["skipped"].update(converted.skipped)
        log.info("%s -> %s: %d of %d rows%s", path, target, len(converted.arrays["gameIdN"]), converted.rows_in,
                 "".join(f", {n} skipped ({r})" for r, n in converted.skipped.items()))
    summary["skipped"] = dict(summary["skipped"])
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        skipped = ", ".join(f"{n} {r}" for r, n in summary["skipped"].items()) or "none"
        print(f"imported {summary['files']} files ({summary['files_already_imported']} already imported): "
              f"{summary['rows_written']} of {summary['rows_in']} rows written; skipped: {skipped}")
    return 0
