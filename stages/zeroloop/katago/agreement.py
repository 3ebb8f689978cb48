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

TOLERANCE = {"whiteWin": 2e-5, "whiteLoss": 2e-5, "noResult": 2e-5, "policy": 2e-5, "policyPass": 2e-5,
             "whiteOwnership": 2e-5, "whiteLead": 2e-3, "whiteScoreSelfplay": 2e-3}


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
    encoded = [positions.encode(pos, net.pos_len, net.config.features) for pos in pos_list]
    e = NetEvaluator(net, jit=False).evaluate(np.stack([x[1] for x in encoded]), np.stack([x[2] for x in encoded]))
    return [netexport.engine_view(e.policy[i], e.value[i], float(e.score[i]), e.ownership[i], legal, game.size,
                                  pos["ko_rule"] == "simple", game.to_move == WHITE)
            for i, (pos, (game, _, _, legal)) in enumerate(zip(pos_list, encoded))]
