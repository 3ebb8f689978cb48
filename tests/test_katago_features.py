"""Feature version 2 equals KataGo's inputs v7: KataGo's engine and zeroloop agree on a net that reads them.

tests/fixtures/katago_raw_nn_v7.json holds what KataGo 1.17's ``kata-raw-nn``
reported for a random-weight zeroloop net of feature version 2 (every input
weighted, ladder and area planes included) on positions with working and
broken ladders, escapes, pass-alive areas and a pass, and on random
positions (``tools/katago_fixture.py --features katago-v7`` wrote it). The
net is exported again here and zeroloop's evaluator must give KataGo's
figures; that zeroing any one of the new inputs breaks the agreement shows
the positions test every one of them. The ``katago`` test runs the real
engine where KATAGO names one.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from zeroloop import features
from zeroloop.go.game import WHITE
from zeroloop.katago import agreement, netexport, positions
from zeroloop.nn import modelfile
from zeroloop.nn.evaluator import NetEvaluator
from zeroloop.nn.model import random_init_model

FIXTURE = Path(__file__).parent / "fixtures" / "katago_raw_nn_v7.json"
NEW_PLANES = (14, 15, 16, 17, 18, 19)
NEW_GLOBALS = (14,)


@pytest.fixture(scope="module")
def fixture() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def net(fixture):
    m = fixture["model"]
    return random_init_model(m["config"], m["pos_len"], seed=m["seed"], feature_version=m["feature_version"])


def _katago(entry: dict) -> dict:
    k = dict(entry["katago"])
    k["policy"] = np.array([[np.nan if v is None else v for v in row] for row in k["policy"]])
    k["whiteOwnership"] = np.array(k["whiteOwnership"])
    return k


def _views(net, pos_list, spatial, glob, encoded) -> list[dict]:
    e = NetEvaluator(net, jit=False).evaluate(spatial, glob)
    return [netexport.engine_view(e.policy[i], e.value[i], float(e.score[i]), e.ownership[i], legal, game.size,
                                  p["ko_rule"] == "simple", game.to_move == WHITE)
            for i, (p, (game, _, _, legal)) in enumerate(zip(pos_list, encoded))]


def test_fixture_is_katagos_on_this_net_and_holds_the_hand_made_positions(fixture, net):
    assert fixture["katago_version"].startswith("1.17") and fixture["model"]["feature_version"] == 2
    data = netexport.export_bin_gz(net, fixture["model"]["name"])
    assert hashlib.sha256(gzip.decompress(data)).hexdigest() == fixture["model"]["bin_sha256"], (
        "the exported file changed: rerun tools/katago_fixture.py --features katago-v7 with KATAGO=<engine>")
    hand_made = positions.feature_positions()
    assert [{k: v for k, v in e.items() if k != "katago"} for e in fixture["positions"][:len(hand_made)]] == hand_made


def test_zeroloop_features_and_net_give_katagos_figures(fixture, net):
    pos_list = fixture["positions"]
    encoded = [positions.encode(p, net.pos_len, features.KATAGO_V7) for p in pos_list]
    spatial = np.stack([e[1] for e in encoded])
    glob = np.stack([e[2] for e in encoded])
    expected = [_katago(p) for p in pos_list]
    worst = agreement.worst([agreement.differences(t, o)
                             for t, o in zip(expected, _views(net, pos_list, spatial, glob, encoded))])
    assert not agreement.within_tolerance(worst), worst
    assert worst["policy"] < 2e-6  # as close as version 1's figures (about 6e-7)
    # Each new input is set somewhere and matters: without it, KataGo's figures are out of reach.
    for ch in NEW_PLANES:
        assert spatial[:, ch].any(), f"no fixture position sets plane {ch}"
        cut = spatial.copy()
        cut[:, ch] = 0.0
        off = agreement.worst([agreement.differences(t, o)
                               for t, o in zip(expected, _views(net, pos_list, cut, glob, encoded))])
        assert agreement.within_tolerance(off), f"plane {ch} changes nothing KataGo reports"
    for g in NEW_GLOBALS:
        assert glob[:, g].any()
        cut = glob.copy()
        cut[:, g] = 0.0
        off = agreement.worst([agreement.differences(t, o)
                               for t, o in zip(expected, _views(net, pos_list, spatial, cut, encoded))])
        assert agreement.within_tolerance(off), f"global {g} changes nothing KataGo reports"


def test_model_file_records_the_feature_version(tmp_path, net):
    from zeroloop.storage import BaseDir

    base = BaseDir.open(str(tmp_path))
    path = os.path.join(str(tmp_path), "m")
    modelfile.save_model(base.storage, path, net, modelfile.ModelInfo.for_model(net, "m"))
    d = json.loads(Path(path, modelfile.INFO_FILE).read_text())
    assert (d["feature_version"], d["num_spatial"], d["num_global"], d["config"]["features"]) == (2, 22, 19, 2)
    loaded, info = modelfile.load_model(base.storage, path)
    assert loaded.config.features == 2 and info.feature_version == 2
    # a file whose header and net disagree about the inputs is refused with the reason
    d["feature_version"], d["num_spatial"], d["num_global"] = 1, 12, 10
    Path(path, modelfile.INFO_FILE).write_text(json.dumps(d))
    with pytest.raises(Exception, match="feature_version 1 but the net config reads version 2"):
        modelfile.read_info(base.storage, path)


@pytest.mark.katago
def test_real_engine_agrees_on_ladders_and_areas(tmp_path):
    from zeroloop.katago import engine

    katago = os.environ.get("KATAGO")
    if not katago:
        pytest.skip("set KATAGO to a built katago binary to run this test")
    net = random_init_model("b1c16", 13, seed=7, feature_version=features.KATAGO_V7)
    path = tmp_path / "model.bin.gz"
    path.write_bytes(netexport.export_bin_gz(net, "zeroloop-test-v7"))
    pos = positions.feature_positions() + positions.random_positions(78, [5, 9, 13, 7, 9, 13])
    ours = agreement.zeroloop_views(net, pos)
    with engine.RawNN(katago, str(path)) as kata:
        theirs = [kata.evaluate(p) for p in pos]
    worst = agreement.worst([agreement.differences(t, o) for t, o in zip(theirs, ours)])
    assert not agreement.within_tolerance(worst), worst
