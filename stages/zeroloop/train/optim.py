"""Optimizer, learning-rate schedule and the averaged model, after KataGo.

- SGD with momentum 0.9 (default) or AdamW. The loss is a sum over the
  batch, so SGD's learning rate is per sample: ``3e-5 * lr_scale * warmup``
  (KataGo's). AdamW does not care about the loss scale: ``2e-4 * lr_scale *
  warmup``. Norms and biases get no weight decay.
- Warmup steps KataGo's factors 1/20, 1/14, 1/10, 1/7, 1/5, 1/3, 1/2, 1/1.4
  over eight equal spans of ``warmup_samples`` (KataGo: 2M samples), then 1.
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
OPTIMIZERS = ("sgd", "adamw")


def warmup_factor(samples: int, warmup_samples: int) -> float:
    if warmup_samples <= 0 or samples >= warmup_samples:
        return 1.0
    span = warmup_samples / len(WARMUP_FACTORS)
    return WARMUP_FACTORS[min(int(samples // span), len(WARMUP_FACTORS) - 1)]


def learning_rate(kind: str, samples: int, lr_scale: float, warmup_samples: int) -> float:
    base = SGD_LR_PER_SAMPLE if kind == "sgd" else ADAMW_LR
    return base * lr_scale * warmup_factor(samples, warmup_samples)


def grad_clip_norm(batch_size: int) -> float:
    """KataGo's gradient norm cap for a summed loss, scaled with the batch."""
    return 2500.0 * math.sqrt(batch_size / 256.0)


def build_optimizer(kind: str, model: nn.Module, batch_size: int, weight_decay: float | None) -> torch.optim.Optimizer:
    wd = DEFAULT_WEIGHT_DECAY[kind] if weight_decay is None else weight_decay
    decay = [p for p in model.parameters() if p.ndim > 1]
    plain = [p for p in model.parameters() if p.ndim <= 1]
    if kind == "sgd":
        # L2 per sample: the summed loss's gradient grows with the batch, so does the decay term.
        groups = [{"params": decay, "weight_decay": wd * batch_size}, {"params": plain, "weight_decay": 0.0}]
        return torch.optim.SGD(groups, lr=SGD_LR_PER_SAMPLE, momentum=SGD_MOMENTUM)
    groups = [{"params": decay, "weight_decay": wd}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=ADAMW_LR)


def set_learning_rate(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def build_averaged(model: nn.Module, swa_scale: float) -> AveragedModel:
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(1.0 - 1.0 / swa_scale), use_buffers=True)
