"""A zeroloop net as a KataGo model (``modelformat.Model``) that computes the same.

zeroloop's net has the layout of a batch-norm KataGo net (pre-activation
residual and global-pooling blocks, KataGo's pooling, the v15 pass path,
value pooling, ownership from the value head), so every layer maps to one
KataGo layer with its weights unchanged:

- Inputs: zeroloop's feature version 1 (12 planes and 10 globals) is
  KataGo's v7 planes 0-6, 9-13 and globals 0-8, 18 (``SPATIAL_TO_KATAGO``,
  ``GLOBAL_TO_KATAGO``); the input conv and global matmul get zero weights
  for every other KataGo input (ladders, pass-alive area, encore, scoring,
  tax, button, ...), so whatever KataGo puts there the net computes
  zeroloop's function. Feature version 2 is KataGo's v7 index for index
  (``INPUT_MAPS``), its weights copied as they are.
- Norms: each ``MaskedBatchNorm`` is a KataGo batch-norm layer (mean,
  variance, scale, bias, epsilon), which the engine merges as zeroloop's
  eval mode does.
- Policy: KataGo v15 has two output channels, the policy and the
  short-term-optimistic policy; both are zeroloop's move policy (channel 0),
  so ``policyOptimism`` changes nothing. zeroloop's opponent-reply channel
  is a training target only and is not exported.
- Value: win, loss, draw logits are KataGo's win, loss, no-result logits.
- Score: zeroloop's score is its last layer times 20 (``SCORE_SCALE``);
  KataGo's score mean and lead are the same row with multiplier 20.
- Heads zeroloop lacks are constants (zero weights, a bias chosen so the
  engine reports the value in ``CONSTANT_OUTPUTS``): score stdev, variance
  time, short-term value and score errors.

``engine_view`` states what KataGo then reports for a position, from
zeroloop's own evaluation: the tests and docs/katago.md use it.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch

from zeroloop import features
from zeroloop.katago import modelformat as F
from zeroloop.nn import model as M

VERSION = 15  # the first with a hidden layer on the pass logit, as zeroloop's net has
NUM_SPATIAL = 22  # KataGo's inputs v7
NUM_GLOBAL = 19
SPATIAL_TO_KATAGO = (0, 1, 2, 3, 4, 5, 6, 9, 10, 11, 12, 13)
GLOBAL_TO_KATAGO = (0, 1, 2, 3, 4, 5, 6, 7, 8, 18)
# zeroloop feature version -> (KataGo plane of each zeroloop plane, KataGo global of each zeroloop global)
INPUT_MAPS = {features.FEATURE_VERSION: (SPATIAL_TO_KATAGO, GLOBAL_TO_KATAGO),
              features.KATAGO_V7: (tuple(range(NUM_SPATIAL)), tuple(range(NUM_GLOBAL)))}
MULTIPLIERS = {"td_score": 20.0, "score_mean": M.SCORE_SCALE, "score_stdev": 20.0, "lead": M.SCORE_SCALE,
               "variance_time": 40.0, "shortterm_value_error": 0.25, "shortterm_score_error": 150.0}
# What KataGo reports for the outputs zeroloop has no head for.
CONSTANT_OUTPUTS = {"score_stdev": 10.0, "variance_time": 20.0, "shortterm_value_error": 0.3,
                    "shortterm_score_error": 5.0}


def _softplus_inv(y: float) -> float:
    return math.log(math.expm1(y))


def constant_biases() -> tuple[float, float, float, float]:
    """Raw outputs whose post-processing (nneval.cpp, version >= 14) gives CONSTANT_OUTPUTS."""
    m, c = MULTIPLIERS, CONSTANT_OUTPUTS
    stdev = _softplus_inv(c["score_stdev"] / m["score_stdev"])  # softplus(x) * mult
    vtime = _softplus_inv(c["variance_time"] / m["variance_time"])
    # sqrt(softplus(x/2)^2 * mult) = softplus(x/2) * sqrt(mult)
    value_err = 2.0 * _softplus_inv(c["shortterm_value_error"] / math.sqrt(m["shortterm_value_error"]))
    score_err = 2.0 * _softplus_inv(c["shortterm_score_error"] / math.sqrt(m["shortterm_score_error"]))
    return stdev, vtime, value_err, score_err


def katago_name(name: str) -> str:
    """A model name KataGo accepts (1-96 of A-Z a-z 0-9 _ -): others become '_'."""
    return (re.sub(r"[^A-Za-z0-9_-]", "_", name) or "zeroloop")[:96]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy().copy()


def _bn(name: str, norm: M.MaskedBatchNorm) -> F.BatchNorm:
    return F.BatchNorm(name, float(norm.eps), _np(norm.running_mean), _np(norm.running_var),
                       _np(norm.weight), _np(norm.bias))


def _relu(name: str) -> F.Activation:
    return F.Activation(name, "ACTIVATION_RELU")


def _conv(name: str, conv: torch.nn.Conv2d) -> F.Conv:
    return F.Conv(name, _np(conv.weight))


def _block(name: str, b: M.ResBlock | M.GPoolBlock) -> F.OrdinaryBlock | F.GPoolBlock:
    if isinstance(b, M.GPoolBlock):
        return F.GPoolBlock(name, _bn(f"{name}.norm1", b.norm1), _relu(f"{name}.act1"),
                            _conv(f"{name}.conv1r", b.conv1r), _conv(f"{name}.conv1g", b.conv1g),
                            _bn(f"{name}.normg", b.normg), _relu(f"{name}.actg"),
                            F.MatMul(f"{name}.linear_g", _np(b.linear_g.weight)),
                            _bn(f"{name}.norm2", b.norm2), _relu(f"{name}.act2"), _conv(f"{name}.conv2", b.conv2))
    return F.OrdinaryBlock(name, _bn(f"{name}.norm1", b.norm1), _relu(f"{name}.act1"), _conv(f"{name}.conv1", b.conv1),
                           _bn(f"{name}.norm2", b.norm2), _relu(f"{name}.act2"), _conv(f"{name}.conv2", b.conv2))


def input_map(feature_version: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """KataGo's v7 input indices of a zeroloop feature version's planes and globals; ValueError if it has none."""
    if feature_version not in INPUT_MAPS:
        raise ValueError(f"zeroloop feature version {feature_version} has no mapping to KataGo's inputs v7 "
                         f"(mapped: {', '.join(map(str, sorted(INPUT_MAPS)))})")
    return INPUT_MAPS[feature_version]


def _trunk(net: M.Net) -> F.Trunk:
    cfg = net.config
    to_spatial, to_global = input_map(cfg.features)
    spatial = np.zeros((cfg.trunk, NUM_SPATIAL, 3, 3), np.float32)
    spatial[:, list(to_spatial)] = _np(net.conv_spatial.weight)
    glob = np.zeros((cfg.trunk, NUM_GLOBAL), np.float32)
    glob[:, list(to_global)] = _np(net.linear_global.weight)
    blocks = [_block(f"model.blocks.{i}", b) for i, b in enumerate(net.blocks)]
    widths = (cfg.trunk, cfg.mid, cfg.mid - cfg.gpool, cfg.gpool, cfg.gpool)
    return F.Trunk("trunk", widths, F.Conv("model.conv_spatial", spatial), F.MatMul("model.linear_global", glob),
                   blocks, _bn("model.norm_trunk", net.norm_trunk), _relu("model.act_trunk"))


def _policy(h: M.PolicyHead) -> F.PolicyHead:
    n = "model.policy_head"
    move = _np(h.conv2p.weight)[0]
    move_pass = _np(h.linear_pass2.weight)[0]
    return F.PolicyHead(
        n, _conv(f"{n}.conv1p", h.conv1p), _conv(f"{n}.conv1g", h.conv1g), _bn(f"{n}.normg", h.normg),
        _relu(f"{n}.actg"), F.MatMul(f"{n}.linear_g", _np(h.linear_g.weight)), _bn(f"{n}.norm2", h.norm2),
        _relu(f"{n}.act2"),
        F.Conv(f"{n}.conv2p", np.stack([move, move])),  # policy, and the same as the optimistic policy
        F.MatMul(f"{n}.linear_pass", _np(h.linear_pass.weight)),
        F.MatBias(f"{n}.linear_pass_bias", _np(h.linear_pass.bias)), _relu(f"{n}.act_pass"),
        F.MatMul(f"{n}.linear_pass2", np.stack([move_pass, move_pass])))


def _value(h: M.ValueHead) -> F.ValueHead:
    n = "model.value_head"
    v2 = h.linear2.weight.shape[0]
    score_w, score_b = _np(h.linear_score.weight)[0], float(_np(h.linear_score.bias)[0])
    stdev, vtime, value_err, score_err = constant_biases()
    zero = np.zeros(v2, np.float32)
    misc_w = np.stack([score_w, zero, score_w, zero, zero, zero])  # score mean, stdev, lead, vtime, errors
    misc_b = np.array([score_b, stdev, score_b, vtime, value_err, score_err], np.float32)
    return F.ValueHead(
        n, _conv(f"{n}.conv1v", h.conv1v), _bn(f"{n}.normv", h.normv), _relu(f"{n}.actv"),
        F.MatMul(f"{n}.linear2", _np(h.linear2.weight)), F.MatBias(f"{n}.bias2", _np(h.linear2.bias)),
        _relu(f"{n}.act2"), F.MatMul(f"{n}.linear_value", _np(h.linear_value.weight)),
        F.MatBias(f"{n}.bias_value", _np(h.linear_value.bias)),
        F.MatMul(f"{n}.linear_misc", misc_w), F.MatBias(f"{n}.bias_misc", misc_b),
        _conv(f"{n}.conv_ownership", h.conv_ownership))


def to_katago(net: M.Net, name: str) -> F.Model:
    """The KataGo model (version 15) computing what ``net`` computes in eval mode."""
    to_spatial, to_global = input_map(net.config.features)
    if (len(to_spatial), len(to_global)) != features.shape(net.config.features):
        raise ValueError(f"the KataGo input mapping of feature version {net.config.features} does not cover its inputs")
    return F.Model(katago_name(name), VERSION, NUM_SPATIAL, NUM_GLOBAL, _trunk(net), _policy(net.policy_head),
                   _value(net.value_head), dict(MULTIPLIERS))


def export_bin_gz(net: M.Net, name: str) -> bytes:
    """``model.bin.gz`` bytes for ``net`` (deterministic: the same net gives the same bytes)."""
    return F.to_bin_gz(to_katago(net, name))


def engine_view(policy: np.ndarray, value: np.ndarray, score: float, ownership: np.ndarray, legal: np.ndarray,
                size: int, ko_simple: bool, mover_white: bool) -> dict:
    """What KataGo's ``kata-raw-nn`` reports for the exported net, from zeroloop's evaluation.

    ``policy`` (P*P+1), ``value`` (win, loss, draw), ``score`` and
    ``ownership`` (P, P) are one position's ``NetEvaluator`` outputs (mover's
    view); ``legal`` (P*P+1) bool marks the legal moves. KataGo
    (``nneval.cpp``) renormalises the policy over legal moves; under superko
    rules with area scoring it drops the no-result (here: draw) probability
    and renormalises win and loss; it reports score and lead times (1 -
    no-result), from White's view; ownership from White's view.
    """
    p = np.where(legal, policy.astype(np.float64), 0.0)
    p = p / p.sum()
    win, loss, draw = (float(x) for x in value)
    if not ko_simple:
        win, loss, draw = win / (win + loss), loss / (win + loss), 0.0
    sign = -1.0 if not mover_white else 1.0
    if sign < 0:
        win, loss = loss, win
    own = ownership[:size, :size].astype(np.float64) * sign
    board = p[:-1].reshape(ownership.shape)[:size, :size]
    lead = sign * float(score) * (1.0 - draw)
    return {"whiteWin": win, "whiteLoss": loss, "noResult": draw, "whiteLead": lead, "whiteScoreSelfplay": lead,
            "policy": board, "policyPass": float(p[-1]), "whiteOwnership": own}
