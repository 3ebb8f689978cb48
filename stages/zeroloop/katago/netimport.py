"""A KataGo model (``modelformat.Model``) as a zeroloop ``Net`` that computes the same.

The inverse of ``netexport``: batch-norm KataGo nets of model versions
8-17 with ReLU activations and ordinary or global-pooling residual blocks
(KataGo's g170 nets, version 8, and later batch-norm nets) map layer for
layer onto zeroloop's net, which then reads zeroloop's feature version 2
(KataGo's inputs v7):

- Trunk: the input conv (5x5 in the g170 nets: ``NetConfig.input_kernel``)
  and global matmul, the blocks, the tip norm; a block's widths must be
  zeroloop's (ordinary blocks ``mid`` wide, gpool blocks ``mid - gpool``
  regular channels and ``gpool`` pooled ones).
- Norms: KataGo's mean, variance, scale (1 where absent: the fixup-style
  norms of the g170 nets), bias and epsilon; zeroloop's norms use epsilon
  1e-5, so the variance is shifted by the difference (exact in the merged
  affine both compute).
- Policy: the first output channel is the move policy (zeroloop's channel
  0), the second (versions >= 12) the next one (zeroloop's channel 1, a
  training target only). The pass logit of versions < 15, a linear map of
  the pooled features, becomes zeroloop's hidden pass layer through the
  identity relu(x) - relu(-x) = x; versions >= 15 map directly.
- Value: win, loss, no-result logits; the score mean row (its multiplier
  folded into zeroloop's fixed scale of 20); ownership. KataGo's other
  score outputs (stdev, lead, variance time, short-term errors) have no
  zeroloop head and are dropped.

``import_model`` refuses anything else with the reason (other inputs,
activations, norm kinds, block kinds, inconsistent widths).
"""

from __future__ import annotations

import re

import numpy as np
import torch

from zeroloop import features
from zeroloop.katago import modelformat as F
from zeroloop.nn import model as M
from zeroloop.nn.configs import NetConfig

ZEROLOOP_EPS = 1e-5


class NotImportable(ValueError):
    """A KataGo model zeroloop's net cannot represent."""


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise NotImportable(what)


