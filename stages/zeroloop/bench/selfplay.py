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

Phases 2 and 3 alternate in ``--rounds`` short rounds of equal length. On
a shared machine the other processes' load changes within seconds (a batch
took 26 to 1000 ms here while other benchmarks ran), so ``nn_evals_per_s``
and ``raw_evals_per_s`` are the medians of their rounds and ``ratio`` is
theirs; ``ratio_best_rounds`` (best round of each) and ``ratio_of_totals``
(whole windows) are given too. On a quiet machine the three agree.

``games_per_hour`` is phase 2's moves/s over the mean length of the games
the null phase finished with the same settings (a window of a minute with
the net finishes too few games to measure their length directly).
Self-play writes its rows and SGFs to a temporary directory, as for real.

``--features katago-v7`` plays with KataGo's inputs v7 (ladder and area
planes: ``zeroloop.features`` version 2), the null phase and the net alike;
a null phase with the default features runs first in the same process, and
``features_overhead_ratio`` is the v7 overhead per evaluation over it.
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
    parser.add_argument("--nn-precision", choices=("fp32", "fp16", "bf16"), default="fp32",
                        help="the net's arithmetic (self-play's nn_precision)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds of self-play with the net")
    parser.add_argument("--null-seconds", type=float, default=15.0, help="measured seconds with the null evaluator")
    parser.add_argument("--raw-seconds", type=float, default=30.0,
                        help="measured seconds of raw inference (as long as --seconds: best rounds compare fairly)")
    parser.add_argument("--warmup-seconds", type=float, default=5.0, help="warm-up before each measurement")
    parser.add_argument("--features", choices=("zeroloop", "katago-v7"), default="zeroloop",
                        help="the net inputs self-play encodes (katago-v7 also measures the default's null phase)")
    parser.add_argument("--rounds", type=int, default=10,
                        help="alternate self-play and raw inference this many times (load drift hits both)")


def _config(args: argparse.Namespace, features: str | None = None) -> SelfplayConfig:
    n = args.board_size
    return from_dict(SelfplayConfig, {
        "features": features or args.features,
        "num_games": args.games, "board_sizes": [n], "board_size_weights": [1.0], "data_board_len": n,
        "max_visits": args.visits, "cheap_visits": args.cheap_visits, "full_search_prob": args.full_search_prob,
        "max_rows_per_file": 10000, "log_every_seconds": 86400.0,
        "save_games_in_progress": False,  # each phase starts afresh (no adopting the last phase's games)
    }, "bench selfplay")


class _Window:
    """Counters of an engine over timed segments (wall and process CPU time)."""

    FIELDS = ("nn_evals", "visits", "moves", "steps", "games_finished", "game_moves")

    def __init__(self):
        self.totals = dict.fromkeys(self.FIELDS, 0)
        self.wall = 0.0
        self.cpu = 0.0

    def run(self, engine: SelfplayEngine, seconds: float) -> None:
        c = engine.counters
        before = {f: getattr(c, f) for f in self.FIELDS}
        cpu0, t0 = time.process_time(), time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            engine.tick()
        self.wall += time.perf_counter() - t0
        self.cpu += time.process_time() - cpu0
        for f in self.FIELDS:
            self.totals[f] += getattr(c, f) - before[f]

    def rate(self, field: str) -> float:
        return self.totals[field] / self.wall

    @property
    def cpu_us_per_eval(self) -> float:
        return 1e6 * self.cpu / max(self.totals["nn_evals"], 1)

    @property
    def mean_batch(self) -> float:
        return self.totals["nn_evals"] / max(self.totals["steps"], 1)

    @property
    def mean_game_length(self) -> float:
        games = self.totals["games_finished"]
        return self.totals["game_moves"] / games if games else math.nan


