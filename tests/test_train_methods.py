"""KataGo's training methods behind flags (issue 12): soft policy head and target, learning-rate schedule,
KataGo's weight decay groups, head learning rate, lookahead; and that a net without them is the net of
before (old model files load, the same seed draws the same weights)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from test_train import POS, add_rows, opts, shuffle
from zeroloop import features, modellist
from zeroloop.nn import modelfile
from zeroloop.nn.configs import NetConfig, get_config
from zeroloop.nn.model import build_model
from zeroloop.storage import BaseDir
from zeroloop.train import checkpoint, losses, optim, options
from zeroloop.train.loop import Trainer


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_lr_schedule_parses_katago_format_and_refuses_bad_ones():
    s = options.parse_lr_schedule("(0,2.0),(500K,1.0); (1.5M,0.25)")
    assert s == ((0, 2.0), (500_000, 1.0), (1_500_000, 0.25))
    assert [optim.schedule_factor(n, s) for n in (0, 499_999, 500_000, 2_000_000)] == [2.0, 2.0, 1.0, 0.25]
    assert optim.schedule_factor(10, ()) == 1.0
    for bad in ("", "(10,1.0)", "(0,1.0),(0,2.0)", "(0,-1)", "(0,1.0) junk", "0:1"):
        with pytest.raises(ValueError):
            options.parse_lr_schedule(bad)


def test_soft_target_is_the_fourth_root_renormalised():
    target = torch.tensor([[3.0, 1.0, 0.0, 0.0, 0.0]])  # visit counts; the 4th point is off the board
    on_board = torch.tensor([[1.0, 1.0, 1.0, 0.0, 1.0]])
    soft = losses.soft_target(target, on_board)
    raw = torch.tensor([0.75 + 1e-7, 0.25 + 1e-7, 1e-7, 0.0, 1e-7]) ** 0.25
    torch.testing.assert_close(soft[0], raw / raw.sum())
    assert soft[0, 3] == 0 and soft[0, 0] / soft[0, 1] == pytest.approx(3 ** 0.25)


def test_weight_decay_groups_and_katago_scaling():
    net = build_model("b1c16", POS)
    groups = {name: optim.group_of(name, p) for name, p in net.named_parameters()}
    assert groups["conv_spatial.weight"] == "trunk" and groups["norm_trunk.weight"] == "trunk_gamma"
    assert groups["norm_trunk.bias"] == "trunk_noreg" and groups["policy_head.conv2p.weight"] == "head"
    assert groups["value_head.linear_value.bias"] == "head_noreg"
    flat = optim.weight_decays("sgd", "flat", 128, None, 1.0)
    kata = optim.weight_decays("sgd", "katago", 128, None, 1.0)
    assert flat["trunk"] == pytest.approx(3e-5 * 128) and flat["trunk_gamma"] == 0
    assert kata["trunk"] == pytest.approx(0.00125 * 0.5) and kata["trunk_gamma"] == pytest.approx(kata["trunk"] / 8)
    assert flat["trunk"] / kata["trunk"] == pytest.approx(6.144)  # the "about 6x"
    assert optim.weight_decays("sgd", "katago", 128, None, 0.1)["trunk"] == pytest.approx(0.000625 * 0.1 ** 0.75)
    opt = optim.build_optimizer("sgd", net, 128, None, "katago")
    optim.set_hyperparameters(opt, 1e-3, kata, head_lr_scale=0.5, lookahead_alpha=0.5)
    by_name = {g["group_name"]: g for g in opt.param_groups}
    assert by_name["trunk"]["lr"] == pytest.approx(2e-3) and by_name["head"]["lr"] == pytest.approx(1e-3)
    assert by_name["head"]["weight_decay"] == pytest.approx(1e-6 * 0.5)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(net.parameters()))


def test_lookahead_pulls_back_to_the_slow_weights():
    net = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    la = optim.Lookahead(net, k=2, alpha=0.5)
    with torch.no_grad():
        net.weight.fill_(2.0)
    la.after_step()
    assert net.weight[0, 0].item() == 2.0  # no sync after one step
    with torch.no_grad():
        net.weight.fill_(3.0)
    la.after_step()
    assert net.weight[0, 0].item() == 2.0 and la.slow[0][0, 0].item() == 2.0  # 1 + 0.5 * (3 - 1)
    state = la.state_dict()
    la2 = optim.Lookahead(net, 2, 0.5)
    la2.load_state_dict(state)
    assert la2.steps == 2 and la2.slow[0][0, 0].item() == 2.0


def test_a_net_without_the_soft_head_is_the_net_of_before():
    config = get_config("b1c16")
    assert "soft_policy" not in config.to_dict()  # files of nets without it are unchanged
    assert NetConfig.from_dict(config.to_dict()) == config  # and files from before load
    torch.manual_seed(4)
    plain = build_model(config, POS)
    torch.manual_seed(4)
    soft = build_model(dataclasses.replace(config, soft_policy=True), POS)
    assert NetConfig.from_dict(soft.config.to_dict()).soft_policy is True
    s = soft.state_dict()
    for k, v in plain.state_dict().items():
        torch.testing.assert_close(s[k], v)  # the same seed draws the same weights
    x, g = torch.rand(2, features.NUM_SPATIAL, POS, POS), torch.rand(2, features.NUM_GLOBAL)
    x[:, 0] = 1.0  # the board mask plane
    out, logits = soft.forward_with_soft(x, g)
    assert logits.shape == out.policy.shape
    torch.testing.assert_close(out.policy, soft(x, g).policy)
    with pytest.raises(ValueError, match="no soft policy head"):
        plain.forward_with_soft(x, g)


def test_training_with_every_method_on_resumes_from_a_plain_net(tmp_path):
    """A run of today's net, then the same run with every method on: the net gains the soft head,
    the optimizer starts over, losses stay finite and the export loads with its soft head."""
    base = BaseDir.open(str(tmp_path))
    add_rows(base, 640, 1, 0)
    shuffle(base, 1)
    assert Trainer(base, opts(max_epochs_this_instance=1)).run() == 0
    every = opts(max_epochs_this_instance=2, soft_policy_weight=8.0, weight_decay_mode="katago",
                 head_lr_scale=0.5, lookahead_alpha=0.5, lookahead_k=2,
                 lr_schedule=((0, 1.0), (200, 0.5)))
    t = Trainer(base, every)
    assert t.run() == 0
    assert t.state.global_step_samples == 384 and t.model.config.soft_policy  # 128, then 2 x 128
    lines = [json.loads(x) for x in open(base.path("train", "t", "metrics_train.jsonl"))]
    last = [x for x in lines if "loss_soft_policy" in x][-1]
    assert all(math.isfinite(last[f"loss_{k}"]) for k in ("soft_policy", "soft_opponent_policy", "policy"))
    assert last["lr"] == pytest.approx(optim.SGD_LR_PER_SAMPLE * 0.5)  # the schedule's second point
    payload = checkpoint.load_latest(base.storage, base.path("train", "t"))[0]
    assert payload["lookahead"]["steps"] == 16  # 256 samples / 16 per batch
    newest = sorted(modellist.list_models(base.storage, base.toexport()))[-1][1]
    net, info = modelfile.load_model(base.storage, newest)
    assert info.config.soft_policy and net.soft_policy_head is not None
    assert np.isfinite(sum(float(p.detach().sum()) for p in net.parameters()))
