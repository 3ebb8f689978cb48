"""`zeroloop train BASEDIR --name NAME --model-kind K --batch-size N --export-mode M`.

The flags are KataGo's train.sh/train.py ones with their meaning (see
``loop`` and ``bucket``); single-dash spellings work too. Exit status 0 when
training ends for any of its normal reasons (limits reached, bucket limited
with ``--stop-when-train-bucket-limited``, no data with
``--quit-if-no-data``, SIGTERM/SIGINT after a checkpoint); 2 for bad flags
or files. Every flag is also a key of a ``--config`` TOML or YAML file
(flags win); ``--help-config`` lists them with their defaults
(``zeroloop.train.options``).
"""

from __future__ import annotations

import argparse
import threading

from zeroloop import cliflags, config, metrics, runtime
from zeroloop.errors import UserError
from zeroloop.storage import BaseDir
from zeroloop.train.loop import Trainer, set_stop_on_signals
from zeroloop.train.options import GROUPS, TrainOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("basedir", metavar="BASEDIR", nargs="?",
                        help="the run's shared directory (path or fsspec URL)")
    config.add_config_flags(parser, "training")
    config.add_flags(parser, TrainOptions, GROUPS)
    cliflags.add_common(parser, metrics=True, seed=False)


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    """The settings: --config FILE's, then the flags given; a bad one refused by name."""
    return config.from_args(TrainOptions, args, args.config)


def run(args: argparse.Namespace) -> int:
    if args.help_config:
        print(config.describe(TrainOptions), end="")
        return 0
    opts = options_from_args(args)
    if args.basedir is None:
        raise UserError("BASEDIR is required")
    runtime.set_threads(args.threads)
    runtime.seed_everything(opts.seed)
    base = BaseDir.open(args.basedir)
    stop = threading.Event()
    set_stop_on_signals(stop)
    metrics.serve(args.metrics_port)
    return Trainer(base, opts, stop).run()
