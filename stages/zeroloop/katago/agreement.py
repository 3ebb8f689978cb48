"""Do two reports of a position's net outputs agree? (zeroloop's, KataGo's, the reference's)

A report is a dict as ``engine.parse_raw_nn`` returns (the numbers
``kata-raw-nn`` prints): the tolerances below are what KataGo's printing
(6 decimals for probabilities, 7 for ownership, 3 for the lead) and float32
arithmetic in a different order (Eigen vs torch) allow. ``zeroloop_views``
evaluates positions with zeroloop's own evaluator and states them as
KataGo reports them (``netexport.engine_view``).
"""

from __future__ import annotations

import numpy as np

from zeroloop.go.game import WHITE
from zeroloop.katago import netexport, positions
from zeroloop.nn.evaluator import NetEvaluator
from zeroloop.nn.model import Net

TOLERANCE = {"whiteWin": 1e-4, "whiteLoss": 1e-4, "noResult": 1e-4, "policy": 1e-4, "policyPass": 1e-4,
             "whiteOwnership": 1e-4, "whiteLead": 5e-3, "whiteScoreSelfplay": 5e-3}


def differences(expected: dict, got: dict) -> dict[str, float]:
    """Largest absolute difference per key of TOLERANCE; illegal points (NaN in KataGo's policy) must be 0 in ours."""
    out = {}
    for key in TOLERANCE:
        a = np.asarray(expected[key], dtype=np.float64)
        b = np.asarray(got[key], dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"{key}: shapes {a.shape} and {b.shape} differ")
        a, b = np.nan_to_num(a, nan=0.0), np.nan_to_num(b, nan=0.0)
        out[key] = float(np.max(np.abs(a - b))) if a.size else 0.0
    return out


def worst(diffs: list[dict[str, float]]) -> dict[str, float]:
    return {k: max(d[k] for d in diffs) for k in TOLERANCE} if diffs else {}


def within_tolerance(diff: dict[str, float]) -> list[str]:
    """The keys whose difference exceeds TOLERANCE (empty: agreement)."""
    return [k for k, v in diff.items() if not v <= TOLERANCE[k]]


def zeroloop_views(net: Net, pos_list: list[dict]) -> list[dict]:
    """zeroloop's evaluation of each position, as KataGo would report it for the exported net."""
    ev = NetEvaluator(net, jit=False)
    views = []
    for pos in pos_list:
        game, spatial, glob, legal = positions.encode(pos, net.pos_len)
        e = ev.evaluate(spatial[None], glob[None])
        views.append(netexport.engine_view(e.policy[0], e.value[0], float(e.score[0]), e.ownership[0], legal,
                                           game.size, pos["ko_rule"] == "simple", game.to_move == WHITE))
    return views
