"""Everything a training run is told, with KataGo's defaults (flags in ``main``)."""

from __future__ import annotations

from dataclasses import dataclass

from zeroloop.train.bucket import BucketRule

EXPORT_MODES = ("main", "extra", "trainonly")


@dataclass(frozen=True)
class TrainOptions:
    name: str
    model_kind: str = "b6c96"
    batch_size: int = 256
    export_mode: str = "main"
    samples_per_epoch: int = 1_000_000
    epochs_per_export: int = 1
    max_epochs_this_instance: int | None = None
    max_training_samples: int | None = None
    max_train_bucket_per_new_data: float | None = None
    max_train_bucket_size: float = 1e30
    stop_when_train_bucket_limited: bool = False
    max_train_steps_since_last_reload: int | None = None
    no_repeat_files: bool = False
    quit_if_no_data: bool = False
    lr_scale: float = 1.0
    optimizer: str = "sgd"
    weight_decay: float | None = None
    warmup_samples: int = 2_000_000
    use_fp16: bool = False
    use_bf16: bool = False
    initial_checkpoint: str | None = None
    device: str = "auto"
    pos_len: int | None = None
    swa_period_samples: int | None = None  # None: samples_per_epoch / 2
    swa_scale: float = 8.0
    checkpoint_interval_s: float = 600.0
    data_poll_s: float = 30.0
    print_every_batches: int = 100
    prefetch_batches: int = 4
    seed: int | None = None
    # KataGo's methods, off by default (docs/learning.md)
    soft_policy_weight: float = 0.0  # KataGo: 8
    td_value_weight: float = 0.0  # KataGo: 0.6 (its -td-value-loss-scales, per horizon)
    lr_schedule: tuple[tuple[int, float], ...] = ()  # (samples, factor) points; () = factor 1
    weight_decay_mode: str = "flat"  # or "katago"
    head_lr_scale: float = 1.0  # KataGo: 0.5
    lookahead_k: int = 6
    lookahead_alpha: float = 1.0  # 1: no lookahead (KataGo: 0.5)

    @property
    def bucket_rule(self) -> BucketRule:
        return BucketRule(self.samples_per_epoch, self.max_train_bucket_per_new_data, self.max_train_bucket_size)

    @property
    def swa_period(self) -> int:
        if self.swa_period_samples is not None:
            return self.swa_period_samples
        return max(1, self.samples_per_epoch // 2)
