"""`zeroloop bench scale`: how the recurring costs grow with a run's history.

Builds one synthetic BASEDIR per history size, 1x, 10x and 100x
(``--sizes``). At 100x it holds 200,000 tdata files (each a hard link to one
small valid file, with its count file, a link too) in 5,000 self-play
directories, 50,000 self-play SGF files, 5,000 accepted models (hard links
to one tiny model), 5,000 gating records with 50,000 gating SGF files,
10,000 cycles in ``loop/cycles.jsonl`` and 10,000 training reports;
``--scale-down K`` divides every count by K (tests). What is new (the
self-play window, the newest model) is alike at every size, so only the
cost of history shows.

Every recurring operation of a run is timed at each size: one untimed
first run per size (it may build caches; ``_first_seconds``), then
``--repeats`` rounds, each timing the operation once at every size, the
sizes in turn and each round starting at another size; the median of each
size's runs is its time. So a stretch of a loaded machine (a process of
higher priority taking both cores for seconds) falls on every size alike,
not on whichever size was being timed then. Its peak Python memory is
measured in one more run under tracemalloc, and the filesystem calls of
the timed runs are counted (``fs_calls``, per run), and of those the ones
made by the operation's own thread (``serial_calls``): they wait one after
another, while calls in worker threads wait side by side, so with latency
L an operation takes at least ``serial_calls`` x L.

- ``shuffle_plan``: the shuffler's scan of the tdata files and its choice of
  the window (``--max-rows`` of them), not the copying of the window;
- ``selfplay_poll``: self-play's look for a newer model;
- ``export_pass``: one export pass publishing one new model for gating;
- ``gatekeeper_start`` and ``gatekeeper_poll``: the gatekeeper's start and
  one look at its queue with a candidate waiting (the match itself left out);
- ``runstats``: the run statistics a fresh process reads (games, rows,
  samples, models, the last hour's gating decisions), ``runstats_warm`` the
  same again in a process that read them before (the loop's progress bar);
- ``report``: ``zeroloop report`` (plots and summary);
- ``loop_cycle``: the synchronous loop's own work in one cycle, its five
  stages replaced by nothing.

``--latency-ms L`` puts the BASEDIR behind ``LatencyFileSystem``: every
metadata call (listing, stat, open, rename...) waits L ms first, as on NFS.
Each operation's ``growth`` is its time at the largest size over its time at
the smallest, both measured in this run; ``max_growth`` is the largest.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

from zeroloop.errors import UserError

# One history unit (1x); 100x is the largest run.
DIRS_PER_UNIT = 50  # self-play directories = accepted models = gating records
TDATA_PER_DIR = 40
SGFS_PER_DIR = 10  # self-play SGF files, and gating SGF files per candidate
CYCLES_PER_UNIT = 100
ROWS_PER_FILE = 4
POS_LEN = 7
MODEL_KIND = "b1c16"
PREFIX = "bench"
DIRS_PER_TEMPLATE = 1000  # directories whose files link to one copy of the template files (<= 40,000 links)
OLD = time.time() - 90 * 86400.0  # history is this old and older

OPERATIONS = ("shuffle_plan", "selfplay_poll", "export_pass", "gatekeeper_start", "gatekeeper_poll", "runstats",
              "runstats_warm", "report", "loop_cycle")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="1,10,100", help="history sizes, in units of the 1x run")
    parser.add_argument("--scale-down", type=int, default=1,
                        help="divide every count by this (tests; at least 2 self-play directories remain)")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="delay added to every filesystem metadata call (NFS is 1 ms or more)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each operation per size")
    parser.add_argument("--max-rows", type=int, default=400, help="the shuffle window, in rows")
    parser.add_argument("--operations", default=",".join(OPERATIONS), help="which operations to time")
    parser.add_argument("--workdir", default=None, help="where to build the BASEDIR (default: a temp dir)")


# --- the synthetic history -------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Counts of the largest history; an index i < total names the i-th oldest of each kind."""

    dirs: int  # self-play directories, accepted models, gating records
    cycles: int

    def first(self, size: int, largest: int) -> tuple[int, int]:
        """(first directory index, first cycle index) present at size (of largest)."""
        return self.dirs - self.dirs * size // largest, self.cycles - self.cycles * size // largest


