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
return their counts to it. Every flag is also a key of a ``--config`` TOML
or YAML file (flags win); ``--help-config`` lists them with their defaults
(``zeroloop.shuffle.options``).
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

from zeroloop import cliflags, config, exits, metrics, quarantine, rows, shuffled
from zeroloop.errors import UserError
from zeroloop.shuffle import cleanup, inputs, scatter, window
from zeroloop.shuffle.options import GROUPS, ShuffleOptions
from zeroloop.storage import BaseDir, stamp, unique_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShuffleOutcome:
    out_dir: str
    summary: shuffled.ShuffleSummary
    selection: window.Selection
    skipped: list[tuple[str, str]]
    seconds: float
    quarantined: list[str] = field(default_factory=list)  # where corrupt inputs went


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (f"exit status: 0 after a shuffle (its directory is printed); {exits.NOT_ENOUGH_ROWS} when "
                     f"fewer usable rows than --min-rows exist (nothing is written); 2 for bad flags.")
    parser.add_argument("basedir", metavar="BASEDIR", nargs="?",
                        help="the run's shared directory (path or fsspec URL)")
    config.add_config_flags(parser, "shuffle")
    config.add_flags(parser, ShuffleOptions, GROUPS)
    cliflags.add_common(parser, metrics=True, seed=False)


def options_from_args(args: argparse.Namespace) -> ShuffleOptions:
    """The settings: --config FILE's, then the flags given; a bad one refused by name."""
    return config.from_args(ShuffleOptions, args, args.config)


def help_config() -> str:
    return config.describe(ShuffleOptions)


def serve_metrics(port: int | None) -> None:
    """Serve metrics, with the file counters at zero: a dashboard shows 0, not "No data", until a file is skipped."""
    metrics.serve(port)
    for name in ("zeroloop_shuffle_files_skipped_total", "zeroloop_shuffle_files_quarantined_total"):
        metrics.metric(name)


def run(args: argparse.Namespace) -> int:
    if args.help_config:
        print(help_config(), end="")
        return exits.OK
    opts = options_from_args(args)
    if args.basedir is None:
        raise UserError("BASEDIR is required")
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
    url = opts.scratch_dir or _url(base, base.shufflescratch)
    place = scatter.Place(url)
    storage, root = place.open()
    storage.makedirs(root)
    cleanup.clean_scratch(storage, root, opts.cleanup_grace_seconds)
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
    if opts.processes > 1 and not base.storage.local and "memory" in str(base.storage.fs.protocol):
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
                _executor(opts.processes) as pool:
            base.storage.makedirs(posixpath.join(staging, shuffled.FILES_SUBDIR))
            files = [f.path for f in sel.files]
            groups = scatter.plan_groups([f.rows for f in sel.files], opts.worker_group_size)
            tasks = [scatter.ScatterTask(scratch_place, g, tuple(files[i] for i in idx), inputs_place, pos_len,
                                         sel.keep_prob, num_buckets, (seed, 1, g)) for g, idx in enumerate(groups)]
            kept = 0
            results = []
            for res in _run_all(pool, scatter.scatter, tasks):
                results.append(res)
                kept += res.rows_kept
                for _path, why in res.skipped:
                    log.warning("skipping unreadable tdata file: %s", why)
                    metrics.metric("zeroloop_shuffle_files_skipped_total").inc()
                skipped.extend(res.skipped)
                quarantined += _quarantine(base, res.corrupt)
            versions = scatter.feature_versions(results)
            if len(versions) > 1:  # never mixed planes in one batch: publish nothing
                raise scatter.MixedFeatureVersions(versions)
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
    cleanup.clean_shuffles(base, opts.keep_shuffled_dirs, opts.cleanup_grace_seconds, opts.in_use_expiry_seconds)
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
