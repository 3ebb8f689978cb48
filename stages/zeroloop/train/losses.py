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

With a soft policy head (``--soft-policy-weight S``, KataGo: 8) two more
terms, KataGo's: ``soft_policy`` and ``soft_opponent_policy``, the
cross-entropy of each policy target raised to the power 1/4 (after adding
1e-7 on the board) and renormalised, weighted S and 0.15 x S. The flat
target makes the head learn which of the rarely searched moves are better.

With TD value heads (``--td-value-weight W``, KataGo's
``-td-value-loss-scales`` 0.6 per horizon) four more, KataGo's:
``td_value_long``, ``td_value_mid``, ``td_value_short``, each the
cross-entropy of the horizon's win/loss/draw target less the target's
entropy (so 0 when exact), weighted 1.2 x W as the value term is 1.2 x
0.6; and ``td_score``, Huber loss (delta 12) summed over the three
horizons' scores, weighted 0.0004. Each is times the row's
``GT_TD_WEIGHT`` (0 for rows without TD targets, which so train as
before); ``td_score`` also times the ownership weight, as KataGo's.

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
    soft_policy: float = 0.0  # KataGo's soft_policy_weight_scale (8); 0: no soft policy terms
    soft_opponent_policy: float = 0.0  # KataGo: 0.15 x soft_policy
    td_value_long: float = 0.0  # KataGo: 1.2 x 0.6 each (its -td-value-loss-scales); 0: no TD terms
    td_value_mid: float = 0.0
    td_value_short: float = 0.0
    td_score: float = 0.0  # KataGo: 0.0004
    score_huber_delta: float = 12.0

    @classmethod
    def with_soft_policy(cls, scale: float) -> "LossWeights":
        return cls(soft_policy=scale, soft_opponent_policy=0.15 * scale)

    @classmethod
    def for_options(cls, soft_policy_weight: float = 0.0, td_value_weight: float = 0.0) -> "LossWeights":
        """The weights with the soft policy terms (KataGo: 8) and the TD terms (KataGo: 0.6) as given."""
        td = 1.2 * td_value_weight
        return cls(soft_policy=soft_policy_weight, soft_opponent_policy=0.15 * soft_policy_weight,
                   td_value_long=td, td_value_mid=td, td_value_short=td,
                   td_score=0.0004 if td_value_weight > 0 else 0.0)


WEIGHTS = LossWeights()
TERMS = ("policy", "opponent_policy", "value", "score", "ownership")
TD_VALUE_TERMS = ("td_value_long", "td_value_mid", "td_value_short")


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


def soft_target(target: torch.Tensor, on_board: torch.Tensor) -> torch.Tensor:
    """KataGo's soft policy target: (target + 1e-7) on the board (and pass), to the power 1/4, renormalised.
    target (N, K) sums to anything positive; on_board (N, K) is 1 where a move can be."""
    total = target.sum(dim=-1, keepdim=True).clamp(min=1e-8)
    soft = torch.pow((target / total + 1e-7) * on_board, 0.25)
    return soft / soft.sum(dim=-1, keepdim=True)


def td_targets(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows' TD targets: win/loss/draw (N, 3 horizons, 3) and scores (N, 3), from globalTargetsNC."""
    h = rows.TD_HORIZONS
    return g[:, rows.GT_TD_VALUE:rows.GT_TD_SCORE].reshape(-1, h, 3), g[:, rows.GT_TD_SCORE:rows.GT_TD_SCORE + h]


def loss_terms(outputs, t: Targets, w: LossWeights = WEIGHTS,
               soft_logits: torch.Tensor | None = None, td_value: torch.Tensor | None = None,
               td_score: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Each term summed over the batch (row and target weights applied, scales not); the soft policy
    terms only with soft_logits (N, 2, P*P+1), the TD terms only with td_value (N, 3, 3) and
    td_score (N, 3)."""
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
    out = {"policy": policy.sum(), "opponent_policy": opponent.sum(), "value": value.sum(),
           "score": score.sum(), "ownership": ownership.sum()}
    if soft_logits is not None:
        on_board = torch.cat([t.mask.flatten(1), torch.ones_like(t.mask[:, :1, 0])], dim=1)
        soft_player = _soft_ce(soft_logits[:, 0], soft_target(t.policy[:, 0], on_board))
        soft_opp = _soft_ce(soft_logits[:, 1], soft_target(t.policy[:, 1], on_board))
        out["soft_policy"] = (soft_player * g[:, rows.GT_POLICY_WEIGHT] * row_w).sum()
        out["soft_opponent_policy"] = (soft_opp * opp_w * row_w).sum()
    if td_value is not None and td_score is not None:
        td_w = g[:, rows.GT_TD_WEIGHT] * row_w
        value_t, score_t = td_targets(g)
        entropy = -(value_t * torch.log(value_t + 1e-30)).sum(dim=-1)
        kl = -(value_t * F.log_softmax(td_value.float(), dim=-1)).sum(dim=-1) - entropy  # (N, 3)
        for h, name in enumerate(TD_VALUE_TERMS):
            out[name] = (kl[:, h] * td_w).sum()
        huber = F.huber_loss(td_score.float(), score_t, reduction="none", delta=w.score_huber_delta).sum(dim=1)
        out["td_score"] = (huber * td_w * g[:, rows.GT_OWNERSHIP_WEIGHT]).sum()
    return out


def total_loss(terms: dict[str, torch.Tensor], w: LossWeights = WEIGHTS) -> torch.Tensor:
    return sum(getattr(w, name) * value for name, value in terms.items())
