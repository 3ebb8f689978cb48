"""`zeroloop bench shuffle`: shuffle speed, and peak memory against window size.

Writes synthetic tdata for a window of 4W rows, then shuffles a window of W
rows and one of 4W rows (``--max-rows``), each in a fresh child process, with
the same bucket and worker-group sizes. Each child reports its own peak
resident memory (``ru_maxrss``, and that of its worker processes) and its
resident memory before shuffling. The shuffle's memory is bounded by a
bucket, so ``memory_growth_ratio`` (peak at 4W over peak at W) should stay
well under 1.5 while the data grows four-fold.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import tempfile
import time

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--window-rows", type=int, default=50_000, help="W, the smaller window")
    parser.add_argument("--pos-len", type=int, default=9)
    parser.add_argument("--rows-per-file", type=int, default=2_500)
    parser.add_argument("--approx-rows-per-bucket", type=int, default=20_000)
    parser.add_argument("--worker-group-size", type=int, default=20_000)
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)


def _rss_now_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _child(basedir: str, window: int, opts: dict, out) -> None:
    from zeroloop.shuffle import main as shuffle_main
    from zeroloop.storage import BaseDir

    base = BaseDir.open(basedir)
    before = _rss_now_kb()
    o = shuffle_main.ShuffleOptions(min_rows=window, max_rows=window, cleanup_grace_seconds=1e9, seed=1, **opts)
    t0 = time.perf_counter()
    outcome = shuffle_main.shuffle_once(base, o)
    seconds = time.perf_counter() - t0
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out.send({"rows": outcome.summary.num_rows, "seconds": seconds, "rss_before_kb": before,
              "peak_kb": own + workers, "files": len(outcome.summary.files)})
    out.close()


def _measure_shuffle(basedir: str, window: int, opts: dict) -> dict:
    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(basedir, window, opts, send))
    p.start()
    send.close()
    result = recv.recv()
    p.join()
    if p.exitcode != 0:
        raise RuntimeError(f"shuffle child exited with {p.exitcode}")
    return result


def measure(args: argparse.Namespace) -> dict:
    from zeroloop.bench import synthetic
    from zeroloop.storage import BaseDir

    w = args.window_rows
    tmp = tempfile.mkdtemp(prefix="zeroloop-bench-shuffle-")
    try:
        base = BaseDir.open(tmp)
        rng = np.random.default_rng(0)
        files = -(-4 * w // args.rows_per_file)
        t0 = time.perf_counter()
        synthetic.write_tdata(base, "bench", files, args.rows_per_file, args.pos_len, rng)
        gen_s = time.perf_counter() - t0
        opts = dict(num_processes=args.num_processes, worker_group_size=args.worker_group_size,
                    approx_rows_per_bucket=args.approx_rows_per_bucket, batch_size=args.batch_size)
        small = _measure_shuffle(tmp, w, opts)
        large = _measure_shuffle(tmp, 4 * w, opts)
        data_bytes_per_row = sum(
            int(np.prod(s.shape(args.pos_len))) * s.dtype.itemsize for s in _specs().values())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    grow = (large["peak_kb"] - large["rss_before_kb"]) / max(1, small["peak_kb"] - small["rss_before_kb"])
    return {
        "rows_per_s": large["rows"] / large["seconds"],
        "rows_per_s_small": small["rows"] / small["seconds"],
        "memory_growth_ratio": large["peak_kb"] / small["peak_kb"],
        "memory_growth_ratio_above_baseline": grow,
        "peak_rss_mb_window": small["peak_kb"] / 1024,
        "peak_rss_mb_window_x4": large["peak_kb"] / 1024,
        "rss_before_shuffle_mb": small["rss_before_kb"] / 1024,
        "window_rows": w,
        "window_x4_rows": large["rows"],
        "window_x4_uncompressed_mb": large["rows"] * data_bytes_per_row / 2**20,
        "approx_rows_per_bucket": args.approx_rows_per_bucket,
        "num_processes": args.num_processes,
        "pos_len": args.pos_len,
        "data_generation_s": gen_s,
    }


def _specs():
    from zeroloop import rows

    return rows.SPECS
