"""The KataGo-style residual net that self-play, training and GTP share.

Inputs are ``zeroloop.features`` planes (N, NUM_SPATIAL, P, P) and globals
(N, NUM_GLOBAL). The trunk is a 3x3 conv over the planes plus a linear map
of the globals broadcast over the board, then pre-activation residual blocks
(norm, ReLU, 3x3 conv, twice). In ``gpool`` blocks part of the first conv's
channels are pooled over the board (mean, mean scaled by board width, max)
and mapped to a bias for the rest, so the net sees whole-board facts
(who is ahead, ko threats) at every point.

Board sizes: the board sits top-left in the P x P grid and plane 0 is 1 on
it. Every activation is multiplied by that mask before a conv reads it, so
off-board points act exactly like a conv's zero padding; pooling divides by
the real board area; batchnorm statistics count on-board points only. One
net thus plays every size up to its pos_len, and a 7x7 position padded to
9x9 gives the outputs of the same 7x7 position at P=7.

Normalisation is masked BatchNorm rather than KataGo's fixup: it trains
from scratch at a wide range of learning rates without fixup's careful
scaling, and in inference every norm that follows a conv folds into that
conv (``zeroloop.nn.fold``), so it costs nothing there; the remaining
pre-activation norms are one fused per-channel affine each. The last conv
of each residual branch starts at zero, so a fresh net is its stem plus
heads and deepens as it learns.

Outputs (``NetOutputs``), all float32, from the view of the player to move:
- ``policy`` (N, 2, P*P+1) logits: row-major board points then pass; channel
  0 the move to play, 1 the opponent's reply (an auxiliary training target).
  Off-board points hold ``OFF_BOARD_LOGIT``.
- with ``config.soft_policy``, ``Net.forward_with_soft`` also gives KataGo's
  soft policy logits (N, 2, P*P+1): the same two distributions trained
  against targets raised to the power 1/4, which teaches the head about the
  moves a search rarely picks. Training only: inference never reads them.
- with ``config.td_value``, ``Net.forward_train`` also gives KataGo's
  short-term value outputs from the value head's hidden layer: win/loss/draw
  logits (N, 3, 3) and scores (N, 3) for the three TD horizons (long, mid,
  short; ``zeroloop.selfplay.tdtargets``). Training only, like the soft
  policy: it teaches the trunk what the next few searches will say.
- ``value`` (N, 3) logits of win, loss, draw (``rows.GT_WIN/LOSS/DRAW``).
- ``score`` (N,) the expected final score in points (the last layer's
  output times ``SCORE_SCALE``, KataGo's multiplier, so that layer works in
  units of about one).
- ``ownership`` (N, P, P) pre-tanh; tanh is the expected ownership, +1 the
  mover's; 0 off board.
"""

from __future__ import annotations

import dataclasses

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from zeroloop import features
from zeroloop.nn.configs import NetConfig, get_config

SCORE_SCALE = 20.0
OFF_BOARD_LOGIT = -1.0e4
MASK_PLANE = 0


class NetOutputs(NamedTuple):
    policy: torch.Tensor  # (N, 2, P*P+1) logits
    value: torch.Tensor  # (N, 3) win/loss/draw logits
    score: torch.Tensor  # (N,) points
    ownership: torch.Tensor  # (N, P, P) pre-tanh


class TrainOutputs(NamedTuple):
    """The outputs and the training-only heads (None where the net has no such head)."""

    outputs: NetOutputs
    soft_policy: torch.Tensor | None  # (N, 2, P*P+1) logits
    td_value: torch.Tensor | None  # (N, 3, 3) win/loss/draw logits of the long, mid, short horizons
    td_score: torch.Tensor | None  # (N, 3) points


class BoardMask(NamedTuple):
    """What every layer needs to know about which points are on the board."""

    mask: torch.Tensor  # (N, 1, P, P) 1 on board
    count: torch.Tensor  # () on-board points in the batch (batchnorm statistics)
    area: torch.Tensor  # (N, 1) on-board points per position
    width_term: torch.Tensor  # (N, 1) (sqrt(area) - 14) / 10, KataGo's board-size scaling


def board_mask(spatial: torch.Tensor) -> BoardMask:
    mask = spatial[:, MASK_PLANE : MASK_PLANE + 1]
    points = mask.sum(dim=(2, 3))
    # At least 1, so an all-zero padding row in a batch gives finite (ignored) outputs, not NaN.
    area = points.clamp(min=1.0)
    return BoardMask(mask, points.sum(), area, (area.sqrt() - 14.0) * 0.1)


