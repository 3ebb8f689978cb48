"""KataGo nets as zeroloop models: an imported net computes what KataGo's layers compute.

Without KataGo: a random model of version 8 (the g170 nets' layout: 5x5
input conv, a linear pass logit, fixup-style norms without scale) and one
of version 15 (zeroloop's own export) are imported and evaluated by
zeroloop's net, against ``reference`` (KataGo's forward pass written from
its C++, sharing no code with zeroloop's net). The ``katago`` test imports
KataGo's real g170 b6c96 net (from KataGo's source tree next to KATAGO)
and compares zeroloop's evaluator with the engine's ``kata-raw-nn``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from zeroloop import features
from zeroloop.katago import agreement, modelformat, netexport, netimport, positions, reference
from zeroloop.nn.model import random_init_model

G170 = "g170-b6c96-s175395328-d26788732.bin.gz"


def _inputs(pos_len: int):
    pos = positions.feature_positions() + positions.random_positions(11, [5, 9, pos_len])
    enc = [positions.encode(p, pos_len, features.KATAGO_V7) for p in pos]
    return np.stack([e[1] for e in enc]), np.stack([e[2] for e in enc])


def _compare(model: modelformat.Model, net, spatial, glob) -> dict[str, float]:
    ref = reference.forward(model, spatial, glob)
    with torch.no_grad():
        out = net(torch.from_numpy(spatial), torch.from_numpy(glob))
    n = len(spatial)
    on_board = np.concatenate([spatial[:, 0].reshape(n, -1), np.ones((n, 1), np.float32)], axis=1) > 0
    mult = model.multipliers["score_mean"]
    return {"policy": float(np.abs(out.policy[:, 0].numpy() - ref["policy"][:, 0])[on_board].max()),
            "value": float(np.abs(out.value.numpy() - ref["value"]).max()),
            "score": float(np.abs(out.score.numpy() - ref["misc"][:, 0] * mult).max()),
            "ownership": float(np.abs(out.ownership.numpy() - ref["ownership"]).max())}


def _g170_like(seed: int) -> modelformat.Model:
    """A random version-8 model shaped as KataGo's g170 b6c96 (smaller): from a random zeroloop net's export."""
    net = random_init_model("b2c32", 9, seed=seed, feature_version=features.KATAGO_V7)
    m = netexport.to_katago(net, "g170-like")
    rng = np.random.default_rng(seed)
    t = m.trunk
    conv5 = rng.standard_normal((t.initial_conv.weight.shape[0], 22, 5, 5)).astype(np.float32) * 0.1
    t.initial_conv = modelformat.Conv(t.initial_conv.name, conv5)
    for bn in [b for blk in t.blocks for b in (blk.pre_bn, blk.mid_bn)] + [t.tip_bn]:
        bn.scale = None  # fixup-style: no scale
        bn.epsilon = 1e-20
        bn.mean = np.zeros_like(bn.mean)
        bn.variance = np.ones_like(bn.variance)
    p = m.policy
    g = p.g1_conv.weight.shape[0]
    p.p2_conv = modelformat.Conv(p.p2_conv.name, p.p2_conv.weight[:1])
    p.pass_mul = modelformat.MatMul(p.pass_mul.name, rng.standard_normal((1, 3 * g)).astype(np.float32) * 0.3)
    p.pass_bias = p.pass_act = p.pass_mul2 = None
    v = m.value
    v.sv3_mul = modelformat.MatMul(v.sv3_mul.name, v.sv3_mul.weight[:4])
    v.sv3_bias = modelformat.MatBias(v.sv3_bias.name, v.sv3_bias.bias[:4])
    m = dataclasses.replace(m, version=8, multipliers=dict(modelformat.DEFAULT_MULTIPLIERS))
    return modelformat.read_bytes(modelformat.to_bin_gz(m))  # what a file of it reads back as


def test_version_8_net_with_5x5_input_and_linear_pass_imports_exactly():
    model = _g170_like(3)
    assert model.version == 8 and model.policy.pass_bias is None
    net = netimport.import_model(model, 9)
    assert net.config.input_kernel == 5 and net.config.features == features.KATAGO_V7
    diff = _compare(model, net, *_inputs(9))
    assert max(diff.values()) < 5e-5, diff


def test_zeroloop_export_imports_back_to_the_same_function():
    net = random_init_model("b1c16", 9, seed=4, feature_version=features.KATAGO_V7)
    back = netimport.import_bytes(netexport.export_bin_gz(net, "rt"), 9)
    spatial, glob = _inputs(9)
    with torch.no_grad():
        a = net(torch.from_numpy(spatial), torch.from_numpy(glob))
        b = back(torch.from_numpy(spatial), torch.from_numpy(glob))
    # every output but the opponent-reply policy (a training target the export leaves out)
    np.testing.assert_allclose(a.policy[:, 0].numpy(), b.policy[:, 0].numpy(), atol=2e-5)
    for x, y in zip(a[1:], b[1:]):
        np.testing.assert_allclose(x.numpy(), y.numpy(), atol=2e-5)


def test_models_zeroloop_cannot_represent_are_refused_with_the_reason():
    model = _g170_like(5)
    model.trunk.blocks[0].pre_act = modelformat.Activation("a", "ACTIVATION_MISH")
    with pytest.raises(ValueError, match="activation ACTIVATION_MISH, zeroloop's net uses ReLU"):
        netimport.import_model(model, 9)
    model = _g170_like(5)
    model = dataclasses.replace(model, num_spatial=12)
    with pytest.raises(ValueError, match="zeroloop reads KataGo's inputs v7"):
        netimport.import_model(model, 9)


def test_import_cli_writes_a_model_that_loads_and_refuses_bad_files(tmp_path):
    src = tmp_path / "k.bin.gz"
    src.write_bytes(modelformat.to_bin_gz(_g170_like(6)))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "stages")}
    r = subprocess.run([sys.executable, "-m", "zeroloop", "import-katago-model", str(src), str(tmp_path / "m"),
                        "--pos-len", "9"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    assert info["feature_version"] == 2 and info["config"]["input_kernel"] == 5
    from zeroloop.nn import modelfile
    from zeroloop.storage import open_location

    storage, path = open_location(str(tmp_path / "m"))
    net, _ = modelfile.load_model(storage, path)
    diff = _compare(modelformat.read_bytes(src.read_bytes()), net, *_inputs(9))
    assert max(diff.values()) < 5e-5, diff
    (tmp_path / "bad.bin.gz").write_bytes(b"not a model")
    r = subprocess.run([sys.executable, "-m", "zeroloop", "import-katago-model", str(tmp_path / "bad.bin.gz"),
                        str(tmp_path / "m2")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0 and "bad.bin.gz" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.katago
def test_katagos_g170_net_evaluated_by_zeroloop_agrees_with_the_engine():
    from zeroloop.katago import engine

    katago = os.environ.get("KATAGO")
    if not katago:
        pytest.skip("set KATAGO to a built katago binary to run this test")
    path = Path(katago).resolve().parents[1] / "tests" / "models" / G170
    if not path.exists():
        pytest.skip(f"KataGo's test model {G170} is not in the source tree next to KATAGO")
    net = netimport.import_bytes(path.read_bytes(), 19)
    pos = positions.feature_positions() + positions.random_positions(5, [9, 13, 19, 7])
    ours = agreement.zeroloop_views(net, pos)
    with engine.RawNN(katago, str(path)) as kata:
        theirs = [kata.evaluate(p) for p in pos]
    worst = agreement.worst([agreement.differences(t, o) for t, o in zip(theirs, ours)])
    worst.pop("whiteLead")  # the g170 nets' separate lead output has no zeroloop head
    assert not agreement.within_tolerance(worst), worst
