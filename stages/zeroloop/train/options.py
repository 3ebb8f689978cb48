"""Everything a training run is told: one typed setting per flag, with KataGo's defaults.

Each field is a ``zeroloop train`` flag (``--lr-warmup-samples`` is
``lr_warmup_samples``) and a key of its ``--config`` file, with its doc and
range (``zeroloop.config``); ``zeroloop train --help-config`` lists them.
``extra_flag_problems`` checks the further train flags a run asks for (the
loop's ``--train-flag``, a TrainingRun's ``spec.trainer.flags``). This
module imports without torch or numpy: the operator checks with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import re
import typing
from dataclasses import MISSING, dataclass

from zeroloop import config, plan
from zeroloop.config import option
from zeroloop.errors import ConfigError
from zeroloop.nn import MAX_POS_LEN
from zeroloop.train.bucket import BucketRule

EXPORT_MODES = ("main", "extra", "trainonly")
OPTIMIZERS = ("sgd", "adamw")
WEIGHT_DECAY_MODES = ("flat", "katago")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=]*")
# Exports are named <NAME>-s<samples>-d<rows> and models <RUN>-<that>: keep room in the 64-byte limit.
MAX_NAME_LEN = 24


def parse_lr_schedule(text: str) -> tuple[tuple[int, float], ...]:
    """KataGo's -lr-schedule: '(0,1.0),(200K,0.5)': from each sample count on, the rate's factor
    (K, M, B suffixes). Must start at 0, counts increasing, factors positive; raises ValueError."""
    points = re.findall(r"\(\s*([0-9.]+)\s*([KMB]?)\s*,\s*([0-9.eE+-]+)\s*\)", text.strip())
    rest = re.sub(r"\(\s*[0-9.]+\s*[KMB]?\s*,\s*[0-9.eE+-]+\s*\)", "", text).replace(",", "").replace(";", "")
    if not points or rest.strip():
        raise ValueError(f"expected points like '(0,1.0),(200K,0.5)', got {text!r}")
    out = []
    for count, suffix, factor in points:
        samples = float(count) * {"": 1, "K": 1e3, "M": 1e6, "B": 1e9}[suffix]
        out.append((int(samples), float(factor)))
    try:
        return check_lr_schedule(tuple(out))
    except ValueError as e:
        raise ValueError(f"{e}: {text!r}") from None


def check_lr_schedule(points: tuple[tuple[int, float], ...]) -> tuple[tuple[int, float], ...]:
    """points if they make a schedule (none, or from 0 samples on, counts increasing, factors positive)."""
    if points and points[0][0] != 0:
        raise ValueError("the schedule must start at 0 samples")
    if any(b[0] <= a[0] for a, b in itertools.pairwise(points)) or any(not f > 0 for _, f in points):
        raise ValueError("sample counts must increase and factors be positive")
    return points


def net_sizes() -> list[str]:
    """The named net sizes (zeroloop.nn.configs builds them with the feature shapes: numpy)."""
    from zeroloop.nn.configs import CONFIGS

    return sorted(CONFIGS)


def count(text: str) -> int:
    """A sample count flag: a whole number, KataGo style (1e6 and 2000000 alike)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0 or value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(value)