def _warm_up(engine: SelfplayEngine, seconds: float) -> None:
    engine.tick()  # compiles (or loads) the search code
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        engine.tick()


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
    rounds = max(1, args.rounds)
    version = cfg.feature_version
    baseline = None
    with tempfile.TemporaryDirectory(prefix="zeroloop-bench-selfplay-") as tmp:
        if args.features != "zeroloop":
            baseline = _null_phase(args, _config(args, "zeroloop"), storage, tmp, seed, 1)
        null = _null_phase(args, cfg, storage, tmp, seed, version)

        evaluator = net_evaluator(random_init_model(args.net, n, seed=seed, feature_version=version), args.net,
                                  device, args.games, args.nn_precision)
        engine = SelfplayEngine(cfg, storage, tmp, FixedModel(LoadedModel(args.net, evaluator)),
                                np.random.default_rng(seed + 1))
        _warm_up(engine, args.warmup_seconds)
        net = _Window()
        raw_positions, raw_seconds = 0, 0.0
        net_rounds, raw_rounds = [], []
        # Short interleaved rounds of equal length: load from other processes comes and goes within
        # seconds, and both figures are sampled under the same load.
        for _ in range(rounds):
            evals, wall = net.totals["nn_evals"], net.wall
            net.run(engine, args.seconds / rounds)
            net_rounds.append((net.totals["nn_evals"] - evals) / (net.wall - wall))
            raw = measure_throughput(evaluator.net, args.games, n, seconds=args.raw_seconds / rounds, warmup=1)
            raw_rounds.append(raw.positions_per_s)
            raw_positions += raw.batches * raw.batch_size
            raw_seconds += raw.seconds
        engine.shutdown()

    med_net, med_raw = float(np.median(net_rounds)), float(np.median(raw_rounds))
    length = null.mean_game_length
    known = not np.isnan(length)
    extra = {}
    if baseline is not None:
        extra = {"null_evals_per_s_zeroloop_features": round(baseline.rate("nn_evals"), 1),
                 "overhead_us_per_eval_zeroloop_features": round(baseline.cpu_us_per_eval, 2),
                 "features_overhead_ratio": round(null.cpu_us_per_eval / baseline.cpu_us_per_eval, 2)}
    return {
        "net": args.net,
        "features": args.features,
        "board_size": n,
        "games_at_once": args.games,
        "visits": args.visits,
        "cheap_visits": args.cheap_visits,
        "device": str(device),
        "nn_precision": args.nn_precision,
        "threads": threads,
        "nn_evals_per_s": round(med_net, 1),
        "raw_evals_per_s": round(med_raw, 1),
        "ratio": round(med_net / med_raw, 3),
        "ratio_best_rounds": round(max(net_rounds) / max(raw_rounds), 3),
        "ratio_of_totals": round(net.rate("nn_evals") / (raw_positions / raw_seconds), 3),
        "nn_evals_per_s_total": round(net.rate("nn_evals"), 1),
        "visits_per_s": round(net.rate("visits"), 1),
        "moves_per_s": round(net.rate("moves"), 2),
        "games_per_hour": round(3600 * net.rate("moves") / length, 1) if known else None,
        "mean_batch_size": round(net.mean_batch, 1),
        "cpu_us_per_eval_with_net": round(net.cpu_us_per_eval, 1),
        "null_evals_per_s": round(null.rate("nn_evals"), 1),
        "null_visits_per_s": round(null.rate("visits"), 1),
        "overhead_us_per_eval": round(null.cpu_us_per_eval, 2),
        "null_mean_batch_size": round(null.mean_batch, 1),
        "mean_game_length": round(length, 1) if known else None,
        "null_games_finished": null.totals["games_finished"],
        "rounds": rounds,
        **extra,
    }


def _null_phase(args, cfg: SelfplayConfig, storage: Storage, tmp: str, seed: int, version: int) -> "_Window":
    """Self-play with the null evaluator (inputs of the feature version) for --null-seconds after a warm-up."""
    engine = SelfplayEngine(cfg, storage, tmp, FixedModel(LoadedModel("null", NullEvaluator(
        args.board_size, feature_version=version))), np.random.default_rng(seed))
    _warm_up(engine, args.warmup_seconds)
    window = _Window()
    window.run(engine, args.null_seconds)
    engine.shutdown()
    return window