class MaskedBatchNorm(nn.Module):
    """BatchNorm2d whose training statistics count on-board points only.

    In eval mode it is the ordinary per-channel affine of the running
    statistics (one fused ``F.batch_norm``); ``affine()`` gives that affine
    as (scale, shift) for folding.
    """

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor, bm: BoardMask) -> torch.Tensor:
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        count = bm.count.clamp(min=1.0)
        mean = (x * bm.mask).sum(dim=(0, 2, 3)) / count
        centred = (x - mean.view(1, -1, 1, 1)) * bm.mask
        var = (centred * centred).sum(dim=(0, 2, 3)) / count
        with torch.no_grad():
            unbiased = var * (count / (count - 1.0).clamp(min=1.0))
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(unbiased.detach(), self.momentum)
        scale = self.weight * torch.rsqrt(var + self.eps)
        return x * scale.view(1, -1, 1, 1) + (self.bias - mean * scale).view(1, -1, 1, 1)

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode (scale, shift): norm(x) == x * scale + shift per channel."""
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale


def act_mask(x: torch.Tensor, bm: BoardMask) -> torch.Tensor:
    """ReLU, then zero off board (so a following conv sees zero padding)."""
    return F.relu(x) * bm.mask


def pool_board(x: torch.Tensor, bm: BoardMask) -> torch.Tensor:
    """(N, C, P, P) masked non-negative map -> (N, 3C): mean, width-scaled mean, max.

    x is post-ReLU and zero off board, so ``x + (mask - 1)`` puts every
    off-board point below every on-board one and the max sees only the board.
    """
    mean = x.sum(dim=(2, 3)) / bm.area
    peak = (x + (bm.mask - 1.0)).amax(dim=(2, 3))
    return torch.cat([mean, mean * bm.width_term, peak], dim=1)


def pool_value(x: torch.Tensor, bm: BoardMask) -> torch.Tensor:
    """(N, C, P, P) -> (N, 3C): mean, mean*w, mean*(w^2 - 0.1) as KataGo's value head."""
    mean = x.sum(dim=(2, 3)) / bm.area
    w = bm.width_term
    return torch.cat([mean, mean * w, mean * (w * w - 0.1)], dim=1)


def conv3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, bias=False)


def conv1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, bias=False)


class ResBlock(nn.Module):
    """norm, ReLU, 3x3 conv, norm, ReLU, 3x3 conv, added to the stream."""

    def __init__(self, c: int, mid: int):
        super().__init__()
        self.norm1 = MaskedBatchNorm(c)
        self.conv1 = conv3(c, mid)
        self.norm2 = MaskedBatchNorm(mid)
        self.conv2 = conv3(mid, c)

    def forward(self, x: torch.Tensor, bm: BoardMask) -> torch.Tensor:
        h = self.conv1(act_mask(self.norm1(x, bm), bm))
        return x + self.conv2(act_mask(self.norm2(h, bm), bm))


class GPoolBlock(nn.Module):
    """A ResBlock whose first conv's last ``gpool`` channels are pooled into a bias."""

    def __init__(self, c: int, mid: int, gpool: int):
        super().__init__()
        self.norm1 = MaskedBatchNorm(c)
        self.conv1r = conv3(c, mid - gpool)
        self.conv1g = conv3(c, gpool)
        self.normg = MaskedBatchNorm(gpool)
        self.linear_g = nn.Linear(3 * gpool, mid - gpool, bias=False)
        self.norm2 = MaskedBatchNorm(mid - gpool)
        self.conv2 = conv3(mid - gpool, c)

    def forward(self, x: torch.Tensor, bm: BoardMask) -> torch.Tensor:
        h = act_mask(self.norm1(x, bm), bm)
        g = act_mask(self.normg(self.conv1g(h), bm), bm)
        r = self.conv1r(h) + self.linear_g(pool_board(g, bm)).unsqueeze(-1).unsqueeze(-1)
        return x + self.conv2(act_mask(self.norm2(r, bm), bm))


