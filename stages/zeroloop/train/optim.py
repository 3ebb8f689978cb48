"""Optimizer, learning-rate schedule and the averaged model, after KataGo.

- SGD with momentum 0.9 (default) or AdamW. The loss is a sum over the
  batch, so SGD's learning rate is per sample: ``3e-5 * lr_scale * warmup``
  (KataGo's). AdamW does not care about the loss scale: ``2e-4 * lr_scale *
  warmup``. Norms and biases get no weight decay.
- Warmup steps KataGo's factors 1/20, 1/14, 1/10, 1/7, 1/5, 1/3, 1/2, 1/1.4
  over eight equal spans of ``warmup_samples`` (KataGo: 2M samples), then 1.
- Options from KataGo's train.py, each off by default (docs/learning.md has
  what each measured): ``lr_schedule``, piecewise-constant factors on the
  rate by samples trained (KataGo's ``-lr-schedule``); ``head_lr_scale`` on
  the heads' parameters (KataGo's ``-head-lr-factor``, 0.5 there); weight
  decay mode ``katago``, KataGo's batch-norm net groups for SGD (trunk
  weights 0.00125 x batch/256 x (lr scale x warm-up)^0.75, batch-norm
  gammas an eighth of that, biases and betas 1e-6 x ..., head weights 1e-6
  x batch/256; today's ``flat`` decay is about 6x KataGo's at batch 128);
  and lookahead (``Lookahead``: every k steps the weights move back to
  slow weights pulled alpha of the way toward them; the rate is divided by
  alpha as KataGo does, so that the net moves as far per sample).
- The averaged model is KataGo's SWA: an exponential moving average updated
  every ``swa_period_samples`` with weight ``1/swa_scale``
  (``torch.optim.swa_utils.AveragedModel``; batchnorm statistics averaged
  too). It is the model that is exported.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

SGD_LR_PER_SAMPLE = 3e-5
ADAMW_LR = 2e-4
SGD_MOMENTUM = 0.9
DEFAULT_WEIGHT_DECAY = {"sgd": 3e-5, "adamw": 0.01}
WARMUP_FACTORS = (1 / 20, 1 / 14, 1 / 10, 1 / 7, 1 / 5, 1 / 3, 1 / 2, 1 / 1.4)
# Parameter groups: trunk or head (KataGo's "output" group), each split into weights (conv, linear),
# batch-norm gammas and the rest (biases, betas). The same groups in every mode, so checkpoints carry over.
GROUPS = ("trunk", "trunk_gamma", "trunk_noreg", "head", "head_gamma", "head_noreg")
HEAD_PREFIXES = ("policy_head.", "value_head.", "soft_policy_head.", "td_value_head.")


def warmup_factor(samples: int, warmup_samples: int) -> float:
    if warmup_samples <= 0 or samples >= warmup_samples:
        return 1.0
    span = warmup_samples / len(WARMUP_FACTORS)
    return WARMUP_FACTORS[min(int(samples // span), len(WARMUP_FACTORS) - 1)]


def learning_rate(kind: str, samples: int, lr_scale: float, warmup_samples: int) -> float:
    base = SGD_LR_PER_SAMPLE if kind == "sgd" else ADAMW_LR
    return base * lr_scale * warmup_factor(samples, warmup_samples)


def schedule_factor(samples: int, schedule: tuple[tuple[int, float], ...]) -> float:
    factor = 1.0
    for start, f in schedule:
        if samples >= start:
            factor = f
    return factor


def group_of(name: str, param: torch.Tensor) -> str:
    where = "head" if name.startswith(HEAD_PREFIXES) else "trunk"
    if param.ndim > 1:
        return where
    return f"{where}_gamma" if name.endswith(".weight") else f"{where}_noreg"


def weight_decays(kind: str, mode: str, batch_size: int, weight_decay: float | None,
                  lr_factor: float) -> dict[str, float]:
    """Each group's weight decay; lr_factor is lr scale x schedule x warm-up (KataGo scales decay with it)."""
    if mode == "flat":
        wd = DEFAULT_WEIGHT_DECAY[kind] if weight_decay is None else weight_decay
        wd = wd * batch_size if kind == "sgd" else wd  # sgd: L2 per sample on a summed loss
        return {g: (wd if g in ("trunk", "head") else 0.0) for g in GROUPS}
    scale = batch_size / 256.0
    normal = 0.00125 * scale * lr_factor ** 0.75
    return {"trunk": normal, "trunk_gamma": 0.125 * normal, "trunk_noreg": 1e-6 * scale * lr_factor ** 0.75,
            "head": 1e-6 * scale, "head_gamma": 1e-6 * scale, "head_noreg": 1e-8 * scale}


def set_hyperparameters(opt: torch.optim.Optimizer, lr: float, decays: dict[str, float], head_lr_scale: float,
                        lookahead_alpha: float) -> None:
    """Each group's rate (heads scaled, divided by lookahead's alpha) and weight decay."""
    for group in opt.param_groups:
        name = group.get("group_name", "trunk")
        group["lr"] = lr * (head_lr_scale if name.startswith("head") else 1.0) / lookahead_alpha
        group["weight_decay"] = decays.get(name, group["weight_decay"])


class Lookahead:
    """Lookahead (Zhang et al. 2019), as KataGo uses it: every k steps, slow += alpha (fast - slow); fast = slow."""

    def __init__(self, model: nn.Module, k: int, alpha: float):
        self.k, self.alpha = k, alpha
        self.params = [p for p in model.parameters()]
        self.slow = [p.detach().clone() for p in self.params]
        self.steps = 0

    @torch.no_grad()
    def after_step(self) -> None:
        self.steps += 1
        if self.steps % self.k:
            return
        for p, s in zip(self.params, self.slow):
            s.add_(p.detach() - s, alpha=self.alpha)
            p.copy_(s)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "slow": [s.clone() for s in self.slow]}

    def load_state_dict(self, d: dict) -> None:
        if len(d["slow"]) != len(self.slow) or any(a.shape != b.shape for a, b in zip(d["slow"], self.slow)):
            raise ValueError("lookahead state does not match the net")
        self.steps = int(d["steps"])
        for s, v in zip(self.slow, d["slow"]):
            s.copy_(v)


def grad_clip_norm(batch_size: int) -> float:
    """KataGo's gradient norm cap for a summed loss, scaled with the batch."""
    return 2500.0 * math.sqrt(batch_size / 256.0)


def build_optimizer(kind: str, model: nn.Module, batch_size: int, weight_decay: float | None,
                    mode: str = "flat") -> torch.optim.Optimizer:
    members: dict[str, list] = {g: [] for g in GROUPS}
    for name, p in model.named_parameters():
        members[group_of(name, p)].append(p)
    decays = weight_decays(kind, mode, batch_size, weight_decay, 1.0)
    groups = [{"params": ps, "weight_decay": decays[g], "group_name": g} for g, ps in members.items() if ps]
    if kind == "sgd":
        # L2 per sample: the summed loss's gradient grows with the batch, so does the decay term.
        return torch.optim.SGD(groups, lr=SGD_LR_PER_SAMPLE, momentum=SGD_MOMENTUM)
    return torch.optim.AdamW(groups, lr=ADAMW_LR)


def set_learning_rate(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def build_averaged(model: nn.Module, swa_scale: float) -> AveragedModel:
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(1.0 - 1.0 / swa_scale), use_buffers=True)