def model_name(i: int) -> str:
    return f"{PREFIX}-{MODEL_KIND}-s{(i + 1) * 1000:012d}-d{(i + 1) * 160:012d}"


class History:
    """Builds the synthetic BASEDIR, growing it into the past."""

    def __init__(self, root: str, layout: Layout):
        from zeroloop.storage import BaseDir

        self.root = root
        self.layout = layout
        self.base = BaseDir.open(root)
        self.built_from = layout.dirs  # directory indices >= this exist
        self.templates = os.path.join(root, ".templates")

    def make_templates(self) -> None:
        import numpy as np
        import torch

        from zeroloop import rows
        from zeroloop.bench import synthetic
        from zeroloop.nn import modelfile
        from zeroloop.nn.configs import get_config
        from zeroloop.nn.model import Net

        os.makedirs(self.templates, exist_ok=True)
        storage = self.base.storage
        arrays = synthetic.random_rows(ROWS_PER_FILE, POS_LEN, np.random.default_rng(1))
        rows.write(storage, os.path.join(self.templates, "t.npz"), arrays)
        with open(os.path.join(self.templates, "t.sgfs"), "w") as f:
            f.write("(;GM[1]SZ[7];B[aa];W[bb])\n" * 4)
        with open(os.path.join(self.templates, "t.json"), "w") as f:  # t.npz's count file
            f.write(json.dumps({"num_rows": ROWS_PER_FILE, "pos_len": POS_LEN}))
        torch.manual_seed(1)
        net = Net(get_config(MODEL_KIND), POS_LEN)
        info = modelfile.ModelInfo.for_model(net, model_name(0), 1000, 160)
        modelfile.save_model(storage, os.path.join(self.templates, "model"), net, info)
        for name in ("t.npz", "t.json", "t.sgfs", "model/model.safetensors", "model/model.json"):
            os.utime(os.path.join(self.templates, name), (OLD, OLD))

    def grow_to(self, size: int, largest: int) -> None:
        first_dir, first_cycle = self.layout.first(size, largest)
        for i in range(first_dir, self.built_from):
            self._add_dir(i)
        self.built_from = min(self.built_from, first_dir)
        self._write_logs(first_cycle)
        newest = self.base.tdata(model_name(self.layout.dirs - 1))
        os.utime(newest)  # the newest self-play directory is still being written

    def _template(self, i: int) -> str:
        """The templates directory i links to: a copy per DIRS_PER_TEMPLATE directories, as a filesystem
        limits the links to one file (ext4: 65,000)."""
        copy = os.path.join(self.templates, f"copy{i // DIRS_PER_TEMPLATE}")
        if not os.path.isdir(copy):
            shutil.copytree(self.templates, copy + ".tmp", ignore=shutil.ignore_patterns("copy*"))
            os.replace(copy + ".tmp", copy)
        return copy

    def _add_dir(self, i: int) -> None:
        b = self.base
        name = model_name(i)
        t = self._template(i)
        when = OLD + i * 600.0
        tdata, sgfs = b.tdata(name), b.sgfs(name)
        os.makedirs(tdata, exist_ok=True)
        os.makedirs(sgfs, exist_ok=True)
        for j in range(TDATA_PER_DIR):
            path = os.path.join(tdata, f"{i:06d}{j:04d}")
            os.link(os.path.join(t, "t.npz"), path + ".npz")
            os.link(os.path.join(t, "t.json"), path + ".json")
        for j in range(SGFS_PER_DIR):
            os.link(os.path.join(t, "t.sgfs"), os.path.join(sgfs, f"{i:06d}{j:04d}.sgfs"))
        model = os.path.join(b.models, name)
        os.makedirs(model, exist_ok=True)
        for f in ("model.safetensors", "model.json"):
            os.link(os.path.join(t, "model", f), os.path.join(model, f))
        gating = os.path.join(b.gatekeepersgf, name)
        os.makedirs(gating, exist_ok=True)
        for j in range(SGFS_PER_DIR):
            os.link(os.path.join(t, "t.sgfs"), os.path.join(gating, f"{j:04d}.sgfs"))
        record = {"candidate": name, "baseline": model_name(i - 1) if i else "random", "decision": "accepted",
                  "reason": "match", "wins": 24, "losses": 16, "draws": 0, "time": when, "max_games": 40}
        with open(os.path.join(gating, "result.json"), "w") as f:
            f.write(json.dumps(record))
        for d in (tdata, sgfs, gating, model, b.selfplay_model(name)):
            os.utime(d, (when, when))

    def _write_logs(self, first_cycle: int) -> None:
        b = self.base
        from zeroloop import layout as paths  # (this module's Layout is the benchmark's history)

        os.makedirs(paths.loop(b.root), exist_ok=True)
        train = b.train(MODEL_KIND)
        os.makedirs(train, exist_ok=True)
        with open(paths.loop_cycles(b.root), "w") as cycles, \
                open(os.path.join(train, "metrics_train.jsonl"), "w") as reports:
            for c in range(first_cycle, self.layout.cycles):
                when = OLD + c * 60.0
                cycles.write(json.dumps({"cycle": c + 1, "time": when, "seconds": 60.0, "games": 50, "rows": 160,
                                         "samples": 1000, "model": model_name(c % self.layout.dirs),
                                         "gating": []}) + "\n")
                reports.write(json.dumps({"time": when, "samples": (c + 1) * 1000, "loss_policy": 1.5,
                                          "loss_value": 0.6}) + "\n")


