"""The training loss: every term and its weight, in one place.

Terms (each per row, times the row's weight ``GT_ROW_WEIGHT`` and the
term's own target weight from ``globalTargetsNC``), after KataGo's
metrics_pytorch:

- ``policy``: cross-entropy of the search's policy target (C0).
- ``opponent_policy``: cross-entropy of the opponent's next move (C1).
- ``value``: cross-entropy of the game result (win/loss/draw).
- ``score``: Huber loss (delta 12 points) on the final score.
- ``ownership``: binary cross-entropy of tanh ownership against the final
  ownership, averaged over the on-board points.

As in KataGo the batch loss is the SUM over rows of the weighted terms (so
the SGD learning rate is per sample). ``WEIGHTS`` holds the scales: KataGo's
for policy (0.93), opponent policy (0.15), value (1.2 x 0.6) and ownership
(1.5); score is 0.02 rather than KataGo's 0.0015 because zeroloop has no
score-belief head to carry most of the score signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from zeroloop import rows


@dataclass(frozen=True)
class LossWeights:
    policy: float = 0.93
    opponent_policy: float = 0.15
    value: float = 0.72
    score: float = 0.02
    ownership: float = 1.5
    score_huber_delta: float = 12.0


WEIGHTS = LossWeights()
TERMS = ("policy", "opponent_policy", "value", "score", "ownership")


@dataclass
class Targets:
    """One batch of targets as device tensors."""

    policy: torch.Tensor  # (N, 2, P*P+1)
    globals: torch.Tensor  # (N, NUM_GLOBAL_TARGETS)
    ownership: torch.Tensor  # (N, P, P) in [-1, 1]
    mask: torch.Tensor  # (N, P, P) 1 on board


def _soft_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    total = target.sum(dim=-1, keepdim=True).clamp(min=1e-8)
    return -((target / total) * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1)


def loss_terms(outputs, t: Targets, w: LossWeights = WEIGHTS) -> dict[str, torch.Tensor]:
    """Each term summed over the batch (row and target weights applied, scales not)."""
    g = t.globals
    row_w = g[:, rows.GT_ROW_WEIGHT]
    own_w = g[:, rows.GT_OWNERSHIP_WEIGHT] * row_w
    policy = _soft_ce(outputs.policy[:, 0], t.policy[:, 0]) * g[:, rows.GT_POLICY_WEIGHT] * row_w
    opp_w = g[:, rows.GT_OPP_POLICY_WEIGHT] * (t.policy[:, 1].sum(dim=-1) > 0)
    opponent = _soft_ce(outputs.policy[:, 1], t.policy[:, 1]) * opp_w * row_w
    value_target = g[:, rows.GT_WIN:rows.GT_DRAW + 1]
    value = _soft_ce(outputs.value, value_target) * row_w
    score = F.huber_loss(outputs.score.float(), g[:, rows.GT_SCORE], reduction="none",
                         delta=w.score_huber_delta) * own_w
    area = t.mask.sum(dim=(1, 2)).clamp(min=1.0)
    bce = F.binary_cross_entropy_with_logits(2.0 * outputs.ownership.float(), (1.0 + t.ownership) * 0.5,
                                             reduction="none")
    ownership = (bce * t.mask).sum(dim=(1, 2)) / area * own_w
    return {"policy": policy.sum(), "opponent_policy": opponent.sum(), "value": value.sum(),
            "score": score.sum(), "ownership": ownership.sum()}


def total_loss(terms: dict[str, torch.Tensor], w: LossWeights = WEIGHTS) -> torch.Tensor:
    return sum(getattr(w, name) * terms[name] for name in TERMS)
