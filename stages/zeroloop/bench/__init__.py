"""`zeroloop bench NAME --json`: speed measurements, figures from this run.

Each benchmark is a module ``zeroloop.bench.<name>`` with
``add_arguments(parser)`` and ``measure(args) -> dict``; the dict is printed
as one JSON object (``--json``) or as aligned lines. Every ratio a benchmark
reports compares two figures measured in the same run, never a constant.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from zeroloop import cliflags

BENCHMARKS = {
    "rules": "random playouts and batched feature encoding",
    "nn": "raw batched inference throughput of the evaluator's variants",
    "selfplay": "self-play NN evaluations/s against raw batched inference",
    "train": "training from shuffled files against tensors in memory",
    "shuffle": "shuffle rows/s and peak memory growth",
    "preempt": "training rows kept under SIGTERM + restart every 60 s",
    "chaos": "faults injected and survived",
    "learning": "arms trained on the same NN-evaluation budget, then played against each other and GNU Go",
    "startup": "each stage's start-to-first-step and stop, as a fresh interpreter and forked from the warm loop",
    "scale": "recurring costs at 1x, 10x and 100x history (--latency-ms models NFS)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=sorted(BENCHMARKS), help="which benchmark")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    cliflags.add_common(parser, device=True)
    # Each benchmark's own flags are parsed from the rest of the line.
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"zeroloop.bench.{args.name}")
    sub = cliflags.ArgumentParser(prog=f"zeroloop bench {args.name}", description=BENCHMARKS[args.name])
    module.add_arguments(sub)
    # The shared flags may come after the name too (`zeroloop bench rules --json`):
    # those given before it are the defaults.
    sub.add_argument("--json", action="store_true", help="print one JSON object")
    cliflags.add_common(sub, device=True)
    sub.set_defaults(**{k: v for k, v in vars(args).items() if k not in ("rest", "name")})
    opts = sub.parse_args(args.rest)
    result = module.measure(opts)
    if opts.json:
        print(json.dumps(result))
    else:
        width = max(len(k) for k in result) if result else 0
        for k, v in result.items():
            print(f"{k:<{width}}  {v:,.3f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    sys.stdout.flush()
    return 0
