"""`zeroloop bench selfplay`: is the net, not Python, the bottleneck of self-play?

Three phases in one process, each timed after its own warm-up (numba
compilation and torch's first batches excluded):

1. self-play with the null evaluator (uniform policy, no net): the CPU cost
   of search, rules, features and row recording per evaluation
   (``null_evals_per_s``, ``overhead_us_per_eval`` = process CPU time per
   evaluation);
2. self-play with the net (random weights, default b6c96 on 9x9): NN
   evaluations/s, visits/s, moves/s and the mean batch size;
3. raw batched inference of the same evaluator at the same batch size
   (``zeroloop.nn.evaluator.measure_throughput``, the one definition of raw
   throughput): ``ratio`` = phase 2 evaluations/s over phase 3.

``games_per_hour`` is phase 2's moves/s over the mean length of the games
the null phase finished with the same settings (a window of a minute with
the net finishes too few games to measure their length directly).
Self-play writes its rows and SGFs to a temporary directory, as for real.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import numpy as np

from zeroloop import runtime
from zeroloop.config import from_dict
from zeroloop.search.evaluators import NullEvaluator, net_evaluator
from zeroloop.selfplay.config import SelfplayConfig
from zeroloop.selfplay.engine import SelfplayEngine
from zeroloop.selfplay.models import FixedModel, LoadedModel
from zeroloop.storage import Storage


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--net", default="b6c96", help="net size (random weights)")
    parser.add_argument("--board-size", type=int, default=9)
    parser.add_argument("--games", type=int, default=64, help="games at once = batch size")
    parser.add_argument("--visits", type=int, default=100, help="full-search visits")
    parser.add_argument("--cheap-visits", type=int, default=25)
    parser.add_argument("--full-search-prob", type=float, default=0.25)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds of self-play with the net")
    parser.add_argument("--null-seconds", type=float, default=15.0, help="measured seconds with the null evaluator")
    parser.add_argument("--raw-seconds", type=float, default=10.0, help="measured seconds of raw inference")
    parser.add_argument("--warmup-seconds", type=float, default=5.0, help="warm-up before each measurement")


def _config(args: argparse.Namespace) -> SelfplayConfig:
    n = args.board_size
    return from_dict(SelfplayConfig, {
        "num_games": args.games, "board_sizes": [n], "board_size_weights": [1.0], "data_board_len": n,
        "max_visits": args.visits, "cheap_visits": args.cheap_visits, "full_search_prob": args.full_search_prob,
        "max_rows_per_file": 10000, "log_every_seconds": 1e6,
    }, "bench selfplay")


def _measure(engine: SelfplayEngine, warmup: float, seconds: float) -> dict:
    engine.tick()  # compiles (or loads) the search code
    end = time.monotonic() + warmup
    while time.monotonic() < end:
        engine.tick()
    c = engine.counters
    before = (c.nn_evals, c.visits, c.moves, c.steps, c.games_finished, c.game_moves)
    cpu0, t0 = time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        engine.tick()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    evals, visits, moves, steps, games, game_moves = (a - b for a, b in zip(
        (c.nn_evals, c.visits, c.moves, c.steps, c.games_finished, c.game_moves), before))
    engine.shutdown()
    return {"evals_per_s": evals / wall, "visits_per_s": visits / wall, "moves_per_s": moves / wall,
            "cpu_us_per_eval": 1e6 * cpu / max(evals, 1), "mean_batch": evals / max(steps, 1),
            "games": games, "mean_game_length": game_moves / games if games else math.nan}


def measure(args: argparse.Namespace) -> dict:
    threads = runtime.set_threads(args.threads)
    seed = runtime.seed_everything(args.seed if args.seed is not None else 1)
    device = runtime.resolve_device(args.device)
    cfg = _config(args)
    from fsspec.implementations.local import LocalFileSystem

    from zeroloop.nn.evaluator import measure_throughput
    from zeroloop.nn.model import random_init_model

    storage = Storage(LocalFileSystem())
    n = args.board_size
    with tempfile.TemporaryDirectory(prefix="zeroloop-bench-selfplay-") as tmp:
        null_model = LoadedModel("null", NullEvaluator(n))
        engine = SelfplayEngine(cfg, storage, tmp, FixedModel(null_model), np.random.default_rng(seed))
        null = _measure(engine, args.warmup_seconds, args.null_seconds)

        evaluator = net_evaluator(random_init_model(args.net, n, seed=seed), args.net, device, args.games)
        engine = SelfplayEngine(cfg, storage, tmp, FixedModel(LoadedModel(args.net, evaluator)),
                                np.random.default_rng(seed + 1))
        net = _measure(engine, args.warmup_seconds, args.seconds)

    raw = measure_throughput(evaluator.net, args.games, n, seconds=args.raw_seconds)
    length = null["mean_game_length"]
    return {
        "net": args.net,
        "board_size": n,
        "games_at_once": args.games,
        "visits": args.visits,
        "cheap_visits": args.cheap_visits,
        "device": str(device),
        "threads": threads,
        "nn_evals_per_s": round(net["evals_per_s"], 1),
        "raw_evals_per_s": round(raw.positions_per_s, 1),
        "ratio": round(net["evals_per_s"] / raw.positions_per_s, 3),
        "visits_per_s": round(net["visits_per_s"], 1),
        "moves_per_s": round(net["moves_per_s"], 2),
        "games_per_hour": round(3600 * net["moves_per_s"] / length, 1) if length == length else None,
        "mean_batch_size": round(net["mean_batch"], 1),
        "cpu_us_per_eval_with_net": round(net["cpu_us_per_eval"], 1),
        "null_evals_per_s": round(null["evals_per_s"], 1),
        "null_visits_per_s": round(null["visits_per_s"], 1),
        "overhead_us_per_eval": round(null["cpu_us_per_eval"], 2),
        "null_mean_batch_size": round(null["mean_batch"], 1),
        "mean_game_length": round(length, 1) if length == length else None,
        "null_games_finished": null["games"],
        "net_games_finished": net["games"],
    }
