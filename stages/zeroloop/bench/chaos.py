"""`zeroloop bench chaos --json`: the asynchronous loop under injected faults, with the verdict.

Runs ``zeroloop.chaos.harness.ChaosRun`` for ``--duration`` seconds (or
until ``--faults`` faults, with ``--duration`` as a cap) with a fault every
``--interval`` seconds (each stage in turn: SIGKILL, SIGTERM,
SIGSTOP/SIGCONT, SIGINT + restart), then checks the BASEDIR
(``zeroloop.chaos.invariants``) and prints the counts: faults injected and
survived, games reported (SGFs) against games found (tdata rows), lost and
duplicated games, corrupt files, staging leftovers, files quarantined
against corrupt files planted, training monotonicity and gating
consistency; ``ok`` is true when every one of them is clean. The line
``lost games: N, duplicated games: N, corrupt files: N`` also goes to
stderr. The CI test stops after 20 faults (``--faults 20``, about two
minutes), so its counts do not depend on the machine's speed; the long run
(docs/fault-tolerance.md) is ``--duration 1800 --interval 20``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

from zeroloop.chaos.harness import ChaosRun
from zeroloop.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=120.0,
                        help="seconds of faults (then a settle period); with --faults, the most seconds")
    parser.add_argument("--faults", type=int, default=None,
                        help="stop injecting after this many faults (default: run for --duration)")
    parser.add_argument("--interval", type=float, default=5.0, help="mean seconds between faults")
    parser.add_argument("--selfplay-processes", type=int, default=1, help="self-play processes")
    parser.add_argument("--no-gating", action="store_true", help="run without the gatekeeper")
    parser.add_argument("--corrupt-every", type=int, default=7,
                        help="plant a corrupt tdata file with every Nth fault (0: never)")
    parser.add_argument("--basedir", default=None, help="run here and keep it (default: a temporary directory)")


def measure(args: argparse.Namespace) -> dict:
    if args.duration <= 0 or args.interval <= 0 or args.selfplay_processes < 1:
        raise UserError("--duration and --interval must be positive, --selfplay-processes at least 1")
    if args.faults is not None and args.faults < 1:
        raise UserError(f"--faults must be at least 1, got {args.faults}")
    basedir = args.basedir or tempfile.mkdtemp(prefix="zeroloop-chaos-")
    try:
        run = ChaosRun(basedir, duration_s=args.duration, interval_s=args.interval,
                       seed=args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little"),
                       selfplay_processes=args.selfplay_processes, gating=not args.no_gating,
                       corrupt_every=args.corrupt_every, max_faults=args.faults)
        summary = run.run()
    finally:
        if args.basedir is None:
            shutil.rmtree(basedir, ignore_errors=True)
    print(summary.line(), file=sys.stderr, flush=True)
    out = summary.to_dict()
    out["basedir"] = args.basedir
    return out