# --- the operations --------------------------------------------------------------------------


class Operations:
    """Each recurring operation of a run on one BASEDIR, as a callable."""

    def __init__(self, base, max_rows: int):
        self.base = base
        self.max_rows = max_rows
        self._exports = 0
        self._watcher = None
        self._warm_stats = None
        self._loop = None

    def shuffle_plan(self) -> None:
        from zeroloop.shuffle import inputs, window

        params = window.WindowParams(min_rows=self.max_rows, max_rows=self.max_rows)
        found = inputs.scan(self.base, need=lambda total, rnd: window.rows_wanted(total, rnd, params))
        window.select(found.files, params, None, found.older_rows, found.older_random_rows)

    def selfplay_poll(self) -> None:
        from zeroloop.selfplay.models import ModelWatcher

        if self._watcher is None:  # a running self-play process: its model loaded long ago
            self._watcher = ModelWatcher(self.base.storage, self.base.models, random_pos_len=POS_LEN,
                                         max_board_size=POS_LEN, poll_seconds=0.0)
            self._watcher.initial()
        self._watcher.poll()

    def export_pass(self) -> None:
        from zeroloop import export

        self._exports += 1
        name = f"{MODEL_KIND}-x{self._exports:06d}-s0-d0"
        src = os.path.join(self.base.toexport(), name)
        os.makedirs(os.path.dirname(src), exist_ok=True)
        shutil.copytree(os.path.join(self.base.root, ".templates", "model"), src)
        written = export.export_pending(self.base, PREFIX, gating=True)
        for path in written:  # keep the history the same size
            shutil.rmtree(path)
            shutil.rmtree(self.base.selfplay_model(os.path.basename(path)), ignore_errors=True)

    def _gatekeeper(self):
        from zeroloop.gatekeeper.config import GatekeeperConfig
        from zeroloop.gatekeeper.main import Dirs, Gatekeeper

        b = self.base
        dirs = Dirs(b.modelstobetested, b.models, b.rejectedmodels, b.gatekeepersgf, b.selfplay)
        return Gatekeeper(b.storage, dirs, GatekeeperConfig(), lambda *a: False)  # the match: abandoned

    def gatekeeper_start(self) -> None:
        self._gatekeeper()

    def gatekeeper_poll(self) -> None:
        candidate = os.path.join(self.base.modelstobetested, f"{PREFIX}-{MODEL_KIND}-cand-s9-d9")
        if not os.path.isdir(candidate):
            os.makedirs(self.base.modelstobetested, exist_ok=True)
            shutil.copytree(os.path.join(self.base.root, ".templates", "model"), candidate)
        self._gatekeeper_obj = getattr(self, "_gatekeeper_obj", None) or self._gatekeeper()
        self._gatekeeper_obj.step()

    def _read_stats(self, stats) -> None:
        stats.games()
        stats.rows()
        stats.samples_trained()
        stats.last_losses()
        stats.model_tally()  # (the loop's cycle summary and status line: the count and the newest)
        stats.decisions_since(time.time() - 3600.0)  # (the loop asks for this cycle's decisions)

    def runstats(self) -> None:
        from zeroloop.runstats import RunStats

        self._read_stats(RunStats(self.base))

    def runstats_warm(self) -> None:
        from zeroloop.runstats import RunStats

        if self._warm_stats is None:
            self._warm_stats = RunStats(self.base)
            self._read_stats(self._warm_stats)
        self._read_stats(self._warm_stats)

    def report(self) -> None:
        from zeroloop import report

        report.make_report(self.base, os.path.join(self.base.root, ".report"))

    def loop_cycle(self) -> None:
        from zeroloop.loop import sync

        if self._loop is None:
            self._loop = _stageless_loop(self.base)
        state = sync.LoopState.load(self.base)
        self._loop.cycles = state.cycle
        self._loop._run_cycles(state)


