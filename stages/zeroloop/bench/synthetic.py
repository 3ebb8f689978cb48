"""Synthetic but valid training rows, for benchmarks and tests.

Rows pass ``rows.validate`` and look like self-play rows to the trainer (a
full-board mask plane, a policy target that is a distribution over a few
moves, a one-hot opponent move, a decided game result, TD targets that
follow it, +-1 ownership), with random content. ``gameIdN`` numbers rows consecutively from ``first_id`` so
a test can follow each row through a shuffle.
"""

from __future__ import annotations

import numpy as np

from zeroloop import features, layout, rows
from zeroloop.storage import BaseDir


def random_rows(n: int, pos_len: int, rng: np.random.Generator, first_id: int = 0) -> dict[str, np.ndarray]:
    a = rows.empty(n, pos_len)
    area = pos_len * pos_len
    planes = (rng.random((n, features.NUM_SPATIAL, pos_len, pos_len)) < 0.15)
    planes[:, 0] = True  # on board
    a["binaryInputNCHWPacked"][:] = rows.pack_planes(planes)
    a["globalInputNC"][:] = rng.standard_normal((n, features.NUM_GLOBAL)).astype(np.float32) * 0.1
    moves = rng.integers(0, area + 1, size=(n, 4))
    weights = rng.random((n, 4)).astype(np.float32)
    weights /= weights.sum(axis=1, keepdims=True)
    policy = a["policyTargetsNCMove"]
    np.add.at(policy, (np.repeat(np.arange(n), 4), 0, moves.ravel()), weights.ravel())
    policy[np.arange(n), 1, rng.integers(0, area + 1, size=n)] = 1.0
    win = rng.random(n) < 0.5
    gt = a["globalTargetsNC"]
    gt[:, rows.GT_WIN] = win
    gt[:, rows.GT_LOSS] = ~win
    gt[:, rows.GT_SCORE] = np.where(win, 1.0, -1.0) * rng.integers(1, 20, size=n)
    gt[:, [rows.GT_POLICY_WEIGHT, rows.GT_OPP_POLICY_WEIGHT, rows.GT_ROW_WEIGHT, rows.GT_OWNERSHIP_WEIGHT]] = 1.0
    # TD targets (no random draws, so the rest of the rows stay as they were): the result, softened more
    # for the shorter horizons, and a fraction of the final score
    gt[:, rows.GT_TD_WEIGHT] = 1.0
    for h, keep in enumerate((0.8, 0.6, 0.4)):
        col = rows.GT_TD_VALUE + 3 * h
        gt[:, col] = keep * win + (1 - keep) / 2
        gt[:, col + 1] = keep * ~win + (1 - keep) / 2
        gt[:, rows.GT_TD_SCORE + h] = keep * gt[:, rows.GT_SCORE]
    a["valueTargetsNCHW"][:] = np.where(rng.random((n, 1, pos_len, pos_len)) < 0.5, 1, -1).astype(np.int8)
    meta = a["metaNC"]
    meta[:, rows.META_BOARD_SIZE] = pos_len
    meta[:, rows.META_TURN] = rng.integers(0, area, size=n)
    meta[:, rows.META_KOMI_X2] = 14
    meta[:, rows.META_VERSION] = rows.ROW_FORMAT_VERSION
    a["gameIdN"][:] = np.arange(first_id, first_id + n)
    a["modelN"][:] = b"synthetic"
    return a


def write_tdata(base: BaseDir, model: str, num_files: int, rows_per_file: int, pos_len: int,
                rng: np.random.Generator, first_id: int = 0, compress: bool = True) -> int:
    """Write num_files tdata files under selfplay/<model>/tdata; return the next free row id."""
    base.precreate_selfplay(model)
    for i in range(num_files):
        arrays = random_rows(rows_per_file, pos_len, rng, first_id)
        rows.write(base.storage, layout.tdata_file(base.selfplay, model, f"{first_id:012x}"), arrays, compress)
        first_id += rows_per_file
    return first_id
