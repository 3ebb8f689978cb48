"""`zeroloop bench nn`: raw batched inference throughput of the evaluator's variants.

For each net size, evaluator variant and batch size it measures positions
per second with ``zeroloop.nn.evaluator.measure_throughput`` (the same call
``bench selfplay`` uses for its raw figure). The machine is shared and
noisy, so variants are interleaved over several rounds and the best round
is kept (interference only ever slows a run down); ratios compare figures
from this run.
"""

from __future__ import annotations

import argparse
import time

from zeroloop import cliflags, runtime
from zeroloop.errors import UserError
from zeroloop.nn.configs import get_config
from zeroloop.nn.evaluator import NetEvaluator, measure_throughput, random_init_model

# name -> NetEvaluator settings; "default" is what self-play gets. The first two are
# the plain model as one would first write it: one forward pass per batch.
UNCHUNKED = 1 << 20
VARIANTS: dict[str, dict] = {
    "eager": dict(fold=False, channels_last=False, jit=False, chunk=UNCHUNKED),
    "channels_last": dict(fold=False, channels_last=True, jit=False, chunk=UNCHUNKED),
    "folded_unchunked": dict(jit=False, chunk=UNCHUNKED),
    "folded": dict(jit=False),
    "default": dict(),
    "bf16": dict(precision="bf16"),
}


def _csv(kind):
    def parse(text: str):
        try:
            return [kind(t) for t in text.split(",") if t]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cliflags.flag(parser, "--nets", type=_csv(str), default=["b4c64", "b6c96"], help="net sizes, comma-separated")
    cliflags.flag(parser, "--board-size", type=int, default=9, help="board size (and pos_len)")
    cliflags.flag(parser, "--batch-sizes", type=_csv(int), default=[64, 128, 256], help="batch sizes")
    cliflags.flag(parser, "--variants", type=_csv(str), default=list(VARIANTS),
                  help=f"evaluator variants ({', '.join(VARIANTS)})")
    cliflags.flag(parser, "--seconds", type=float, default=1.0, help="seconds per measurement")
    cliflags.flag(parser, "--rounds", type=int, default=3, help="interleaved rounds; the best is kept")
    cliflags.flag(parser, "--clock", choices=("wall", "thread"), default="wall",
                  help="wall time, or this thread's CPU time (use with --threads 1; steadier when shared)")
    cliflags.flag(parser, "--padded", action="store_true",
                  help="pad a board one smaller than pos_len, so the masked path runs")


def measure(args: argparse.Namespace) -> dict:
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        raise UserError(f"--variants: unknown {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    if any(b < 1 for b in args.batch_sizes) or args.rounds < 1 or args.seconds <= 0:
        raise UserError("--batch-sizes, --rounds and --seconds must be positive")
    if not 2 <= args.board_size <= 32:
        raise UserError(f"--board-size {args.board_size}: expected 2..32")
    for name in args.nets:
        get_config(name)
    threads = runtime.set_threads(args.threads)
    device = runtime.resolve_device(getattr(args, "device", "auto"))
    result: dict = {"board_size": args.board_size, "threads": threads, "device": str(device),
                    "rounds": args.rounds, "seconds_per_measurement": args.seconds}
    evaluators = {}
    for name in args.nets:
        net = random_init_model(name, args.board_size, seed=0)
        for v in args.variants:
            evaluators[name, v] = NetEvaluator(net, device, max(args.batch_sizes), **VARIANTS[v])
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    board = args.board_size - 1 if args.padded else args.board_size
    result.update(clock=args.clock, boards_played=board)
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for (name, v), ev in evaluators.items():
            for b in args.batch_sizes:
                key = f"{name}_{v}_b{b}"
                t = measure_throughput(ev, b, board_size=board, seconds=args.seconds, warmup=2, clock=clock)
                best[key] = max(best.get(key, 0.0), t.positions_per_s)
    result.update({k: round(v, 1) for k, v in best.items()})
    for name in args.nets:
        for v in args.variants:
            if v == "eager" or "eager" not in args.variants:
                continue
            for b in args.batch_sizes:
                result[f"{name}_{v}_b{b}_vs_eager"] = round(best[f"{name}_{v}_b{b}"] / best[f"{name}_eager_b{b}"], 3)
    return result