def lr_schedule_text(text: str) -> tuple[tuple[int, float], ...]:
    try:
        return parse_lr_schedule(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# help sections of `zeroloop train --help`
GROUPS = {
    "run": ("name", "model_kind", "features", "batch_size", "export_mode", "pos_len", "initial_checkpoint"),
    "schedule": ("samples_per_epoch", "epochs_per_export", "max_epochs_this_instance", "max_training_samples"),
    "data gating (the train bucket)": ("max_train_bucket_per_new_data", "max_train_bucket_size",
                                       "stop_when_train_bucket_limited", "max_train_steps_since_last_reload",
                                       "no_repeat_files", "quit_if_no_data"),
    "optimisation": ("optimizer", "lr_scale", "weight_decay", "lr_warmup_samples", "swa_period_samples",
                     "swa_scale", "soft_policy_weight", "td_value_weight", "lr_schedule", "weight_decay_mode",
                     "head_lr_scale", "lookahead_k", "lookahead_alpha", "use_fp16", "use_bf16"),
    "process": ("checkpoint_interval_seconds", "data_poll_seconds", "print_every_batches", "prefetch_batches",
                "device", "seed"),
}


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    # run
    name: str = option(MISSING, "training name: train/<NAME>/ and exports <NAME>-s<samples>-d<rows>")
    model_kind: str = option("b6c96", "net size for a new net", choices=lambda: net_sizes())
    features: str = option("zeroloop", "the net's inputs: zeroloop (12 planes) or katago-v7 (KataGo's inputs v7: "
                                       "ladders, area); a model, checkpoint or data rows of other inputs are refused",
                           choices=("zeroloop", "katago-v7"))
    batch_size: int = option(MISSING, "samples per step (match the shuffle's --batch-size)", lo=1)
    export_mode: str = option(MISSING, "main: export to torchmodels_toexport; extra: to torchmodels_toexport_extra; "
                                       "trainonly: never", choices=EXPORT_MODES)
    pos_len: int | None = option(None, "board length of the net (default: the data's)", lo=2, hi=MAX_POS_LEN)
    initial_checkpoint: str | None = option(None, "start a new run from this checkpoint file or exported model "
                                                  "directory")
    # schedule
    samples_per_epoch: int = option(1_000_000, "samples per epoch", lo=0, parse=count)
    epochs_per_export: int = option(1, "export every this many epochs", lo=1)
    max_epochs_this_instance: int | None = option(None, "stop after this many epochs", lo=0)
    max_training_samples: int | None = option(None, "stop once the run has trained this many", lo=0, parse=count)
    # data gating (the train bucket)
    max_train_bucket_per_new_data: float | None = option(None, "samples allowed per new data row (default: no "
                                                               "bucket)", lo=0.0)
    max_train_bucket_size: float = option(1e30, "most samples the bucket can hold", lo=0.0)
    stop_when_train_bucket_limited: bool = option(False, "exit when the bucket is empty instead of waiting for "
                                                         "data")
    max_train_steps_since_last_reload: int | None = option(None, "wait for a new shuffle after this many samples "
                                                                 "on the same one", lo=0, parse=count)
    no_repeat_files: bool = option(False, "never train on a shuffled file twice (by content); wait for a new "
                                          "shuffle instead")
    quit_if_no_data: bool = option(False, "exit 0 instead of waiting when there is no data")
    # optimisation
    optimizer: str = option("sgd", "SGD with momentum 0.9, or AdamW", choices=OPTIMIZERS)
    lr_scale: float = option(1.0, "multiplies the learning rate", above=0.0)
    weight_decay: float | None = option(None, "L2 per sample for sgd (default 3e-5), decoupled decay for adamw "
                                              "(default 0.01)", lo=0.0)
    lr_warmup_samples: int = option(2_000_000, "samples over which KataGo's warmup reaches the full rate (0: none)",
                                    lo=0, parse=count)
    swa_period_samples: int | None = option(None, "update the averaged model every this many samples (default: "
                                                  "samples-per-epoch / 2)", lo=0, parse=count)
    swa_scale: float = option(8.0, "averaged model moves 1/this toward the net per update", lo=1.0)
    soft_policy_weight: float = option(0.0, "weight of KataGo's soft policy terms (targets to the power 1/4; "
                                            "KataGo: 8; 0: none)", lo=0.0)
    td_value_weight: float = option(0.0, "weight of KataGo's short-term (TD) value terms per horizon, times 1.2 "
                                         "as the value term (KataGo's -td-value-loss-scales: 0.6; 0: none); the "
                                         "net gains TD value heads; rows without TD targets are masked",
                                    lo=0.0, hi=100.0)
    lr_schedule: tuple[tuple[int, float], ...] = option(
        (), "factors on the rate from sample counts on, KataGo's -lr-schedule: the flag '(0,1.0),(500K,0.5)', "
            "in a file [[0, 1.0], [500000, 0.5]] ([]: factor 1)", parse=lr_schedule_text)
    weight_decay_mode: str = option("flat", "flat: --weight-decay on every weight; katago: KataGo's batch-norm net "
                                            "groups and scaling (sgd)", choices=WEIGHT_DECAY_MODES)
    head_lr_scale: float = option(1.0, "rate factor for the heads (KataGo: 0.5)", above=0.0)
    lookahead_k: int = option(6, "lookahead: steps between syncs (KataGo: 6)", lo=1)
    lookahead_alpha: float = option(1.0, "lookahead: how far the slow weights move per sync (1: no lookahead; "
                                         "KataGo: 0.5)", above=0.0, hi=1.0)
    use_fp16: bool = option(False, "float16 autocast with loss scaling (CUDA only)")
    use_bf16: bool = option(False, "bfloat16 autocast (GPUs or CPUs with native bf16)")
    # process
    checkpoint_interval_seconds: float = option(600.0, "also checkpoint inside an epoch this often", lo=0.0)
    data_poll_seconds: float = option(30.0, "how often to look for new data while waiting", above=0.0)
    print_every_batches: int = option(100, "report losses every this many batches", lo=1)
    prefetch_batches: int = option(4, "batches prepared ahead in the data thread", lo=1)
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    seed: int | None = option(None, "random seed (default: from the OS)")

    def __post_init__(self) -> None:
        problems = []
        if not NAME_RE.fullmatch(self.name) or len(self.name) > MAX_NAME_LEN:
            problems.append(f"--name {self.name!r}: use at most {MAX_NAME_LEN} letters, digits and . _ + = "
                            f"(no '-', which separates the export name's parts)")
        if self.samples_per_epoch < self.batch_size:
            problems.append(f"--samples-per-epoch {self.samples_per_epoch} is less than one batch")
        if self.weight_decay_mode == "katago" and (self.optimizer != "sgd" or self.weight_decay is not None):
            problems.append("--weight-decay-mode katago goes with --optimizer sgd and without --weight-decay")
        try:
            check_lr_schedule(self.lr_schedule)
        except ValueError as e:
            problems.append(f"--lr-schedule: {e}")
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def feature_version(self) -> int:
        """The net's input feature version (zeroloop.features)."""
        from zeroloop.features import NAMES

        return NAMES[self.features]

    @property
    def bucket_rule(self) -> BucketRule:
        return BucketRule(self.samples_per_epoch, self.max_train_bucket_per_new_data, self.max_train_bucket_size)

    @property
    def swa_period(self) -> int:
        if self.swa_period_samples is not None:
            return self.swa_period_samples
        return max(1, self.samples_per_epoch // 2)


def extra_flag_problems(flags: dict, where: str, owner: str) -> list[str]:
    """Why these further train flags (name without dashes -> value; True: a switch) cannot be passed.

    where prefixes each name in a problem ("--train-flag "), owner says who sets the plan's own.

    A flag the run plan sets from the run's own settings is refused (``owner`` sets it), and a value is
    read as the flag would read it, then range-checked, so a bad one is refused before any stage starts.
    """
    if not flags:
        return []
    fields = {f.name: f for f in dataclasses.fields(TrainOptions)}
    hints = typing.get_type_hints(TrainOptions)
    problems = []
    for name, value in flags.items():
        f = fields.get(str(name).replace("-", "_"))
        if f is None or name in plan.TRAIN_FLAGS_SET:
            problems.append(f"{where}{name}: {f'set by {owner} itself' if f else 'no such train flag'}")
            continue
        try:
            if hints[f.name] is bool:
                if value is not True:
                    raise ValueError("a switch takes true")
                continue
            parse = f.metadata.get("parse")
            checked = parse(str(value)) if parse else config.checked(TrainOptions, {f.name: value}, "")[f.name]
            problem = config.range_problem(f, checked)
            if problem:
                raise ValueError(problem.split(": ", 1)[1])
        except (ValueError, argparse.ArgumentTypeError, ConfigError) as e:
            problems.append(f"{where}{name}={value}: {str(e).removeprefix(': ')}")
    return problems