def _copy(param: torch.Tensor, value: np.ndarray, what: str) -> None:
    value = np.asarray(value, np.float32)
    _check(tuple(param.shape) == value.shape, f"{what}: shape {value.shape}, zeroloop's net has {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(torch.from_numpy(value))


def _norm(dst: M.MaskedBatchNorm, bn: F.BatchNorm, act: F.Activation | None, what: str) -> None:
    if act is not None:
        _check(act.kind == "ACTIVATION_RELU", f"{what}: activation {act.kind}, zeroloop's net uses ReLU")
    c = len(bn.mean)
    variance = np.asarray(bn.variance, np.float64) + float(bn.epsilon) - ZEROLOOP_EPS
    _check(bool(np.all(variance > 0)), f"{what}: variance + epsilon below zeroloop's epsilon {ZEROLOOP_EPS}")
    dst.eps = ZEROLOOP_EPS
    _copy(dst.running_mean, bn.mean, f"{what} mean")
    _copy(dst.running_var, variance.astype(np.float32), f"{what} variance")
    _copy(dst.weight, bn.scale if bn.scale is not None else np.ones(c, np.float32), f"{what} scale")
    _copy(dst.bias, bn.bias if bn.bias is not None else np.zeros(c, np.float32), f"{what} bias")


def config_of(model: F.Model, name: str | None = None) -> NetConfig:
    """The zeroloop net config of a KataGo model's shapes; NotImportable if it has none."""
    _check((model.num_spatial, model.num_global) == features.shape(features.KATAGO_V7),
           f"inputs {model.num_spatial} planes and {model.num_global} globals: zeroloop reads KataGo's inputs v7 "
           f"(22 and 19) only")
    t = model.trunk
    trunk = t.initial_conv.weight.shape[0]
    kernel = t.initial_conv.weight.shape[2]
    kinds, mids, gpools = [], set(), set()
    for i, b in enumerate(t.blocks):
        if isinstance(b, F.GPoolBlock):
            kinds.append("gpool")
            gpools.add(b.conv_gpool.weight.shape[0])
            mids.add(b.conv_regular.weight.shape[0] + b.conv_gpool.weight.shape[0])
        elif isinstance(b, F.OrdinaryBlock):
            kinds.append("regular")
            mids.add(b.conv1.weight.shape[0])
        else:
            raise NotImportable(f"block {i} is a {type(b).__name__}: zeroloop's net has ordinary and gpool blocks")
    _check(len(mids) == 1, f"blocks of different inner widths {sorted(mids)}: zeroloop's blocks share one")
    _check(len(gpools) <= 1, f"gpool blocks of different pooled widths {sorted(gpools)}")
    p, v = model.policy, model.value
    g1 = p.g1_conv.weight.shape[0]
    p1 = p.p1_conv.weight.shape[0]
    _check(p1 >= 2 or p.pass_bias is not None, "policy head narrower than 2 channels")
    if p.pass_bias is not None:
        _check(p.pass_mul.weight.shape[0] == p1, f"pass hidden layer {p.pass_mul.weight.shape[0]} wide, zeroloop's "
                                                 f"is the policy head's width {p1}")
    safe = re.sub(r"[^A-Za-z0-9._+=]", "_", name or model.name)[:40] or "katago"
    return NetConfig(safe, tuple(kinds), trunk=trunk, mid=mids.pop(), gpool=gpools.pop() if gpools else 1,
                     policy=p1, policy_gpool=g1, value=v.v1_conv.weight.shape[0],
                     value_hidden=v.v2_mul.weight.shape[0], features=features.KATAGO_V7, input_kernel=kernel)


def import_model(model: F.Model, pos_len: int, name: str | None = None) -> M.Net:
    """zeroloop's net (eval mode) computing what the KataGo model computes (heads zeroloop has)."""
    config = config_of(model, name)
    net = M.Net(config, pos_len)
    t = model.trunk
    _copy(net.conv_spatial.weight, t.initial_conv.weight, "input conv")
    _copy(net.linear_global.weight, t.initial_matmul.weight, "input global matmul")
    for i, (dst, b) in enumerate(zip(net.blocks, t.blocks)):
        w = f"block {i}"
        _norm(dst.norm1, b.pre_bn, b.pre_act, f"{w} first norm")
        if isinstance(b, F.GPoolBlock):
            _copy(dst.conv1r.weight, b.conv_regular.weight, f"{w} regular conv")
            _copy(dst.conv1g.weight, b.conv_gpool.weight, f"{w} gpool conv")
            _norm(dst.normg, b.gpool_bn, b.gpool_act, f"{w} gpool norm")
            _copy(dst.linear_g.weight, b.gpool_to_bias.weight, f"{w} gpool bias matmul")
        else:
            _copy(dst.conv1.weight, b.conv1.weight, f"{w} first conv")
        _norm(dst.norm2, b.mid_bn, b.mid_act, f"{w} second norm")
        _copy(dst.conv2.weight, b.conv2.weight, f"{w} second conv")
    _norm(net.norm_trunk, t.tip_bn, t.tip_act, "trunk tip norm")
    _policy(net.policy_head, model.policy)
    _value(net.value_head, model.value, model.multipliers)
    return net.eval()


def _policy(h: M.PolicyHead, p: F.PolicyHead) -> None:
    _copy(h.conv1p.weight, p.p1_conv.weight, "policy conv")
    _copy(h.conv1g.weight, p.g1_conv.weight, "policy gpool conv")
    _norm(h.normg, p.g1_bn, p.g1_act, "policy gpool norm")
    _copy(h.linear_g.weight, p.gpool_to_bias.weight, "policy gpool bias matmul")
    _norm(h.norm2, p.p1_bn, p.p1_act, "policy norm")
    out = np.zeros(tuple(h.conv2p.weight.shape), np.float32)
    k = min(2, p.p2_conv.weight.shape[0])
    out[:k] = p.p2_conv.weight[:k]
    _copy(h.conv2p.weight, out, "policy output conv")
    hidden, pooled = h.linear_pass.weight.shape
    w1 = np.zeros((hidden, pooled), np.float32)
    b1 = np.zeros(hidden, np.float32)
    w2 = np.zeros((2, hidden), np.float32)
    if p.pass_bias is not None:  # version >= 15: the same hidden layer
        _check(p.pass_act is not None and p.pass_act.kind == "ACTIVATION_RELU", "pass activation is not ReLU")
        w1[:] = p.pass_mul.weight
        b1[:] = p.pass_bias.bias
        k = min(2, p.pass_mul2.weight.shape[0])
        w2[:k] = p.pass_mul2.weight[:k]
    else:  # a linear pass logit per channel c: relu(x) - relu(-x) through two hidden units each
        k = min(2, p.pass_mul.weight.shape[0], hidden // 2)
        for c in range(k):
            w1[2 * c] = p.pass_mul.weight[c]
            w1[2 * c + 1] = -p.pass_mul.weight[c]
            w2[c, 2 * c] = 1.0
            w2[c, 2 * c + 1] = -1.0
    _copy(h.linear_pass.weight, w1, "pass hidden matmul")
    _copy(h.linear_pass.bias, b1, "pass hidden bias")
    _copy(h.linear_pass2.weight, w2, "pass output matmul")


def _value(h: M.ValueHead, v: F.ValueHead, multipliers: dict) -> None:
    _copy(h.conv1v.weight, v.v1_conv.weight, "value conv")
    _norm(h.normv, v.v1_bn, v.v1_act, "value norm")
    _check(v.v2_act.kind == "ACTIVATION_RELU", f"value activation {v.v2_act.kind}, zeroloop's net uses ReLU")
    _copy(h.linear2.weight, v.v2_mul.weight, "value hidden matmul")
    _copy(h.linear2.bias, v.v2_bias.bias, "value hidden bias")
    _copy(h.linear_value.weight, v.v3_mul.weight, "value matmul")
    _copy(h.linear_value.bias, v.v3_bias.bias, "value bias")
    scale = float(multipliers.get("score_mean", M.SCORE_SCALE)) / M.SCORE_SCALE
    _copy(h.linear_score.weight, v.sv3_mul.weight[:1] * scale, "score matmul")
    _copy(h.linear_score.bias, v.sv3_bias.bias[:1] * scale, "score bias")
    _copy(h.conv_ownership.weight, v.ownership_conv.weight, "ownership conv")


def import_bytes(data: bytes, pos_len: int, name: str | None = None, where: str = "<bytes>") -> M.Net:
    """A KataGo ``.bin.gz`` (or ``.bin``) file's net as zeroloop's; ValueError with the reason if it cannot be."""
    return import_model(F.read_bytes(data, where), pos_len, name)

