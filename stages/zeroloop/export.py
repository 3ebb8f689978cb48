"""`zeroloop export BASEDIR --name-prefix RUN [--gating] [--loop]`.

Turns each finished training export (``torchmodels_toexport/<name>/``,
oldest first) into a model named ``<RUN>-<name>``: into
``modelstobetested/`` with ``--gating`` (the gatekeeper's queue) or
``models/`` without (self-play uses it at once); exports of ``extra``
training go to ``models_extra/``. Each export is loaded and checked
(``nn.modelfile``) before it is published under its new name, so a broken
export never reaches self-play; it is skipped with a warning and left in
place. A name already in ``models/``, ``modelstobetested/``,
``rejectedmodels/`` or ``models_extra/`` is not exported again. Before a
model is published its ``selfplay/<name>/`` directories are created, so
self-play machines never race to create them. The source is removed once
its model is published (KataGo's export script does the same).

With ``--katago`` each published model also holds ``model.bin.gz``, the
same net in KataGo's model format (``zeroloop.katago.netexport``), written
inside the same atomic publish, so it travels with its model through gating
into ``models/``; KataGo, KaTrain or Lizzie can load it (docs/katago.md).

One pass by default; ``--loop`` polls until SIGTERM/SIGINT, which end the
wait at once and never interrupt a publish halfway (publishing is atomic).
"""

from __future__ import annotations

import argparse
import logging
import posixpath
import signal
import threading

from zeroloop import cliflags, metrics, modelnames
from zeroloop.errors import ModelFileError, UserError
from zeroloop.nn import modelfile
from zeroloop.storage import BaseDir

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("basedir", metavar="BASEDIR", help="the run's shared directory (path or fsspec URL)")
    cliflags.flag(parser, "--name-prefix", required=True, help="the run's name, prefixed to every model name")
    cliflags.flag(parser, "--gating", action="store_true",
                  help="export to modelstobetested/ for the gatekeeper (default: straight to models/)")
    cliflags.flag(parser, "--katago", action="store_true",
                  help="also write each model in KataGo's format (model.bin.gz in the model directory)")
    cliflags.flag(parser, "--loop", action="store_true", help="keep polling for new exports until SIGTERM")
    cliflags.flag(parser, "--poll-seconds", type=float, default=30.0, help="time between polls with --loop")
    cliflags.add_common(parser, metrics=True)


def existing_model_dirs(base: BaseDir) -> tuple[str, ...]:
    return (base.models, base.modelstobetested, base.rejectedmodels, base.models_extra)


def export_pending(base: BaseDir, prefix: str, gating: bool, warned: set[str] | None = None,
                   katago: bool = False) -> list[str]:
    """Export every finished training export once; return the model dirs written."""
    warned = set() if warned is None else warned
    storage = base.storage
    for d in (base.toexport(False), base.toexport(True), *existing_model_dirs(base)):
        storage.sweep_tmp(d)  # half-published dirs of killed trainers and exporters
    written = []
    for extra in (False, True):
        sources = storage.list_dirs(base.toexport(extra))
        sources.sort(key=lambda p: (storage.mtime(p), p))
        for src in sources:
            name = f"{prefix}-{posixpath.basename(src)}"
            problem = modelnames.check_model_name(name)
            if problem:
                _warn_once(warned, src, f"cannot export {src}: {problem}")
                continue
            if any(storage.exists(posixpath.join(d, name)) for d in existing_model_dirs(base)):
                log.info("%s is already exported, accepted or rejected: removing its source %s", name, src)
                storage.remove_tree(src)
                continue
            try:
                net, info = modelfile.load_model(storage, src, "cpu")
            except ModelFileError as e:
                _warn_once(warned, src, f"skipping broken training export: {e}")
                continue
            target_root = base.models_extra if extra else (base.modelstobetested if gating else base.models)
            target = posixpath.join(target_root, name)
            new_info = modelfile.ModelInfo.for_model(
                net, name, info.samples_trained, info.data_rows,
                extra={**info.extra, "training_export": posixpath.basename(src)})
            if not extra:
                base.precreate_selfplay(name)
            storage.makedirs(target_root)
            extra_files = _katago_files(net, name, warned) if katago else None
            modelfile.save_model(storage, target, net, new_info, extra_files)
            storage.remove_tree(src)
            metrics.metric("zeroloop_export_models_total").inc()
            log.info("exported %s (%d samples, %d data rows)", target, info.samples_trained, info.data_rows)
            written.append(target)
    return written


def _katago_files(net, name: str, warned: set[str]) -> dict[str, bytes] | None:
    """{model.bin.gz: bytes}, or None (warned once) where this net has no KataGo form: the model
    is published without it rather than stalling self-play."""
    from zeroloop.katago import netexport

    try:
        return {modelfile.KATAGO_FILE: netexport.export_bin_gz(net, name)}
    except ValueError as e:
        _warn_once(warned, "katago", f"--katago: cannot write {name} in KataGo's format ({e}); "
                                     f"publishing it without {modelfile.KATAGO_FILE}")
        return None


def _warn_once(warned: set[str], key: str, message: str) -> None:
    if key not in warned:
        warned.add(key)
        log.warning("%s", message)


def run(args: argparse.Namespace) -> int:
    if args.poll_seconds <= 0:
        raise UserError(f"--poll-seconds {args.poll_seconds}: must be positive")
    base = BaseDir.open(args.basedir, create=False)
    probe = modelnames.check_model_name(f"{args.name_prefix}-x")
    if probe:
        raise UserError(f"--name-prefix {args.name_prefix!r}: {probe}")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    metrics.serve(args.metrics_port)
    warned: set[str] = set()
    while True:
        try:
            export_pending(base, args.name_prefix, args.gating, warned, args.katago)
        except OSError as e:
            if not args.loop:
                raise UserError(f"export failed: {e}") from None
            log.warning("export pass failed, retrying in %.0fs: %s", args.poll_seconds, e)
        if not args.loop or stop.wait(args.poll_seconds):
            break
    return 0
