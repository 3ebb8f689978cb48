"""`zeroloop selfplay`: play games with the newest model and write training rows.

    zeroloop selfplay --output-dir BASEDIR/selfplay --models-dir BASEDIR/models \\
        --config cpu|gpu|FILE [--max-games-total N] [--device auto|cpu|cuda[:N]] \\
        [--metrics-port P] [--seed S] [--start-nonce HEX] [--threads N]

Writes ``<output-dir>/<model>/tdata/<hex>.npz`` (+ ``.json`` row count) and
``<output-dir>/<model>/sgfs/<hex>.sgfs``. Games in progress are saved under
``<output-dir>/<model>/inprogress/`` every ``inprogress_save_seconds`` and
at a stop, and a starting process adopts and finishes them
(``zeroloop.selfplay.inprogress``). SIGTERM or SIGINT: start nothing new,
write every finished game, save the games in progress, exit 0.
Each start mixes a fresh nonce into ``--seed`` (logged), so a restarted
process plays new games; ``--start-nonce`` replays a logged start.
``--help-config`` prints every config key with its default and meaning.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import time
import stat

import numpy as np

from zeroloop import config as cfgmod
from zeroloop import metrics, runtime
from zeroloop.cliflags import add_common, flag
from zeroloop.errors import UserError
from zeroloop.selfplay import config as spconfig
from zeroloop.selfplay.config import SelfplayConfig
from zeroloop.selfplay.engine import SelfplayEngine
from zeroloop.selfplay.models import ModelWatcher
from zeroloop.selfplay.writer import sweep_leftovers

log = logging.getLogger("zeroloop.selfplay")

# Every file is written and fsynced when run() returns: `zeroloop selfplay` exits without the
# interpreter's teardown, so that a restart (every pod rollout or preemption) costs less.
FAST_EXIT = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flag(parser, "--output-dir", help="where games go: BASEDIR/selfplay (a path or fsspec URL)")
    flag(parser, "--models-dir", help="where models come from: BASEDIR/models")
    flag(parser, "--config", default="cpu",
         help="self-play config: a TOML/YAML file, or 'cpu' / 'gpu' for the packaged defaults")
    flag(parser, "--max-games-total", type=int, default=None,
         help="start no new game beyond this many (saved games it adopts are finished too); exit once they "
              "are written")
    flag(parser, "--start-nonce", default=None,
         help="replay a logged start: mix this nonce (16 hex digits, from the log) into --seed instead of a "
              "fresh one; without it, every start plays new games even with the same --seed")
    flag(parser, "--help-config", action="store_true", help="print every config key with its default and exit")
    add_common(parser, device=True, metrics=True)


def run(args: argparse.Namespace) -> int:
    if args.help_config:
        print(cfgmod.describe(SelfplayConfig), end="")
        return 0
    if not args.output_dir or not args.models_dir:
        raise UserError("--output-dir and --models-dir are required")
    if args.max_games_total is not None and args.max_games_total < 0:
        raise UserError(f"--max-games-total {args.max_games_total}: must be at least 0")
    _parse_nonce(args.start_nonce)
    config = spconfig.load(args.config)
    stopping: list[str] = []

    def stop(signum, _frame):
        if not stopping:
            log.info("%s: writing finished games, %s games in progress", signal.Signals(signum).name,
                     "saving" if config.save_games_in_progress else "dropping")
        stopping.append(signal.Signals(signum).name)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        _play(args, config, lambda: bool(stopping))
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return 0


def _play(args: argparse.Namespace, config: SelfplayConfig, should_stop) -> None:
    threads = runtime.set_threads(args.threads)
    seed, nonce = runtime.start_seed(args.seed, _parse_nonce(args.start_nonce))
    runtime.seed_everything(seed)
    log.info("seed %d: --seed %s mixed with this start's nonce %016x (--start-nonce %016x replays this start)",
             seed, args.seed if args.seed is not None else "(none)", nonce, nonce)
    device = runtime.resolve_device(args.device)
    from zeroloop.storage import open_location

    out_storage, out_dir = open_location(args.output_dir)
    models_storage, models_dir = open_location(args.models_dir)
    if out_storage.exists(out_dir) and not out_storage.fs.isdir(out_dir):
        raise UserError(f"--output-dir {args.output_dir} is a file, not a directory")
    try:
        out_storage.makedirs(out_dir)
    except OSError as e:
        raise UserError(f"--output-dir {args.output_dir}: cannot create it ({e.strerror or e})") from None
    _check_access(out_storage, out_dir, "--output-dir", write=True)
    # unreadable models would silently mean the random net: refuse instead (a missing dir is the bootstrap)
    _check_access(models_storage, models_dir, "--models-dir", write=False)
    sweep_leftovers(out_storage, out_dir)
    rng = np.random.default_rng(seed)
    watcher = ModelWatcher(models_storage, models_dir, device=device, max_batch=config.num_games,
                           precision=config.nn_precision,
                           random_pos_len=config.data_board_len, max_board_size=config.max_board_size,
                           poll_seconds=config.model_poll_seconds, seed=seed,
                           feature_version=config.feature_version)
    metrics.serve(args.metrics_port)
    log.info("selfplay: %d games at once, boards %s, %d/%d visits (full p=%.2f), device %s, %d threads, seed %d",
             config.num_games, config.board_sizes, config.max_visits, config.cheap_visits, config.full_search_prob,
             device, threads, seed)
    t0 = time.perf_counter()
    engine = SelfplayEngine(config, out_storage, out_dir, watcher, rng, args.max_games_total)
    log.info("engine ready in %.2f s (model %s loaded)", time.perf_counter() - t0,
             engine.models[engine.current].name)
    engine.run(should_stop)


def _parse_nonce(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        nonce = int(text, 16)
    except ValueError:
        nonce = -1
    if not 0 <= nonce < 2**64:
        raise UserError(f"--start-nonce {text!r}: expected up to 16 hex digits, as logged at a start")
    return nonce


def _check_access(storage, path: str, flag: str, write: bool) -> None:
    """UserError if a local directory exists but this process may not list (or write) it."""
    if not storage.local:
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return  # created when needed (models: none yet, the random bootstrap)
    except OSError as e:
        raise UserError(f"{flag} {path}: {e.strerror.lower() if e.strerror else e}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UserError(f"{flag} {path} is a file, not a directory")
    if not os.access(path, os.R_OK | os.X_OK | (os.W_OK if write else 0)):
        raise UserError(f"{flag} {path}: permission denied (self-play must list{' and write' if write else ''} it)")
