"""Inference form of a Net: batchnorm folded into the convs that feed it.

In eval mode a batchnorm is a per-channel affine ``x * scale + shift``.
Where it directly follows a conv (or a conv plus a pooled bias) the scale
goes into that conv's weights and the shift becomes its bias, so the norm
costs nothing. The pre-activation norms that start each block and end the
trunk read the residual stream, which no single conv produces; they stay as
one fused per-channel op each. Convs that read the same input (a gpool
block's regular and pooled parts, the policy head's two 1x1 convs) are
merged into one wider conv, which runs faster than two narrow ones.

``FoldedNet`` computes what ``Net`` computes in eval mode (to float
rounding) with the same masking, so every board size still works. With
``masked=False`` it skips the mask multiplications after each activation
(about a tenth of CPU inference time): exact only for batches where every
position fills the whole pos_len x pos_len grid, which the evaluator checks
before using it. It holds plain tensors and modules only, so
``torch.jit.trace`` and ``freeze`` take it as is. It is built from a Net
and never trained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zeroloop.nn import model as M


def _conv(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Conv2d:
    out, cin, k, _ = weight.shape
    conv = nn.Conv2d(cin, out, k, padding=k // 2, bias=bias is not None)
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None:
            conv.bias.copy_(bias)
    return conv


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    out, cin = weight.shape
    lin = nn.Linear(cin, out, bias=bias is not None)
    with torch.no_grad():
        lin.weight.copy_(weight)
        if bias is not None:
            lin.bias.copy_(bias)
    return lin


def _scaled(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Weights whose output channel i is multiplied by scale[i]."""
    return weight * scale.view(-1, *([1] * (weight.dim() - 1)))


class Affine(nn.Module):
    """An eval-mode batchnorm kept as one fused per-channel op."""

    def __init__(self, norm: M.MaskedBatchNorm):
        super().__init__()
        scale, shift = norm.affine()
        self.register_buffer("scale", scale.detach().clone())
        self.register_buffer("shift", shift.detach().clone())
        self.register_buffer("zero", torch.zeros_like(scale))
        self.register_buffer("one", torch.ones_like(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # batch_norm with mean 0, var 1 and eps 0 is exactly x * scale + shift, in one kernel.
        return F.batch_norm(x, self.zero, self.one, self.scale, self.shift, False, 0.0, 0.0)


def _act(x: torch.Tensor, bm: M.BoardMask, masked: bool) -> torch.Tensor:
    return M.act_mask(x, bm) if masked else F.relu(x)


class FoldedBlock(nn.Module):
    """A ResBlock or GPoolBlock with norm2 (and normg) folded into conv1."""

    def __init__(self, block: M.ResBlock | M.GPoolBlock, masked: bool):
        super().__init__()
        self.masked = masked
        self.pre = Affine(block.norm1)
        s2, t2 = block.norm2.affine()
        if isinstance(block, M.GPoolBlock):
            sg, tg = block.normg.affine()
            self.regular = block.conv1r.out_channels
            weight = torch.cat([_scaled(block.conv1r.weight, s2), _scaled(block.conv1g.weight, sg)])
            self.conv1 = _conv(weight, torch.cat([t2, tg]))
            self.linear_g: nn.Module | None = _linear(_scaled(block.linear_g.weight, s2), None)
        else:
            self.regular = block.conv1.out_channels
            self.conv1 = _conv(_scaled(block.conv1.weight, s2), t2)
            self.linear_g = None
        self.conv2 = _conv(block.conv2.weight, None)

    def forward(self, x: torch.Tensor, bm: M.BoardMask) -> torch.Tensor:
        h = self.conv1(_act(self.pre(x), bm, self.masked))
        if self.linear_g is not None:
            r, g = h[:, : self.regular], h[:, self.regular :]
            h = r + self.linear_g(M.pool_board(_act(g, bm, self.masked), bm)).unsqueeze(-1).unsqueeze(-1)
        return x + self.conv2(_act(h, bm, self.masked))


class FoldedNet(nn.Module):
    """Eval-mode Net with folded norms; forward returns the NetOutputs tuple."""

    def __init__(self, net: M.Net, masked: bool = True):
        super().__init__()
        self.masked = masked
        self.pos_len = net.pos_len
        self.config = net.config
        with torch.no_grad():
            self.conv_spatial = _conv(net.conv_spatial.weight, None)
            self.linear_global = _linear(net.linear_global.weight, None)
            self.blocks = nn.ModuleList(FoldedBlock(b, masked) for b in net.blocks)
            self.trunk = Affine(net.norm_trunk)
            ph, vh = net.policy_head, net.value_head
            s2, t2 = ph.norm2.affine()
            sg, tg = ph.normg.affine()
            self.policy_channels = ph.conv1p.out_channels
            self.conv1_policy = _conv(torch.cat([_scaled(ph.conv1p.weight, s2), _scaled(ph.conv1g.weight, sg)]),
                                      torch.cat([t2, tg]))
            self.policy_linear_g = _linear(_scaled(ph.linear_g.weight, s2), None)
            self.conv2p = _conv(ph.conv2p.weight, None)
            self.linear_pass = _linear(ph.linear_pass.weight, ph.linear_pass.bias)
            self.linear_pass2 = _linear(ph.linear_pass2.weight, None)
            sv, tv = vh.normv.affine()
            self.conv1v = _conv(_scaled(vh.conv1v.weight, sv), tv)
            self.linear2 = _linear(vh.linear2.weight, vh.linear2.bias)
            self.linear_value = _linear(vh.linear_value.weight, vh.linear_value.bias)
            self.linear_score = _linear(vh.linear_score.weight, vh.linear_score.bias)
            self.conv_ownership = _conv(vh.conv_ownership.weight, None)
        self.eval()

    def forward(self, spatial: torch.Tensor, glob: torch.Tensor) -> M.NetOutputs:
        bm = M.board_mask(spatial)
        x = self.conv_spatial(spatial * bm.mask) + self.linear_global(glob).unsqueeze(-1).unsqueeze(-1)
        for block in self.blocks:
            x = block(x, bm)
        x = _act(self.trunk(x), bm, self.masked)
        # Policy: one conv gives the per-point channels and the pooled ones (pre-norm folded in).
        h = self.conv1_policy(x)
        p, g = h[:, : self.policy_channels], h[:, self.policy_channels :]
        pooled = M.pool_board(_act(g, bm, self.masked), bm)
        p = p + self.policy_linear_g(pooled).unsqueeze(-1).unsqueeze(-1)
        board = self.conv2p(_act(p, bm, self.masked))
        passes = self.linear_pass2(F.relu(self.linear_pass(pooled)))
        policy = M.policy_logits(board, passes, bm.mask)
        # Value, score, ownership.
        v = _act(self.conv1v(x), bm, self.masked)
        hidden = F.relu(self.linear2(M.pool_value(v, bm)))
        value = self.linear_value(hidden).float()
        score = self.linear_score(hidden).float().squeeze(1) * M.SCORE_SCALE
        ownership = (self.conv_ownership(v) * bm.mask).float().squeeze(1)
        return M.NetOutputs(policy, value, score, ownership)


def fold(net: M.Net, masked: bool = True) -> FoldedNet:
    """The folded inference form of net (net itself is left unchanged)."""
    return FoldedNet(net, masked)
