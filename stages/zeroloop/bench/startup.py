"""`zeroloop bench startup`: what a stage costs to start and to stop, started fresh and forked warm.

On a fresh BASEDIR of the synchronous loop (``--model-kind``,
``--board-size``; a random-weight model in models/), each stage runs with
the flags the loop gives it, where it has nothing to do, so that its wall
time from start to exit is its fixed cost: shuffle (too few rows), train
(no shuffled data), export (nothing to export), gatekeeper (no candidate)
and the report. Self-play runs until its first search step (the line it
logs), then gets SIGTERM: ``selfplay_first_step_*`` and ``selfplay_stop_*``.

Each stage runs ``--repeats`` times in each of two ways, medians reported:

- ``fresh``: a new interpreter (``python -m zeroloop STAGE``), as a pod or
  the loop with ``--no-warm-stages`` starts it: the baseline;
- ``warm``: forked from this process once it has imported what the stages
  import (``zeroloop.loop.forking``), as the synchronous loop starts them.

``fixed_cost_*_s`` sums one cycle's worth: the five steps, self-play's
start and stop (the report, ``report_*``, runs beside the next cycle, off
its critical path, so it is not counted); ``fixed_share_*`` divides it by
``--cycle-seconds``, a default 7x7 cycle (about a minute on the 2-core
development machine, docs/learning.md), and ``warm_over_fresh`` compares
the two. ``python_s`` and ``import_torch_s`` are a bare interpreter and one
that imports torch, measured in the same run; ``warm_up_s`` is what the loop
pays once per run instead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from zeroloop import exits, layout
from zeroloop.errors import UserError
from zeroloop.loop import forking, sync
from zeroloop.loop import settings as S
from zeroloop.loop.children import Child
from zeroloop.nn.configs import CONFIGS
from zeroloop.storage import BaseDir

STAGES = ("selfplay", "shuffle", "train", "export", "gatekeeper", "report")
FIRST_STEP = "first search step"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-kind", default="b2c32", choices=sorted(CONFIGS), help="net of the run")
    parser.add_argument("--board-size", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each stage each way (medians reported)")
    parser.add_argument("--cycle-seconds", type=float, default=60.0,
                        help="a cycle's length the fixed cost is a share of (default: the default 7x7 cycle)")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages to measure")


def _stages(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in STAGES]
    if unknown or not names:
        raise UserError(f"--stages {text!r}: choose from {', '.join(STAGES)}")
    return names


def _argv(name: str, base: BaseDir, s: S.LoopSettings) -> list[str]:
    if name == "selfplay":
        return S.selfplay_argv(base, s, 10**6)
    if name == "shuffle":
        return S.shuffle_argv(base, s)
    if name == "train":
        return S.train_argv(base, s, True)
    if name == "export":
        return S.export_argv(base, s)
    if name == "gatekeeper":
        return S.gatekeeper_argv(base, s, True)
    return S.report_argv(base)


def _wait_for_line(path: str, offset: int, needle: str, child: Child, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with open(path, "rb") as f:
            f.seek(offset)
            if needle.encode() in f.read():
                return
        if child.poll() is not None:
            raise RuntimeError(f"{child.name} exited {child.poll()} before {needle!r}:\n{child.tail(20)}")
        time.sleep(0.01)
    raise RuntimeError(f"{child.name}: no {needle!r} within {timeout:.0f} s:\n{child.tail(20)}")


def _run_stage(name: str, base: BaseDir, s: S.LoopSettings, fork: bool) -> dict[str, float]:
    """One run of a stage: seconds to exit, or for self-play to its first step and from SIGTERM to exit."""
    log_path = layout.log(base.root, f"bench-{name}")
    offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    t = time.monotonic()
    child = Child.start(name, _argv(name, base, s), log_path, "bench", fork=fork)
    if name == "selfplay":
        _wait_for_line(log_path, offset, FIRST_STEP, child)
        first = time.monotonic() - t
        stop = time.monotonic()
        child.proc.send_signal(signal.SIGTERM)
        rc = child.proc.wait(300)
        out = {"first_step": first, "stop": time.monotonic() - stop}
    else:
        rc = child.proc.wait(300)
        out = {"exit": time.monotonic() - t}
    if rc not in (exits.OK, exits.NOT_ENOUGH_ROWS if name == "shuffle" else exits.OK):
        raise RuntimeError(f"{name} exited {rc}:\n{child.tail(20)}")
    return out


def _measure_stages(names: list[str], base: BaseDir, s: S.LoopSettings, fork: bool, repeats: int) -> dict:
    runs = {n: [_run_stage(n, base, s, fork) for _ in range(repeats)] for n in names}
    way = "warm" if fork else "fresh"
    out: dict = {}
    for n, rs in runs.items():
        for what in rs[0]:
            key = f"{n}_{what.replace('exit', 'start_to_exit')}_{way}_s"
            out[key] = round(statistics.median(r[what] for r in rs), 3)
    out[f"processes_{way}"] = sum(len(rs) for rs in runs.values())
    return out


def _interpreter_seconds(code: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.monotonic()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.monotonic() - t)
    return round(statistics.median(times), 3)


def _prepare(root: str, model_kind: str, board_size: int) -> tuple[BaseDir, S.LoopSettings]:
    """A loop's BASEDIR before its first cycle, with the first model also in models/ (self-play loads a net)."""
    s = S.LoopSettings(name_prefix="bench", model_kind=model_kind, board_size=board_size, threads=1, seed=1)
    s.check()
    base = BaseDir.open(root)
    sync.setup(base, s, fork=True)  # the model is made in a child: this process forks stages later
    shutil.copytree(layout.loop_init_model(root), os.path.join(base.models, f"bench-{model_kind}-s0-d0"))
    return base, s


def measure(args: argparse.Namespace) -> dict:
    names = _stages(args.stages)
    if args.repeats < 1 or not args.cycle_seconds > 0:
        raise UserError(f"--repeats {args.repeats}, --cycle-seconds {args.cycle_seconds:g}: need at least 1 and > 0")
    out: dict = {"model_kind": args.model_kind, "board_size": args.board_size, "repeats": args.repeats,
                 "stages": names, "cycle_s": args.cycle_seconds,
                 "python_s": _interpreter_seconds("pass", args.repeats),
                 "import_torch_s": _interpreter_seconds("import torch", args.repeats)}
    with tempfile.TemporaryDirectory(prefix="zeroloop-bench-startup-") as tmp:
        base, s = _prepare(tmp, args.model_kind, args.board_size)
        out.update(_measure_stages(names, base, s, False, args.repeats))
        out["warm_up_s"] = round(forking.warm_up(S.placement(base, s).config_file("selfplay")), 3)
        out.update(_measure_stages(names, base, s, True, args.repeats))
    for way in ("fresh", "warm"):
        stages = {k: v for k, v in out.items() if k.endswith(f"_{way}_s") and not k.startswith("report_")}
        figures = list(stages.values())
        starts = [v for k, v in stages.items() if "first_step" in k or "start_to" in k]
        out[f"fixed_cost_{way}_s"] = round(sum(figures), 3)
        out[f"fixed_share_{way}"] = round(sum(figures) / args.cycle_seconds, 4)
        out[f"max_start_to_first_step_{way}_s"] = max(starts, default=0.0)
    out["warm_over_fresh"] = round(out["fixed_cost_warm_s"] / max(out["fixed_cost_fresh_s"], 1e-9), 3)
    return out