class PolicyHead(nn.Module):
    """Move and opponent-reply logits over board points and pass."""

    def __init__(self, c: int, p1: int, g1: int):
        super().__init__()
        self.conv1p = conv1(c, p1)
        self.conv1g = conv1(c, g1)
        self.normg = MaskedBatchNorm(g1)
        self.linear_g = nn.Linear(3 * g1, p1, bias=False)
        self.norm2 = MaskedBatchNorm(p1)
        self.conv2p = conv1(p1, 2)
        self.linear_pass = nn.Linear(3 * g1, p1, bias=True)
        self.linear_pass2 = nn.Linear(p1, 2, bias=False)

    def features(self, x: torch.Tensor, bm: BoardMask) -> tuple[torch.Tensor, torch.Tensor]:
        """The last hidden layers: per point (N, p1, P, P) and for the pass logit (N, p1)."""
        g = act_mask(self.normg(self.conv1g(x), bm), bm)
        pooled = pool_board(g, bm)
        p = self.conv1p(x) + self.linear_g(pooled).unsqueeze(-1).unsqueeze(-1)
        return act_mask(self.norm2(p, bm), bm), F.relu(self.linear_pass(pooled))

    def forward(self, x: torch.Tensor, bm: BoardMask) -> torch.Tensor:
        board, passes = self.features(x, bm)
        return policy_logits(self.conv2p(board), self.linear_pass2(passes), bm.mask)


class SoftPolicyHead(nn.Module):
    """KataGo's soft policy outputs: two more channels on the policy head's last hidden layers."""

    def __init__(self, p1: int):
        super().__init__()
        self.conv2p = conv1(p1, 2)
        self.linear_pass2 = nn.Linear(p1, 2, bias=False)

    def forward(self, board: torch.Tensor, passes: torch.Tensor, bm: BoardMask) -> torch.Tensor:
        return policy_logits(self.conv2p(board), self.linear_pass2(passes), bm.mask)


