"""`zeroloop bench rules`: random playouts and batched feature encoding.

- ``moves_per_s_9x9`` / ``moves_per_s_19x19``: random games (uniform legal
  moves that fill no own eye) played to two passes on a fresh board each,
  under positional superko (every position hashed into the table and
  checked), captures included; board set-up is inside the timing.
- ``features_per_s_9x9``: ``features.encode_batch`` over batches of
  realistic 9x9 mid-game positions (random games stopped after 20 to 60
  moves), ko/superko plane included.

Everything runs on one thread. numba compiles (or loads its cache) during a
warm-up that is not timed; its duration is reported as
``warmup_compile_s``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from zeroloop import features as F
from zeroloop.go import board as B


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--batch", type=int, default=256, help="positions per encode_batch call")


def _playouts(size: int, seconds: float) -> tuple[float, int, int]:
    """(moves/s, moves, games) of whole random games for about `seconds`."""
    length = B.board_len(size)
    max_moves = 4 * size * size
    b = np.zeros(length, dtype=np.int64)
    t = B.hist_new(max_moves)
    moves = games = 0
    start = time.perf_counter()
    while True:
        B.init_board(b, size, B.KO_POSITIONAL, False)
        t[:] = 0
        B.record_position(b, t, B.WHITE)
        moves += B.random_game(b, t, max_moves)
        games += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return moves / elapsed, moves, games


def midgame_positions(size: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Boards and superko tables of random games stopped after 20-60 moves."""
    max_moves = 4 * size * size
    boards = np.zeros((count, B.board_len(size)), dtype=np.int64)
    tables = np.zeros((count, len(B.hist_new(max_moves))), dtype=np.int64)
    for i in range(count):
        B.init_board(boards[i], size, B.KO_POSITIONAL, False)
        B.record_position(boards[i], tables[i], B.WHITE)
        B.random_game(boards[i], tables[i], int(rng.integers(20, 61)))
    return boards, tables


def _encoding(seconds: float, batch: int) -> tuple[float, int]:
    rng = np.random.default_rng(1)
    pool = 4 * batch
    boards, tables = midgame_positions(9, pool, rng)
    komis = np.full(pool, 7.0)
    spatial = np.zeros((batch, F.NUM_SPATIAL, 9, 9), dtype=np.float32)
    glob = np.zeros((batch, F.NUM_GLOBAL), dtype=np.float32)
    batches = [np.arange(k * batch, (k + 1) * batch) for k in range(4)]
    for rows in batches:  # one untimed pass: page faults and first touches
        F.encode_batch(boards, tables, komis, rows, spatial, glob)
    done = 0
    start = time.perf_counter()
    while True:
        F.encode_batch(boards, tables, komis, batches[done % 4], spatial, glob)
        done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done * batch / elapsed, done * batch


def measure(args: argparse.Namespace) -> dict:
    if args.seconds <= 0 or args.batch < 1:
        from zeroloop.errors import UserError

        raise UserError("--seconds must be positive and --batch at least 1")
    B.seed(args.seed if args.seed is not None else 12345)
    warm = time.perf_counter()
    _playouts(5, 0.0)
    _encoding(0.0, 8)
    warmup = time.perf_counter() - warm
    m9, moves9, games9 = _playouts(9, args.seconds)
    m19, moves19, games19 = _playouts(19, args.seconds)
    f9, positions = _encoding(args.seconds, args.batch)
    return {
        "moves_per_s_9x9": round(m9),
        "moves_per_s_19x19": round(m19),
        "features_per_s_9x9": round(f9),
        "moves_per_game_9x9": round(moves9 / games9, 1),
        "moves_per_game_19x19": round(moves19 / games19, 1),
        "games_9x9": games9,
        "games_19x19": games19,
        "positions_encoded": positions,
        "encode_batch": args.batch,
        "ko_rule": "positional superko",
        "threads": 1,
        "implementation": "numba",
        "warmup_compile_s": round(warmup, 2),
        "compile_time_excluded": True,
        "target_moves_per_s_9x9": 150_000,
        "target_features_per_s_9x9": 50_000,
        "ratio_moves_9x9_to_target": round(m9 / 150_000, 2),
        "ratio_features_9x9_to_target": round(f9 / 50_000, 2),
    }
