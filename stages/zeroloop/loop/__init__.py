"""`zeroloop loop BASEDIR --name-prefix RUN`: the whole training loop on one machine.

Synchronous by default (``sync``: KataGo's synchronous_loop.sh, each stage
in turn, resumable anywhere); ``--async`` runs every stage at once,
forever (``asyncmode``). ``settings`` maps the run's knobs onto the
stages' flags and config files; ``children`` runs the stage processes
(the synchronous loop forks them from itself once warm: ``forking``).
Every run setting is a flag and a key of a ``--config`` TOML or YAML file
(flags win); ``--help-config`` lists them with their defaults.
"""

from __future__ import annotations

import argparse

from zeroloop import cliflags, layout
from zeroloop.errors import UserError
from zeroloop.loop import settings as S
from zeroloop.storage import BaseDir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("basedir", metavar="BASEDIR", nargs="?", help="the run's directory (created if missing)")
    cliflags.flag(parser, "--name-prefix", default=None,
                  help="the run's name, prefixed to every model name (required, here or in --config)")
    cliflags.flag(parser, "--config", default=None, metavar="FILE",
                  help="run settings from a TOML or YAML file (the keys: --help-config); flags override it")
    cliflags.flag(parser, "--help-config", action="store_true",
                  help="print every run setting with its default and meaning, as a config file, and exit")
    g = parser.add_argument_group("this invocation")
    cliflags.flag(g, "--cycles", type=int, default=None,
                  help="stop once this many cycles are done in all (default: run on until stopped)")
    cliflags.flag(g, "--max-hours", type=float, default=None,
                  help="stop cleanly after this long (the step in progress is interrupted and reruns next time)")
    cliflags.flag(g, "--max-nn-evals", type=int, default=None,
                  help="stop once the run's self-play has made this many NN evaluations in all (a compute budget "
                       "that does not depend on the machine's speed; the last cycle plays only the games it pays "
                       "for, and its candidate is gated before the loop stops)")
    cliflags.flag(g, "--async", dest="async_mode", action="store_true",
                  help="run every stage at once, forever, instead of cycles")
    cliflags.flag(g, "--selfplay-processes", type=int, default=1, help="self-play processes with --async")
    cliflags.flag(g, "--status-seconds", type=float, default=60.0, help="seconds between status lines with --async")
    cliflags.flag(g, "--warm-stages", action=argparse.BooleanOptionalAction, default=True,
                  help="synchronous loop: import the stages' modules once and fork each stage from the loop, "
                       "instead of starting a new interpreter per stage (each is still a process of its own)")
    cliflags.flag(g, "--report", action=argparse.BooleanOptionalAction, default=True,
                  help="rewrite BASEDIR/report/ after every cycle (every 10 minutes with --async)")
    S.add_flags(parser)
    g = parser.add_argument_group("common")
    cliflags.flag(g, "--log-format", choices=("text", "json"), default="text", help="log line format")
    cliflags.flag(g, "--log-level", default="INFO", help="logging level")


def run(args: argparse.Namespace) -> int:
    from zeroloop import config
    from zeroloop.loop import sync

    if args.help_config:
        print(config.describe(S.LoopSettings), end="")
        return 0
    from_file = S.read_config(args.config) if args.config else None
    if args.basedir is None:
        raise UserError("BASEDIR is required")
    if args.cycles is not None and args.cycles < 1:
        raise UserError(f"--cycles {args.cycles}: must be at least 1")
    if args.max_hours is not None and args.max_hours <= 0:
        raise UserError(f"--max-hours {args.max_hours}: must be positive")
    if args.max_nn_evals is not None and (args.max_nn_evals < 1 or args.async_mode):
        raise UserError(f"--max-nn-evals {args.max_nn_evals}: must be at least 1, and works without --async only")
    if args.selfplay_processes < 1:
        raise UserError(f"--selfplay-processes {args.selfplay_processes}: must be at least 1")
    base = BaseDir.open(args.basedir)
    if not base.storage.local:
        raise UserError("zeroloop loop runs on a local directory (run the stages themselves on a shared filesystem)")
    base.storage.makedirs(layout.loop(base.root))
    with sync.run_lock(base):
        settings = S.resolve(args, S.load_stored(base), from_file)
        fork = args.warm_stages and not args.async_mode
        sync.setup(base, settings, fork=fork)
        if fork:
            from zeroloop.loop import forking

            forking.warm_up(S.placement(base, settings).config_file("selfplay"))
        max_seconds = args.max_hours * 3600 if args.max_hours else None
        if args.async_mode:
            from zeroloop.loop.asyncmode import AsyncLoop

            return AsyncLoop(base, settings, args.selfplay_processes, max_seconds, args.status_seconds,
                             report=args.report).run()
        return sync.SyncLoop(base, settings, args.cycles, max_seconds, args.report,
                             max_nn_evals=args.max_nn_evals, fork_stages=fork).run()
