"""`zeroloop train BASEDIR --name NAME --model-kind K --batch-size N --export-mode M`.

The flags are KataGo's train.sh/train.py ones with their meaning (see
``loop`` and ``bucket``); single-dash spellings work too. Exit status 0 when
training ends for any of its normal reasons (limits reached, bucket limited
with ``--stop-when-train-bucket-limited``, no data with
``--quit-if-no-data``, SIGTERM/SIGINT after a checkpoint); 2 for bad flags
or files.
"""

from __future__ import annotations

import argparse
import re
import threading

from zeroloop import cliflags, metrics, runtime
from zeroloop.errors import UserError
from zeroloop.nn import modelfile
from zeroloop.nn.configs import CONFIGS
from zeroloop.storage import BaseDir
from zeroloop.train.loop import Trainer, set_stop_on_signals
from zeroloop.train.optim import OPTIMIZERS, WEIGHT_DECAY_MODES, parse_lr_schedule
from zeroloop.train.options import EXPORT_MODES, TrainOptions

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=]*")
# Exports are named <NAME>-s<samples>-d<rows> and models <RUN>-<that>: keep room in the 64-byte limit.
MAX_NAME_LEN = 24


def _count(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0 or value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(value)


def _lr_schedule(text: str) -> tuple[tuple[int, float], ...]:
    try:
        return parse_lr_schedule(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    f = cliflags.flag
    parser.add_argument("basedir", metavar="BASEDIR", help="the run's shared directory (path or fsspec URL)")
    r = parser.add_argument_group("run")
    f(r, "--name", required=True, help="training name: train/<NAME>/ and exports <NAME>-s<samples>-d<rows>")
    f(r, "--model-kind", default="b6c96", choices=sorted(CONFIGS), help="net size for a new net")
    f(r, "--batch-size", type=int, required=True, help="samples per step (match the shuffle's --batch-size)")
    f(r, "--export-mode", choices=EXPORT_MODES, required=True,
      help="main: export to torchmodels_toexport; extra: to torchmodels_toexport_extra; trainonly: never")
    f(r, "--pos-len", type=int, default=None, help="board length of the net (default: the data's)")
    f(r, "--initial-checkpoint", default=None,
      help="start a new run from this checkpoint file or exported model directory")
    s = parser.add_argument_group("schedule")
    f(s, "--samples-per-epoch", type=_count, default=1_000_000, help="samples per epoch")
    f(s, "--epochs-per-export", type=int, default=1, help="export every this many epochs")
    f(s, "--max-epochs-this-instance", type=int, default=None, help="stop after this many epochs")
    f(s, "--max-training-samples", type=_count, default=None, help="stop once the run has trained this many")
    d = parser.add_argument_group("data gating (the train bucket)")
    f(d, "--max-train-bucket-per-new-data", type=float, default=None,
      help="samples allowed per new data row (default: no bucket)")
    f(d, "--max-train-bucket-size", type=float, default=1e30, help="most samples the bucket can hold")
    f(d, "--stop-when-train-bucket-limited", action="store_true",
      help="exit when the bucket is empty instead of waiting for data")
    f(d, "--max-train-steps-since-last-reload", type=_count, default=None,
      help="wait for a new shuffle after this many samples on the same one")
    f(d, "--no-repeat-files", action="store_true",
      help="never train on a shuffled file twice (by content); wait for a new shuffle instead")
    f(d, "--quit-if-no-data", action="store_true", help="exit 0 instead of waiting when there is no data")
    o = parser.add_argument_group("optimisation")
    f(o, "--optimizer", choices=OPTIMIZERS, default="sgd", help="SGD with momentum 0.9, or AdamW")
    f(o, "--lr-scale", type=float, default=1.0, help="multiplies the learning rate")
    f(o, "--weight-decay", type=float, default=None,
      help="L2 per sample for sgd (default 3e-5), decoupled decay for adamw (default 0.01)")
    f(o, "--lr-warmup-samples", type=_count, default=2_000_000,
      help="samples over which KataGo's warmup reaches the full rate (0: none)")
    f(o, "--swa-period-samples", type=_count, default=None,
      help="update the averaged model every this many samples (default: samples-per-epoch / 2)")
    f(o, "--swa-scale", type=float, default=8.0, help="averaged model moves 1/this toward the net per update")
    f(o, "--soft-policy-weight", type=float, default=0.0,
      help="weight of KataGo's soft policy terms (targets to the power 1/4; KataGo: 8; 0: none)")
    f(o, "--td-value-weight", type=float, default=0.0,
      help="weight of KataGo's short-term (TD) value terms per horizon, times 1.2 as the value term (KataGo's "
           "-td-value-loss-scales: 0.6; 0: none); the net gains TD value heads; rows without TD targets are "
           "masked")
    f(o, "--lr-schedule", type=_lr_schedule, default=(),
      help="factors on the rate from sample counts on, KataGo's -lr-schedule: '(0,1.0),(500K,0.5)'")
    f(o, "--weight-decay-mode", choices=WEIGHT_DECAY_MODES, default="flat",
      help="flat: --weight-decay on every weight; katago: KataGo's batch-norm net groups and scaling (sgd)")
    f(o, "--head-lr-scale", type=float, default=1.0, help="rate factor for the heads (KataGo: 0.5)")
    f(o, "--lookahead-k", type=int, default=6, help="lookahead: steps between syncs (KataGo: 6)")
    f(o, "--lookahead-alpha", type=float, default=1.0,
      help="lookahead: how far the slow weights move per sync (1: no lookahead; KataGo: 0.5)")
    f(o, "--use-fp16", action="store_true", help="float16 autocast with loss scaling (CUDA only)")
    f(o, "--use-bf16", action="store_true", help="bfloat16 autocast (GPUs or CPUs with native bf16)")
    p = parser.add_argument_group("process")
    f(p, "--checkpoint-interval-seconds", type=float, default=600.0,
      help="also checkpoint inside an epoch this often")
    f(p, "--data-poll-seconds", type=float, default=30.0, help="how often to look for new data while waiting")
    f(p, "--print-every-batches", type=int, default=100, help="report losses every this many batches")
    f(p, "--prefetch-batches", type=int, default=4, help="batches prepared ahead in the data thread")
    cliflags.add_common(parser, device=True, metrics=True)


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    problems = []
    if not _NAME_RE.fullmatch(args.name) or len(args.name) > MAX_NAME_LEN:
        problems.append(f"--name {args.name!r}: use at most {MAX_NAME_LEN} letters, digits and . _ + = "
                        f"(no '-', which separates the export name's parts)")
    if args.batch_size < 1:
        problems.append(f"--batch-size {args.batch_size}: must be at least 1")
    if args.samples_per_epoch < args.batch_size:
        problems.append(f"--samples-per-epoch {args.samples_per_epoch} is less than one batch")
    if args.epochs_per_export < 1:
        problems.append("--epochs-per-export must be at least 1")
    if args.lr_scale <= 0:
        problems.append("--lr-scale must be positive")
    if args.swa_scale < 1:
        problems.append("--swa-scale must be at least 1")
    if args.max_train_bucket_per_new_data is not None and args.max_train_bucket_per_new_data < 0:
        problems.append("--max-train-bucket-per-new-data must not be negative")
    if args.pos_len is not None and not 2 <= args.pos_len <= modelfile.MAX_POS_LEN:
        problems.append(f"--pos-len {args.pos_len}: must be 2..{modelfile.MAX_POS_LEN}")
    if args.soft_policy_weight < 0 or args.head_lr_scale <= 0:
        problems.append("--soft-policy-weight must not be negative and --head-lr-scale must be positive")
    if not 0 <= args.td_value_weight < float("inf"):
        problems.append(f"--td-value-weight {args.td_value_weight}: must be a number >= 0")
    if args.lookahead_k < 1 or not 0 < args.lookahead_alpha <= 1:
        problems.append("--lookahead-k must be at least 1 and --lookahead-alpha in (0, 1]")
    if args.weight_decay_mode == "katago" and (args.optimizer != "sgd" or args.weight_decay is not None):
        problems.append("--weight-decay-mode katago goes with --optimizer sgd and without --weight-decay")
    if args.print_every_batches < 1 or args.prefetch_batches < 1:
        problems.append("--print-every-batches and --prefetch-batches must be at least 1")
    if args.data_poll_seconds <= 0 or args.checkpoint_interval_seconds < 0:
        problems.append("--data-poll-seconds must be positive and --checkpoint-interval-seconds not negative")
    if problems:
        raise UserError("; ".join(problems))
    return TrainOptions(
        name=args.name, model_kind=args.model_kind, batch_size=args.batch_size, export_mode=args.export_mode,
        samples_per_epoch=args.samples_per_epoch, epochs_per_export=args.epochs_per_export,
        max_epochs_this_instance=args.max_epochs_this_instance, max_training_samples=args.max_training_samples,
        max_train_bucket_per_new_data=args.max_train_bucket_per_new_data,
        max_train_bucket_size=args.max_train_bucket_size,
        stop_when_train_bucket_limited=args.stop_when_train_bucket_limited,
        max_train_steps_since_last_reload=args.max_train_steps_since_last_reload,
        no_repeat_files=args.no_repeat_files, quit_if_no_data=args.quit_if_no_data, lr_scale=args.lr_scale,
        optimizer=args.optimizer, weight_decay=args.weight_decay, warmup_samples=args.lr_warmup_samples,
        use_fp16=args.use_fp16, use_bf16=args.use_bf16, initial_checkpoint=args.initial_checkpoint,
        device=args.device, pos_len=args.pos_len, swa_period_samples=args.swa_period_samples,
        swa_scale=args.swa_scale, checkpoint_interval_s=args.checkpoint_interval_seconds,
        data_poll_s=args.data_poll_seconds, print_every_batches=args.print_every_batches,
        prefetch_batches=args.prefetch_batches, seed=args.seed, soft_policy_weight=args.soft_policy_weight,
        td_value_weight=args.td_value_weight,
        lr_schedule=args.lr_schedule, weight_decay_mode=args.weight_decay_mode, head_lr_scale=args.head_lr_scale,
        lookahead_k=args.lookahead_k, lookahead_alpha=args.lookahead_alpha)


def run(args: argparse.Namespace) -> int:
    opts = options_from_args(args)
    runtime.set_threads(args.threads)
    runtime.seed_everything(args.seed)
    base = BaseDir.open(args.basedir)
    stop = threading.Event()
    set_stop_on_signals(stop)
    metrics.serve(args.metrics_port)
    return Trainer(base, opts, stop).run()