def policy_logits(board: torch.Tensor, passes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, 2, P, P) board and (N, 2) pass logits -> (N, 2, P*P+1), off board set low."""
    board = board.float().flatten(2).masked_fill(mask.flatten(2) < 0.5, OFF_BOARD_LOGIT)
    return torch.cat([board, passes.float().unsqueeze(-1)], dim=2)


class ValueHead(nn.Module):
    """Win/loss/draw logits, score in points, and ownership."""

    def __init__(self, c: int, v1: int, v2: int):
        super().__init__()
        self.conv1v = conv1(c, v1)
        self.normv = MaskedBatchNorm(v1)
        self.linear2 = nn.Linear(3 * v1, v2, bias=True)
        self.linear_value = nn.Linear(v2, 3, bias=True)
        self.linear_score = nn.Linear(v2, 1, bias=True)
        self.conv_ownership = conv1(v1, 1)

    def forward(self, x: torch.Tensor, bm: BoardMask) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.forward_hidden(x, bm)[:3]

    def forward_hidden(self, x: torch.Tensor, bm: BoardMask) -> tuple[torch.Tensor, ...]:
        """value, score, ownership and the hidden layer (N, v2) they are read from."""
        v = act_mask(self.normv(self.conv1v(x), bm), bm)
        hidden = F.relu(self.linear2(pool_value(v, bm)))
        value = self.linear_value(hidden).float()
        score = self.linear_score(hidden).float().squeeze(1) * SCORE_SCALE
        ownership = (self.conv_ownership(v) * bm.mask).float().squeeze(1)
        return value, score, ownership, hidden


class TDValueHead(nn.Module):
    """KataGo's short-term value outputs: one linear layer on the value head's hidden layer, for each of
    three horizons win/loss/draw logits and a score (times SCORE_SCALE, as KataGo's td_score_multiplier)."""

    HORIZONS = 3

    def __init__(self, v2: int):
        super().__init__()
        self.linear_td = nn.Linear(v2, self.HORIZONS * 4, bias=True)

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.linear_td(hidden).float()
        n = self.HORIZONS
        return out[:, : 3 * n].reshape(-1, n, 3), out[:, 3 * n:] * SCORE_SCALE


class Net(nn.Module):
    """The whole net; ``config`` and ``pos_len`` say what it is (model files store both)."""

    def __init__(self, config: NetConfig, pos_len: int):
        super().__init__()
        if not isinstance(pos_len, int) or pos_len < 2:
            raise ValueError(f"pos_len must be an integer >= 2, got {pos_len!r}")
        self.config = config
        self.pos_len = pos_len
        c = config.trunk
        num_spatial, num_global = features.shape(config.features)
        k = config.input_kernel
        self.conv_spatial = nn.Conv2d(num_spatial, c, k, padding=k // 2, bias=False)
        self.linear_global = nn.Linear(num_global, c, bias=False)
        self.blocks = nn.ModuleList(
            GPoolBlock(c, config.mid, config.gpool) if kind == "gpool" else ResBlock(c, config.mid)
            for kind in config.blocks
        )
        self.norm_trunk = MaskedBatchNorm(c)
        self.policy_head = PolicyHead(c, config.policy, config.policy_gpool)
        self.value_head = ValueHead(c, config.value, config.value_hidden)
        self.reset_parameters()
        # Made last, so that the rest of the net draws the same initial weights with or without it.
        self.soft_policy_head = SoftPolicyHead(config.policy) if config.soft_policy else None
        self.td_value_head = TDValueHead(config.value_hidden) if config.td_value else None

    def reset_parameters(self) -> None:
        """He init for convs, zero for the last conv of each residual branch."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        for block in self.blocks:
            nn.init.zeros_(block.conv2.weight)

    def trunk(self, spatial: torch.Tensor, glob: torch.Tensor) -> tuple[torch.Tensor, BoardMask]:
        bm = board_mask(spatial)
        # Masking the input too keeps junk in off-board input planes out.
        x = self.conv_spatial(spatial * bm.mask) + self.linear_global(glob).unsqueeze(-1).unsqueeze(-1)
        for block in self.blocks:
            x = block(x, bm)
        return act_mask(self.norm_trunk(x, bm), bm), bm

    def forward(self, spatial: torch.Tensor, glob: torch.Tensor) -> NetOutputs:
        x, bm = self.trunk(spatial, glob)
        policy = self.policy_head(x, bm)
        value, score, ownership = self.value_head(x, bm)
        return NetOutputs(policy, value, score, ownership)

    def forward_with_soft(self, spatial: torch.Tensor, glob: torch.Tensor) -> tuple[NetOutputs, torch.Tensor]:
        """The outputs and the soft policy logits (N, 2, P*P+1); needs config.soft_policy."""
        if self.soft_policy_head is None:
            raise ValueError(f"net {self.config.name} has no soft policy head")
        out = self.forward_train(spatial, glob)
        return out.outputs, out.soft_policy

    def forward_train(self, spatial: torch.Tensor, glob: torch.Tensor) -> TrainOutputs:
        """The outputs plus those of every training-only head the net has (the same numbers as forward)."""
        x, bm = self.trunk(spatial, glob)
        board, passes = self.policy_head.features(x, bm)
        policy = policy_logits(self.policy_head.conv2p(board), self.policy_head.linear_pass2(passes), bm.mask)
        soft = self.soft_policy_head(board, passes, bm) if self.soft_policy_head is not None else None
        value, score, ownership, hidden = self.value_head.forward_hidden(x, bm)
        td_value, td_score = self.td_value_head(hidden) if self.td_value_head is not None else (None, None)
        return TrainOutputs(NetOutputs(policy, value, score, ownership), soft, td_value, td_score)


def build_model(config: NetConfig | str, pos_len: int, feature_version: int | None = None) -> Net:
    """A freshly initialised net of a named (or given) config for boards up to pos_len.

    feature_version: the inputs it reads (default: the config's).
    """
    cfg = get_config(config) if isinstance(config, str) else config
    if feature_version is not None and feature_version != cfg.features:
        cfg = dataclasses.replace(cfg, features=feature_version)
    return Net(cfg, pos_len)


def random_init_model(config: NetConfig | str, pos_len: int, seed: int = 0, feature_version: int | None = None) -> Net:
    """A net (eval mode) with every weight and norm statistic random, from seed alone.

    Unlike a fresh net (zero residual branches, identity norms) every layer
    here changes the outputs, so tests of folding, padding and file
    round-trips exercise all of them; benchmarks get a realistic net.
    """
    net = build_model(config, pos_len, feature_version)
    gen = torch.Generator().manual_seed(seed)
    depth_scale = 1.0 / max(1, net.config.num_blocks) ** 0.5
    with torch.no_grad():
        for name, m in net.named_modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                std = (2.0 / fan_in) ** 0.5 * (depth_scale if name.endswith("conv2") else 1.0)
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            elif isinstance(m, MaskedBatchNorm):
                c = m.weight.shape[0]
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(torch.randn(c, generator=gen) * 0.2)
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))
    return net.eval()


def check_inputs(spatial, glob, pos_len: int, feature_version: int = features.FEATURE_VERSION) -> None:
    """Raise ValueError unless spatial is (N, planes, pos_len, pos_len) and glob (N, globals) of the feature version."""
    num_spatial, num_global = features.shape(feature_version)
    want_s = (num_spatial, pos_len, pos_len)
    if spatial.ndim != 4 or tuple(spatial.shape[1:]) != want_s:
        raise ValueError(f"spatial input has shape {tuple(spatial.shape)}, expected (N, {', '.join(map(str, want_s))})")
    if glob.ndim != 2 or glob.shape[1] != num_global or glob.shape[0] != spatial.shape[0]:
        raise ValueError(f"global input has shape {tuple(glob.shape)}, expected ({spatial.shape[0]}, {num_global})")
