"""KataGo's forward pass over a parsed model file, and its output post-processing.

A second implementation of what the engine computes, written from KataGo's
C++ (``eigenbackend.cpp`` for the layers, ``nneval.cpp`` for turning raw
outputs into what ``kata-raw-nn`` prints), sharing no code with zeroloop's
net. It reads only a ``modelformat.Model``, so a test can check an exported
file against figures the engine gave without the engine at hand.

Layer semantics (batch-norm nets): every norm is the merged per-channel
affine, then the activation, then the board mask; global pooling gives mean,
mean * (sqrt(area) - 14) / 10 and the max over the board; the value head
pools mean, mean * (sqrt(area) - 14) / 10 and mean * ((sqrt(area) - 14)^2 /
100 - 0.1). Boards smaller than the input grid sit top-left, masked by
input plane 0.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as TF

from zeroloop.katago import modelformat as F


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _act(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "ACTIVATION_RELU":
        return TF.relu(x)
    if kind == "ACTIVATION_MISH":
        return TF.mish(x)
    if kind == "ACTIVATION_SILU":
        return TF.silu(x)
    return x


def _bn_act(x: torch.Tensor, bn: F.BatchNorm, act: F.Activation, mask: torch.Tensor) -> torch.Tensor:
    scale, shift = bn.affine()
    return _act(x * _t(scale).view(1, -1, 1, 1) + _t(shift).view(1, -1, 1, 1), act.kind) * mask


def _conv(x: torch.Tensor, c: F.Conv) -> torch.Tensor:
    return TF.conv2d(x, _t(c.weight), padding=c.weight.shape[-1] // 2)


def _gpool(x: torch.Tensor, mask: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    mean = x.sum(dim=(2, 3)) / area
    peak = (x + (mask - 1.0)).amax(dim=(2, 3))
    return torch.cat([mean, mean * (area.sqrt() - 14.0) * 0.1, peak], dim=1)


def _value_pool(x: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    mean = x.sum(dim=(2, 3)) / area
    s = area.sqrt() - 14.0
    return torch.cat([mean, mean * s * 0.1, mean * (s * s * 0.01 - 0.1)], dim=1)


def _linear(x: torch.Tensor, m: F.MatMul, b: F.MatBias | None = None) -> torch.Tensor:
    return TF.linear(x, _t(m.weight), None if b is None else _t(b.bias))


def forward(model: F.Model, spatial: np.ndarray, glob: np.ndarray) -> dict[str, np.ndarray]:
    """Raw outputs for inputs (N, num_spatial, H, W) and (N, num_global).

    Returns ``policy`` (N, C, H*W+1) logits (points row-major, then pass),
    ``value`` (N, 3) logits, ``misc`` (N, 4 or 6) raw score outputs,
    ``ownership`` (N, H, W) pre-tanh.
    """
    with torch.no_grad():
        x_in = _t(spatial)
        mask = x_in[:, 0:1]
        area = mask.sum(dim=(2, 3)).clamp(min=1.0)
        t = model.trunk
        x = _conv(x_in, t.initial_conv) + _linear(_t(glob), t.initial_matmul).unsqueeze(-1).unsqueeze(-1)
        for b in t.blocks:
            h = _bn_act(x, b.pre_bn, b.pre_act, mask)
            if isinstance(b, F.GPoolBlock):
                g = _bn_act(_conv(h, b.conv_gpool), b.gpool_bn, b.gpool_act, mask)
                r = _conv(h, b.conv_regular) + _linear(_gpool(g, mask, area), b.gpool_to_bias).unsqueeze(-1).unsqueeze(-1)
            else:
                r = _conv(h, b.conv1)
            x = x + _conv(_bn_act(r, b.mid_bn, b.mid_act, mask), b.conv2)
        x = _bn_act(x, t.tip_bn, t.tip_act, mask)

        p = model.policy
        g = _bn_act(_conv(x, p.g1_conv), p.g1_bn, p.g1_act, mask)
        pooled = _gpool(g, mask, area)
        p1 = _conv(x, p.p1_conv) + _linear(pooled, p.gpool_to_bias).unsqueeze(-1).unsqueeze(-1)
        board = _conv(_bn_act(p1, p.p1_bn, p.p1_act, mask), p.p2_conv)
        if p.pass_bias is not None:
            passes = _linear(_act(_linear(pooled, p.pass_mul, p.pass_bias), p.pass_act.kind), p.pass_mul2)
        else:
            passes = _linear(pooled, p.pass_mul)
        policy = torch.cat([board.flatten(2), passes.unsqueeze(-1)], dim=2)

        v = model.value
        v1 = _bn_act(_conv(x, v.v1_conv), v.v1_bn, v.v1_act, mask)
        hidden = _act(_linear(_value_pool(v1, area), v.v2_mul, v.v2_bias), v.v2_act.kind)
        value = _linear(hidden, v.v3_mul, v.v3_bias)
        misc = _linear(hidden, v.sv3_mul, v.sv3_bias)
        ownership = _conv(v1, v.ownership_conv)[:, 0]
    return {"policy": policy.numpy(), "value": value.numpy(), "misc": misc.numpy(), "ownership": ownership.numpy()}


def _softplus(x: float) -> float:
    return float(np.logaddexp(0.0, x))


def postprocess(model: F.Model, raw: dict[str, np.ndarray], i: int, legal: np.ndarray, size: int,
                ko_simple: bool, mover_white: bool, optimism: float = 0.0) -> dict:
    """Row i of ``forward``'s raw outputs as ``kata-raw-nn`` reports them (nneval.cpp, version >= 14).

    ``legal`` (H*W+1) bool marks the legal moves (area scoring assumed, as zeroloop plays).
    """
    logits = raw["policy"][i].astype(np.float64)
    pol = logits[0] if logits.shape[0] == 1 else logits[0] + (logits[1] - logits[0]) * optimism
    pol = np.where(legal, pol, -np.inf)
    e = np.exp(pol - pol.max())
    probs = e / e.sum()
    win, loss, nr = (float(x) for x in raw["value"][i])
    if not ko_simple:
        nr -= 100000.0
    z = np.exp(np.array([win, loss, nr]) - max(win, loss, nr))
    if not ko_simple:
        z[2] = 0.0
    win, loss, nr = z / z.sum()
    mult = model.multipliers
    misc = raw["misc"][i].astype(np.float64)
    score = misc[0] * mult["score_mean"] * (1.0 - nr)
    lead = misc[2] * mult["lead"] * (1.0 - nr)
    stdev = _softplus(misc[1]) * mult["score_stdev"]
    vtime = _softplus(misc[3]) * mult["variance_time"]
    value_err = _softplus(misc[4] * 0.5) * np.sqrt(mult["shortterm_value_error"])
    score_err = _softplus(misc[5] * 0.5) * np.sqrt(mult["shortterm_score_error"])
    sign = 1.0 if mover_white else -1.0
    if not mover_white:
        win, loss = loss, win
    h, w = raw["ownership"].shape[1:]
    return {"whiteWin": win, "whiteLoss": loss, "noResult": nr, "whiteLead": sign * lead,
            "whiteScoreSelfplay": sign * score, "scoreStdev": stdev, "varTimeLeft": vtime,
            "shorttermWinlossError": value_err, "shorttermScoreError": score_err,
            "policy": probs[:-1].reshape(h, w)[:size, :size], "policyPass": float(probs[-1]),
            "whiteOwnership": sign * np.tanh(raw["ownership"][i][:size, :size].astype(np.float64))}
