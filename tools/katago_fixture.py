#!/usr/bin/env python3
"""Ask KataGo's engine for its raw net outputs on a zeroloop net; write the figures as a test fixture.

    KATAGO=/path/to/katago python tools/katago_fixture.py [--out tests/fixtures/katago_raw_nn.json]
    KATAGO=/path/to/katago python tools/katago_fixture.py --features katago-v7   # katago_raw_nn_v7.json

Builds a deterministic random zeroloop net (``random_init_model``: every
weight and norm statistic random, so every layer matters), exports it with
``zeroloop.katago.netexport`` to a temporary ``model.bin.gz``, sets up random
positions of several board sizes and rule sets in ``katago gtp`` and records
``kata-raw-nn``'s policy, value, score and ownership for each. It compares
them with zeroloop's own evaluator and exits 1 if any differs by more than
``agreement.TOLERANCE``. It never builds KataGo: bring a built engine (see
docs/katago.md). tests/test_katago_export.py reads the fixture back.

With ``--features katago-v7`` the net reads KataGo's inputs v7 (zeroloop's
feature version 2: ladders, area, pass-ends-game included) and the
positions are ``positions.feature_positions`` (ladders, breakers, escapes,
pass-alive areas, a pass) and fewer random ones;
tests/test_katago_features.py reads that fixture back.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "stages"))

from zeroloop import features  # noqa: E402
from zeroloop.katago import agreement, engine, netexport, positions  # noqa: E402
from zeroloop.nn.model import random_init_model  # noqa: E402

CONFIG, POS_LEN, SEED, POSITIONS_SEED = "b2c32", 19, 16, 1616
SIZES = [5] * 16 + [7] * 15 + [9] * 14 + [13] * 9 + [19] * 6
MODEL_NAME = "zeroloop-fixture-b2c32"
# feature version 2 (KataGo's v7): the hand-made positions and these random ones
V7_SIZES = [5] * 4 + [7] * 4 + [9] * 6 + [13] * 4 + [19] * 2
V7_MODEL_NAME = "zeroloop-fixture-b2c32-v7"


def fixture_positions(feature_version: int) -> list[dict]:
    """The positions a fixture of this feature version holds (deterministic)."""
    if feature_version == features.KATAGO_V7:
        return positions.feature_positions() + positions.random_positions(POSITIONS_SEED, V7_SIZES)
    return positions.random_positions(POSITIONS_SEED, SIZES)


def _json_array(a) -> list:
    return [[None if math.isnan(v) else v for v in row] for row in a.tolist()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--katago", default=os.environ.get("KATAGO"), help="the katago binary (default: $KATAGO)")
    ap.add_argument("--features", default="zeroloop", help="the net's feature set: zeroloop or katago-v7")
    ap.add_argument("--out", default=None,
                    help="default tests/fixtures/katago_raw_nn.json (katago_raw_nn_v7.json for katago-v7)")
    args = ap.parse_args()
    if not args.katago:
        ap.error("name the engine with --katago or KATAGO=")
    try:
        version = features.parse(args.features)
    except ValueError as e:
        ap.error(str(e))
    v7 = version == features.KATAGO_V7
    args.out = args.out or str(REPO / "tests" / "fixtures" / ("katago_raw_nn_v7.json" if v7 else "katago_raw_nn.json"))
    name = V7_MODEL_NAME if v7 else MODEL_NAME
    net = random_init_model(CONFIG, POS_LEN, seed=SEED, feature_version=version)
    data = netexport.export_bin_gz(net, name)
    pos_list = fixture_positions(version)
    ours = agreement.zeroloop_views(net, pos_list)
    with tempfile.TemporaryDirectory() as tmp:
        model_path = os.path.join(tmp, "model.bin.gz")
        Path(model_path).write_bytes(data)
        start = time.time()
        with engine.RawNN(args.katago, model_path) as kata:
            katago_version = kata.version()
            theirs = [kata.evaluate(p) for p in pos_list]
        seconds = time.time() - start
    diffs = [agreement.differences(t, o) for t, o in zip(theirs, ours)]
    worst = agreement.worst(diffs)
    bad = agreement.within_tolerance(worst)
    sizes = sorted({p["size"] for p in pos_list})
    print(f"KataGo {katago_version}: {len(pos_list)} positions (sizes {sizes}) in {seconds:.1f}s")
    for k, v in worst.items():
        print(f"  {k:<20} max |KataGo - zeroloop| = {v:.2e} (tolerance {agreement.TOLERANCE[k]:.0e})")
    fixture = {
        "about": "kata-raw-nn 0 0 outputs of KataGo on a zeroloop net exported by zeroloop.katago.netexport; "
                 "written by tools/katago_fixture.py",
        "katago_version": katago_version,
        "model": {"config": CONFIG, "pos_len": POS_LEN, "seed": SEED, "name": name,
                  **({"feature_version": version} if v7 else {}),
                  "bin_sha256": hashlib.sha256(gzip.decompress(data)).hexdigest()},
        "max_difference_to_zeroloop": worst,
        "positions": [
            {**p, "katago": {**{k: t[k] for k in engine.SCALARS}, "policyPass": t["policyPass"],
                             "policy": _json_array(t["policy"]), "whiteOwnership": t["whiteOwnership"].tolist()}}
            for p, t in zip(pos_list, theirs)
        ],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} KiB)")
    if bad:
        print(f"DISAGREEMENT beyond tolerance in: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