def _stageless_loop(base):
    """A SyncLoop whose stages return at once: what is left is the loop's own work."""
    from zeroloop.loop import settings as S
    from zeroloop.loop import sync

    class StagelessLoop(sync.SyncLoop):
        def _run(self, state, name, argv, progress=None, total=None, unit=""):
            return 0

    settings = S.LoopSettings(name_prefix=PREFIX, model_kind=MODEL_KIND, board_size=POS_LEN, device="cpu")
    S.save(base, settings)
    return StagelessLoop(base, settings, cycles=None, report=False, out=io.StringIO())


# --- measuring -----------------------------------------------------------------------------------


def _timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _rounds(sizes: list[int], repeats: int) -> list[list[int]]:
    """The order of the timed runs: each round every size once, each round starting at the next size."""
    return [sizes[r % len(sizes):] + sizes[:r % len(sizes)] for r in range(repeats)]


def _peak_bytes(fn: Callable[[], None]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _open_base(root: str, latency_ms: float):
    from zeroloop.bench.latency import LatencyFileSystem
    from zeroloop.storage import BaseDir, Storage

    return BaseDir(Storage(LatencyFileSystem(latency_ms / 1000.0)), root)


def _measured_latency_ms(args: argparse.Namespace) -> float:
    """What a delay of --latency-ms really takes here (a loaded machine sleeps longer than asked)."""
    if args.latency_ms <= 0:
        return 0.0
    t0 = time.perf_counter()
    for _ in range(50):
        time.sleep(args.latency_ms / 1000.0)
    return round((time.perf_counter() - t0) / 50 * 1000.0, 3)


def _parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise UserError(f"--sizes {text!r}: expected numbers like 1,10,100") from None
    if not sizes or sizes[0] < 1:
        raise UserError(f"--sizes {text!r}: sizes must be at least 1")
    return sizes


def measure(args: argparse.Namespace) -> dict:
    sizes = _parse_sizes(args.sizes)
    ops = [o.strip() for o in args.operations.split(",") if o.strip()]
    unknown = sorted(set(ops) - set(OPERATIONS))
    if unknown:
        raise UserError(f"--operations: unknown {', '.join(unknown)}; known: {', '.join(OPERATIONS)}")
    if args.scale_down < 1 or args.repeats < 1 or args.latency_ms < 0 or args.max_rows < 1:
        raise UserError("--scale-down and --repeats must be at least 1, --max-rows positive, --latency-ms not negative")
    unit = max(2, DIRS_PER_UNIT // args.scale_down)  # self-play directories at 1x
    cycles = max(2, CYCLES_PER_UNIT // args.scale_down)
    logging.getLogger("zeroloop").setLevel(logging.WARNING)
    # The window fits in the smallest history (half of its rows at most).
    max_rows = min(args.max_rows, unit * sizes[0] * TDATA_PER_DIR * ROWS_PER_FILE // 2)
    tmp = tempfile.mkdtemp(prefix="zeroloop-bench-scale-", dir=args.workdir)
    result: dict = {"sizes": sizes, "latency_ms": args.latency_ms, "latency_measured_ms": _measured_latency_ms(args),
                    "repeats": args.repeats, "max_rows": max_rows}
    try:
        operations = {}
        for size in sizes:
            result[f"x{size}_history"] = _build(os.path.join(tmp, f"x{size}"), Layout(unit * size, cycles * size))
            operations[size] = Operations(_open_base(os.path.join(tmp, f"x{size}"), args.latency_ms), max_rows)
        for op in ops:
            result.update(_measure_op(op, operations, sizes, args.repeats))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    small, big = sizes[0], sizes[-1]
    growth = {}
    for op in ops:
        growth[op] = round(result[f"x{big}_{op}_seconds"] / max(result[f"x{small}_{op}_seconds"], 1e-9), 3)
        result[f"{op}_growth"] = growth[op]
        result[f"{op}_memory_growth"] = round(result[f"x{big}_{op}_peak_mib"]
                                              / max(result[f"x{small}_{op}_peak_mib"], 1e-6), 3)
    result["max_growth"] = max(growth.values()) if growth else None
    result["max_growth_operation"] = max(growth, key=growth.get) if growth else None
    return result


def _build(root: str, layout: Layout) -> dict:
    """A BASEDIR of layout's history at root; what it holds."""
    t0 = time.perf_counter()
    os.makedirs(root)
    history = History(root, layout)
    history.make_templates()
    history.grow_to(1, 1)
    n = layout.dirs
    return {"tdata_files": n * TDATA_PER_DIR, "selfplay_dirs": n, "models": n, "gating_sgfs": n * SGFS_PER_DIR,
            "selfplay_sgfs": n * SGFS_PER_DIR, "cycles": layout.cycles,
            "build_seconds": round(time.perf_counter() - t0, 2)}


def _measure_op(op: str, operations: dict, sizes: list[int], repeats: int) -> dict:
    """One operation at every size: its first run, its timed runs taken in rounds, its calls and peak memory."""
    out: dict = {}
    fns = {size: getattr(operations[size], op) for size in sizes}
    fss = {size: operations[size].base.storage.fs for size in sizes}
    for size in sizes:
        out[f"x{size}_{op}_first_seconds"] = round(_timed(fns[size]), 5)
    calls0 = {size: (fss[size].calls, fss[size].serial_calls) for size in sizes}
    times: dict[int, list[float]] = {size: [] for size in sizes}
    for order in _rounds(sizes, repeats):
        for size in order:
            times[size].append(_timed(fns[size]))
    for size in sizes:
        out[f"x{size}_{op}_seconds"] = round(statistics.median(times[size]), 5)
        out[f"x{size}_{op}_fs_calls"] = round((fss[size].calls - calls0[size][0]) / repeats, 1)
        out[f"x{size}_{op}_serial_calls"] = round((fss[size].serial_calls - calls0[size][1]) / repeats, 1)
        with contextlib.redirect_stdout(io.StringIO()):
            out[f"x{size}_{op}_peak_mib"] = round(_peak_bytes(fns[size]) / 2**20, 3)
    return out
