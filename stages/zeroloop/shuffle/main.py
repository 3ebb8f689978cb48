"""`zeroloop shuffle BASEDIR`: one shuffle of the recent self-play window.

Finds every tdata file (``inputs``), picks the window (``window``), shuffles
it exactly with memory bounded by a bucket (``scatter``) in
``--num-processes`` worker processes, and publishes
``shuffleddata/<stamp>/`` in one rename when complete, then removes old
shuffles no trainer can still be reading (``cleanup``). Input files whose
content is malformed are skipped and moved to ``BASEDIR/quarantine/``
(``zeroloop.quarantine``) so that no later shuffle trips on them again.

Exit status (``zeroloop.exits``): 0 after a shuffle; ``NOT_ENOUGH_ROWS`` when there are
fewer usable rows than ``--min-rows`` (the message says how many exist and
how many are needed, and no output directory is created); 2 for bad flags
or mixed board lengths. Only this (parent) process serves metrics; workers
return their counts to it.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import logging
import multiprocessing
import os
import posixpath
import sys
import time
from dataclasses import dataclass, field

from zeroloop import cliflags, exits, metrics, quarantine, rows, runtime, shuffled
from zeroloop.errors import UserError
from zeroloop.shuffle import cleanup, inputs, scatter, window
from zeroloop.storage import BaseDir, stamp, unique_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShuffleOptions:
    params: window.WindowParams
    keep_target_rows: int | None = None
    num_processes: int = 1
    worker_group_rows: int = 80_000
    approx_rows_per_bucket: int = 100_000
    approx_rows_per_out_file: int = 70_000
    batch_size: int = 1
    pos_len: int | None = None
    scratch_url: str | None = None
    keep_newest: int = 3
    cleanup_grace_s: float = 7200.0
    in_use_expiry_s: float = 86400.0
    seed: int | None = None


@dataclass(frozen=True)
class ShuffleOutcome:
    out_dir: str
    summary: shuffled.ShuffleSummary
    selection: window.Selection
    skipped: list[tuple[str, str]]
    seconds: float
    quarantined: list[str] = field(default_factory=list)  # where corrupt inputs went


def _keep_target(text: str) -> int | None:
    if text == "all":
        return None
    try:
        n = int(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a row count or 'all', got {text!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {n}")
    return n


def _rows(text: str) -> int:
    try:
        n = int(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a row count, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {n}")
    return n


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (f"exit status: 0 after a shuffle (its directory is printed); {exits.NOT_ENOUGH_ROWS} when "
                     f"fewer usable rows than --min-rows exist (nothing is written); 2 for bad flags.")
    parser.add_argument("basedir", metavar="BASEDIR", help="the run's shared directory (path or fsspec URL)")
    w = parser.add_argument_group("window (KataGo's shuffle.py)")
    cliflags.flag(w, "--min-rows", type=_rows, default=250_000,
                  help="fewest usable rows to shuffle at all; also the window's minimum")
    cliflags.flag(w, "--max-rows", type=_rows, default=None, help="largest window (default: no limit)")
    cliflags.flag(w, "--keep-target-rows", type=_keep_target, default=None, metavar="N|all",
                  help="keep about this many rows of the window, sampled uniformly (default: all)")
    cliflags.flag(w, "--expand-window-per-row", type=float, default=1.0,
                  help="initial growth of the window per new data row")
    cliflags.flag(w, "--taper-window-exponent", type=float, default=1.0,
                  help="power-law exponent of window growth (KataGo's runs: 0.65)")
    cliflags.flag(w, "--taper-window-scale", type=_rows, default=None,
                  help="rows at which the taper starts (default: --min-rows)")
    cliflags.flag(w, "--add-to-data-rows", type=_rows, default=0,
                  help="pretend this many more data rows exist (window and row range)")
    cliflags.flag(w, "--pos-len", type=int, default=None,
                  help="shuffle only rows of this data board length (needed when several exist)")
    o = parser.add_argument_group("work and output")
    cliflags.flag(o, "--num-processes", type=int, default=None,
                  help="worker processes (default: usable CPUs, at most 8)")
    cliflags.flag(o, "--worker-group-size", type=_rows, default=80_000,
                  help="rows a worker loads at once in the scatter phase")
    cliflags.flag(o, "--approx-rows-per-bucket", type=_rows, default=100_000,
                  help="rows per bucket: bounds the memory of the gather phase")
    cliflags.flag(o, "--approx-rows-per-out-file", type=_rows, default=70_000, help="rows per output file")
    cliflags.flag(o, "--batch-size", type=int, default=None,
                  help="the trainer's batch size: output files hold whole batches")
    cliflags.flag(o, "--scratch-dir", default=None, help="scratch for shards (default: BASEDIR/shufflescratch)")
    c = parser.add_argument_group("cleanup of old shuffles")
    cliflags.flag(c, "--keep-shuffled-dirs", type=int, default=3, help="always keep this many newest shuffles")
    cliflags.flag(c, "--cleanup-grace-seconds", type=float, default=7200.0,
                  help="never remove a shuffle younger than this")
    cliflags.flag(c, "--in-use-expiry-seconds", type=float, default=86400.0,
                  help="a trainer's in-use mark older than this no longer protects a shuffle")
    cliflags.add_common(parser, metrics=True)


def options_from_args(args: argparse.Namespace) -> ShuffleOptions:
    if args.min_rows <= 0:
        raise UserError(f"--min-rows {args.min_rows}: must be positive")
    if args.max_rows is not None and args.max_rows < args.min_rows:
        raise UserError(f"--max-rows {args.max_rows} is below --min-rows {args.min_rows}")
    if args.taper_window_exponent <= 0 or args.expand_window_per_row < 0:
        raise UserError("--taper-window-exponent must be positive and --expand-window-per-row not negative")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 1")
    for name in ("worker_group_size", "approx_rows_per_bucket", "approx_rows_per_out_file"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    processes = args.num_processes if args.num_processes is not None else min(8, runtime.cpu_count())
    if processes < 1:
        raise UserError(f"--num-processes {processes}: must be at least 1")
    if args.pos_len is not None and args.pos_len < 2:
        raise UserError(f"--pos-len {args.pos_len}: must be at least 2")
    params = window.WindowParams(args.min_rows, args.max_rows, args.expand_window_per_row,
                                 args.taper_window_exponent, args.taper_window_scale, args.add_to_data_rows)
    return ShuffleOptions(
        params=params, keep_target_rows=args.keep_target_rows, num_processes=processes,
        worker_group_rows=args.worker_group_size, approx_rows_per_bucket=args.approx_rows_per_bucket,
        approx_rows_per_out_file=args.approx_rows_per_out_file, batch_size=args.batch_size or 1,
        pos_len=args.pos_len, scratch_url=args.scratch_dir, keep_newest=args.keep_shuffled_dirs,
        cleanup_grace_s=args.cleanup_grace_seconds, in_use_expiry_s=args.in_use_expiry_seconds, seed=args.seed)


def serve_metrics(port: int | None) -> None:
    """Serve metrics, with the file counters at zero: a dashboard shows 0, not "No data", until a file is skipped."""
    metrics.serve(port)
    for name in ("zeroloop_shuffle_files_skipped_total", "zeroloop_shuffle_files_quarantined_total"):
        metrics.metric(name)


def run(args: argparse.Namespace) -> int:
    opts = options_from_args(args)
    serve_metrics(args.metrics_port)
    base = BaseDir.open(args.basedir, create=False)
    try:
        outcome = shuffle_once(base, opts)
    except window.NotEnoughRows as e:
        print(f"zeroloop shuffle: {e}. Nothing written; run more self-play first.", file=sys.stderr)
        return exits.NOT_ENOUGH_ROWS
    print(outcome.out_dir)
    return exits.OK


class _InProcess(cf.Executor):
    """An executor that runs each task at once (--num-processes 1)."""

    def submit(self, fn, /, *args, **kwargs):
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - handed to the caller via the future
            future.set_exception(e)
        return future


def _executor(processes: int) -> cf.Executor:
    if processes == 1:
        return _InProcess()
    # spawn: workers start clean (no copy of the parent's threads or metrics server).
    return cf.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))


def _scratch_place(base: BaseDir, opts: ShuffleOptions) -> tuple[scatter.Place, str]:
    """(this run's scratch place, the scratch root) with stale runs cleared."""
    url = opts.scratch_url or _url(base, base.shufflescratch)
    place = scatter.Place(url)
    storage, root = place.open()
    storage.makedirs(root)
    cleanup.clean_scratch(storage, root, opts.cleanup_grace_s)
    run_root = posixpath.join(root, f"run-{unique_name()}")
    storage.makedirs(run_root)
    return scatter.Place(_join_url(url, posixpath.basename(run_root))), run_root


def _url(base: BaseDir, path: str) -> str:
    """A URL that re-opens path of base's filesystem in another process."""
    protocol = base.storage.fs.protocol
    protocol = protocol[0] if isinstance(protocol, (tuple, list)) else protocol
    if base.storage.local or protocol in ("file", "local"):
        return path
    return f"{protocol}://{path.lstrip('/')}"


def _join_url(url: str, name: str) -> str:
    return url.rstrip("/") + "/" + name


def shuffle_once(base: BaseDir, opts: ShuffleOptions) -> ShuffleOutcome:
    """Shuffle the current window into a new shuffleddata/<stamp>/; NotEnoughRows below min-rows."""
    t0 = time.monotonic()
    if opts.num_processes > 1 and not base.storage.local and "memory" in str(base.storage.fs.protocol):
        raise UserError("--num-processes > 1 needs a BASEDIR other processes can open (not memory://)")
    base.storage.sweep_tmp(base.shuffleddata)  # staging dirs of shuffles that were killed
    found = inputs.scan(base, opts.pos_len, need=lambda total, rnd: window.rows_wanted(total, rnd, opts.params))
    for _ in found.skipped:
        metrics.metric("zeroloop_shuffle_files_skipped_total").inc()
    quarantined = _quarantine(base, found.corrupt)
    sel = window.select(found.files, opts.params, opts.keep_target_rows, found.older_rows, found.older_random_rows)
    pos_len = found.pos_len
    assert pos_len is not None  # select() raised if nothing was found
    log.info("window: %d usable rows (%d found), window %d rows, using %d rows in %d files, keep %.3f",
             sel.usable_rows, sel.total_rows, sel.window_rows, sel.rows_used, len(sel.files), sel.keep_prob)
    metrics.metric("zeroloop_shuffle_window_rows").set(sel.window_rows)
    metrics.metric("zeroloop_shuffle_data_rows").set(sel.total_rows)

    seed = opts.seed if opts.seed is not None else int.from_bytes(os.urandom(8), "little")
    expected = sel.rows_used * sel.keep_prob
    num_buckets = max(1, round(expected / opts.approx_rows_per_bucket))
    scratch_place, scratch_root = _scratch_place(base, opts)
    scratch_storage, _ = scratch_place.open()
    inputs_place = scatter.Place(_url(base, base.root))
    out_final = posixpath.join(base.shuffleddata, stamp())
    base.storage.makedirs(base.shuffleddata)
    skipped = list(found.skipped)
    try:
        with scratch_storage.holding_lock(scratch_root), base.storage.publishing_dir(out_final) as staging, \
                _executor(opts.num_processes) as pool:
            base.storage.makedirs(posixpath.join(staging, shuffled.FILES_SUBDIR))
            files = [f.path for f in sel.files]
            groups = scatter.plan_groups([f.rows for f in sel.files], opts.worker_group_rows)
            tasks = [scatter.ScatterTask(scratch_place, g, tuple(files[i] for i in idx), inputs_place, pos_len,
                                         sel.keep_prob, num_buckets, (seed, 1, g)) for g, idx in enumerate(groups)]
            kept = 0
            for res in _run_all(pool, scatter.scatter, tasks):
                kept += res.rows_kept
                for _path, why in res.skipped:
                    log.warning("skipping unreadable tdata file: %s", why)
                    metrics.metric("zeroloop_shuffle_files_skipped_total").inc()
                skipped.extend(res.skipped)
                quarantined += _quarantine(base, res.corrupt)
            if kept == 0:  # every selected file was unreadable: publish nothing
                raise window.NotEnoughRows(0, opts.params.min_rows, sel.total_rows, found.random_rows)
            log.info("scatter: %d rows kept into %d buckets from %d groups", kept, num_buckets, len(groups))
            out_place = scatter.Place(_url(base, staging))
            gtasks = [scatter.GatherTask(scratch_place, b, out_place, pos_len, opts.approx_rows_per_out_file,
                                         opts.batch_size, False, (seed, 2, b)) for b in range(num_buckets)]
            out_files = []
            for res in _run_all(pool, scatter.gather, gtasks):
                out_files.extend(res.files)
            rest = scatter.GatherTask(scratch_place, num_buckets, out_place, pos_len,
                                      opts.approx_rows_per_out_file, opts.batch_size, True, (seed, 3, 0))
            out_files.extend(scatter.gather(rest).files)
            out_files.sort(key=_file_order)
            summary = shuffled.ShuffleSummary(sel.row_range, unique_name(), pos_len,
                                              sum(f.num_rows for f in out_files), tuple(out_files))
            base.storage.write_bytes(posixpath.join(staging, shuffled.SUMMARY_NAME), summary.to_json())
    finally:
        scratch_storage.remove_tree(scratch_root)
    seconds = time.monotonic() - t0
    log.info("shuffled %d rows into %d files in %.1fs: %s", summary.num_rows, len(summary.files), seconds, out_final)
    metrics.metric("zeroloop_shuffle_runs_total").inc()
    metrics.metric("zeroloop_shuffle_rows_total").inc(summary.num_rows)
    metrics.metric("zeroloop_shuffle_duration_seconds").set(seconds)
    cleanup.clean_shuffles(base, opts.keep_newest, opts.cleanup_grace_s, opts.in_use_expiry_s)
    return ShuffleOutcome(out_final, summary, sel, skipped, seconds, quarantined)


def _quarantine(base: BaseDir, corrupt) -> list[str]:
    """Move corrupt tdata files (and their count files) to BASEDIR/quarantine; best effort."""
    moved = []
    for path, why in corrupt:
        try:
            dest = quarantine.quarantine_file(base, path, why, "shuffle", sidecars=(rows.count_path(path),))
        except OSError as e:
            log.warning("cannot quarantine %s: %s", path, e)
            continue
        if dest is not None:
            moved.append(dest)
            metrics.metric("zeroloop_shuffle_files_quarantined_total").inc()
    return moved


def _run_all(pool: cf.Executor, fn, tasks: list):
    """Results of fn over tasks (in completion order); a worker's error is raised here."""
    futures = [pool.submit(fn, t) for t in tasks]
    for fut in cf.as_completed(futures):
        yield fut.result()


def _file_order(f: shuffled.ShuffledFile) -> tuple[int, int]:
    """data<b>_<j> sorts by (b, j): the listing does not depend on worker timing."""
    b, j = posixpath.basename(f.name)[len("data"):-len(".npz")].split("_")
    return int(b), int(j)
