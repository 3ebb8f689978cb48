"""The `zeroloop` command: one CLI, a subcommand per stage and tool.

Each subcommand lives in its own module, which defines
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only
when their command runs, so `zeroloop gtp` does not pay for importing the
trainer. Expected failures print one line without a traceback: ``UserError``
(bad input, exit 2) and the OSErrors of a failing environment such as a
full disk or an unreadable volume (exit 1). Flags use KataGo's long names
(``--max-games-total``); KataGo's single-dash spellings
(``-max-games-total``) are accepted too (see ``cliflags.flag``).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys

from zeroloop import cliflags, exits, logs
from zeroloop.errors import UserError

# OSErrors that mean the environment failed (reported in one line, exit exits.ENVIRONMENT).
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
                                errno.EIO, errno.ENOTDIR, errno.ENOENT, errno.EEXIST, errno.ESTALE})

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "loop": ("zeroloop.loop", "run the whole training loop on one machine (synchronous, or --async)"),
    "selfplay": ("zeroloop.selfplay.main", "play self-play games with the newest model, writing training rows"),
    "shuffle": ("zeroloop.shuffle", "shuffle the recent window of self-play rows for training"),
    "train": ("zeroloop.train.main", "train the net on shuffled data, exporting models"),
    "export": ("zeroloop.export", "turn training exports into model files for self-play or gating"),
    "gatekeeper": ("zeroloop.gatekeeper", "test candidate models against the accepted one"),
    "shuffle-export-loop": ("zeroloop.shuffle_export_loop", "shuffle and export forever (asynchronous mode)"),
    "gtp": ("zeroloop.gtp", "a GTP v2 engine (random player or a model with search)"),
    "match": ("zeroloop.match", "play two GTP engines against each other and rate them"),
    "ladder": ("zeroloop.ladder", "rate every accepted model of a run on one Elo scale"),
    "report": ("zeroloop.report", "plots and a summary of a run"),
    "bench": ("zeroloop.bench", "measure speed: rules, selfplay, train, shuffle, ..."),
    "export-katago-model": ("zeroloop.katago.modelcli", "write a zeroloop model in KataGo's .bin.gz format"),
    "import-katago-model": ("zeroloop.katago.importcli", "turn a KataGo net (g170 and later batch-norm) into a "
                                                         "zeroloop model"),
    "import-katago-data": ("zeroloop.katago.importdata", "convert KataGo self-play data into a run's training rows"),
    "operator": ("zeroloop_operator.run", "run the Kubernetes operator (needs zeroloop[operator])"),
}

# (command, subcommand) -> (module, one-line help): commands with a second word
SUBCOMMANDS: dict[tuple[str, str], tuple[str, str]] = {
    ("operator", "render"): ("zeroloop_operator.render",
                             "print every object the operator would create for the TrainingRuns in a file"),
}


def _top_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zeroloop",
        description="KataGo-style self-play training of Go nets from zero.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {n:<20} {h}" for n, (_, h) in COMMANDS.items())
        + "".join(f"\n  {' '.join(k):<20} {h}" for k, (_, h) in SUBCOMMANDS.items())
        + "\n\nRun `zeroloop COMMAND --help` for a command's flags.",
    )
    p.add_argument("command", nargs="?", help="the command to run")
    return p


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        _top_parser().print_help()
        return 0
    name, rest = argv[0], argv[1:]
    if name in ("-V", "--version", "version"):
        from zeroloop import __version__

        print(f"zeroloop {__version__}")
        return 0
    if name not in COMMANDS:
        print(f"zeroloop: unknown command {name!r}; known: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module_name, help_text = COMMANDS[name]
    if rest and (name, rest[0]) in SUBCOMMANDS:
        module_name, help_text = SUBCOMMANDS[(name, rest[0])]
        name, rest = f"{name} {rest[0]}", rest[1:]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (e.name.startswith(("kopf", "kubernetes"))):
            print(f"zeroloop {name}: needs the operator extra: pip install 'zeroloop[operator]'", file=sys.stderr)
            return 2
        raise
    parser = cliflags.ArgumentParser(prog=f"zeroloop {name}", description=help_text)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    logs.setup(getattr(args, "log_format", "text"), getattr(args, "log_level", "INFO"))
    try:
        code = int(module.run(args) or 0)
        if from_command_line and getattr(module, "FAST_EXIT", False):
            _exit_now(code)
        return code
    except UserError as e:
        print(f"zeroloop {name}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return exits.INTERRUPTED
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error of ours.
        sys.stderr.close()
        return 0
    except OSError as e:
        if e.errno not in ENVIRONMENT_ERRNOS:
            raise
        # The machine, not the code: a full disk, a read-only or unreadable volume. Every
        # write is atomic, so what was published stays whole; say what failed, exit non-zero.
        logging.getLogger("zeroloop").debug("%s failed", name, exc_info=True)
        where = f": {e.filename}" if e.filename else ""
        print(f"zeroloop {name}: error: {e.strerror or e}{where}", file=sys.stderr)
        return exits.ENVIRONMENT


def _exit_now(code: int) -> None:
    """Skip the interpreter's teardown (about 0.6 s once torch is imported): a command that
    has written and fsynced everything it owes exits at once, so a restarted pod loses less."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
