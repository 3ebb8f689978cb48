"""`zeroloop shuffle-export-loop BASEDIR --name-prefix RUN [--gating] [shuffle flags]`.

KataGo's ``shuffle_and_export_loop.sh`` for asynchronous training: two
loops that run until SIGTERM/SIGINT, sharing BASEDIR with self-play,
training and the gatekeeper.

- Shuffle: whenever self-play has written at least ``--min-new-rows`` rows
  since the last shuffle (and at the start), one shuffle of the window
  exactly as ``zeroloop shuffle`` does (every ``zeroloop shuffle`` flag is
  accepted here with its meaning), then a pause of ``--shuffle-interval-seconds``.
  Below ``--min-rows`` it logs how many rows exist and waits.
- Export: every ``--export-poll-seconds`` (in a thread, so a long shuffle
  never delays a model), ``zeroloop export``'s pass: training exports
  become models in ``modelstobetested/`` (``--gating``) or ``models/``.

Both run in this one process (not as child commands) so that the
``zeroloop_shuffle_*`` and ``zeroloop_export_*`` metrics are served on the
one ``--metrics-port`` the operator probes. On SIGTERM or SIGINT a
shuffle in progress is abandoned at once (its staging directory and scratch
are removed; nothing is published) and an export pass in progress
finishes (it is quick and atomic); then the process exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from zeroloop import cliflags, modelnames, shuffled
from zeroloop.errors import UserError
from zeroloop.export import export_pending
from zeroloop.shuffle import main as shuffle
from zeroloop.shuffle import inputs, window
from zeroloop.storage import BaseDir

log = logging.getLogger("zeroloop.shuffle_export_loop")


class _Interrupted(Exception):
    """Raised inside a shuffle by SIGTERM/SIGINT: abandon it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    shuffle.add_arguments(parser)
    parser.epilog = "Runs until SIGTERM or SIGINT, then exits 0."
    g = parser.add_argument_group("the loops")
    cliflags.flag(g, "--name-prefix", default=None,
                  help="the run's name, prefixed to every exported model (required)")
    cliflags.flag(g, "--gating", action="store_true",
                  help="export to modelstobetested/ for the gatekeeper (default: straight to models/)")
    cliflags.flag(g, "--katago", action="store_true",
                  help="also write each model in KataGo's format (model.bin.gz; see zeroloop export)")
    cliflags.flag(g, "--min-new-rows", type=int, default=1,
                  help="shuffle again once self-play has written this many more rows")
    cliflags.flag(g, "--shuffle-interval-seconds", type=float, default=20.0,
                  help="pause after each shuffle (and between checks for new rows)")
    cliflags.flag(g, "--export-poll-seconds", type=float, default=10.0, help="time between export passes")


class ShuffleExportLoop:
    def __init__(self, base: BaseDir, opts: shuffle.ShuffleOptions, prefix: str, gating: bool, min_new_rows: int,
                 shuffle_interval_s: float, export_poll_s: float, katago: bool = False):
        self.base = base
        self.opts = opts
        self.prefix = prefix
        self.gating = gating
        self.katago = katago
        self.min_new_rows = min_new_rows
        self.shuffle_interval_s = shuffle_interval_s
        self.export_poll_s = export_poll_s
        self.stop = threading.Event()
        self.shuffling = False
        self.shuffles = 0
        self._last_rows: int | None = None
        self._waiting_for: int | None = None

    def request_stop(self) -> None:
        """Stop both loops; a shuffle in progress is abandoned (from a signal handler)."""
        self.stop.set()
        if self.shuffling:
            self.shuffling = False
            raise _Interrupted()

    def export_loop(self) -> None:
        warned: set[str] = set()
        while True:
            try:
                export_pending(self.base, self.prefix, self.gating, warned, self.katago)
            except OSError as e:
                log.warning("export pass failed, retrying in %.0fs: %s", self.export_poll_s, e)
            if self.stop.wait(self.export_poll_s):
                return

    def _data_rows(self) -> int:
        return inputs.scan(self.base, self.opts.pos_len, need=lambda total, rnd: 0).total_rows

    def shuffle_step(self) -> bool:
        """Shuffle if there is enough new data; True if a shuffle was published."""
        rows = self._data_rows()
        if self._last_rows is not None and rows - self._last_rows < self.min_new_rows:
            return False
        before = shuffled.latest_dir(self.base)
        try:
            self.shuffling = True
            outcome = shuffle.shuffle_once(self.base, self.opts)
        except _Interrupted:
            # Interrupted after publishing (while removing old shuffles) counts as done.
            if shuffled.latest_dir(self.base) != before:
                self.shuffles += 1
                log.info("shuffle %d published: %s", self.shuffles, shuffled.latest_dir(self.base))
            else:
                log.info("shuffle abandoned: nothing published")
            raise
        except window.NotEnoughRows as e:
            if self._waiting_for != e.usable:
                log.info("%s; waiting for self-play", e)
                self._waiting_for = e.usable
            return False
        finally:
            self.shuffling = False
        self._last_rows = rows
        self.shuffles += 1
        log.info("shuffle %d published: %s (%d rows)", self.shuffles, outcome.out_dir, outcome.summary.num_rows)
        return True

    def run(self) -> int:
        exporter = threading.Thread(target=self.export_loop, name="export-loop", daemon=True)
        exporter.start()
        try:
            while not self.stop.is_set():
                try:
                    self.shuffle_step()
                except _Interrupted:
                    break
                except OSError as e:
                    log.warning("shuffle failed, retrying in %.0fs: %s", self.shuffle_interval_s, e)
                self.stop.wait(self.shuffle_interval_s)
        except _Interrupted:
            pass
        self.stop.set()
        exporter.join()
        log.info("shuffle-export-loop stopped after %d shuffles", self.shuffles)
        return 0


def run(args: argparse.Namespace) -> int:
    if args.help_config:
        print(shuffle.help_config(), end="")
        return 0
    opts = shuffle.options_from_args(args)
    if args.basedir is None or args.name_prefix is None:
        raise UserError("BASEDIR and --name-prefix are required")
    problem = modelnames.check_model_name(f"{args.name_prefix}-x")
    if problem:
        raise UserError(f"--name-prefix {args.name_prefix!r}: {problem}")
    if args.min_new_rows < 1:
        raise UserError(f"--min-new-rows {args.min_new_rows}: must be at least 1")
    if args.shuffle_interval_seconds < 0 or args.export_poll_seconds <= 0:
        raise UserError("--shuffle-interval-seconds must not be negative and --export-poll-seconds must be positive")
    base = BaseDir.open(args.basedir)
    loop = ShuffleExportLoop(base, opts, args.name_prefix, args.gating, args.min_new_rows,
                             args.shuffle_interval_seconds, args.export_poll_seconds, args.katago)

    def on_signal(signum, _frame):
        log.info("%s: stopping", signal.Signals(signum).name)
        loop.request_stop()

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, on_signal)
    shuffle.serve_metrics(args.metrics_port)
    log.info("shuffle-export-loop on %s: export to %s every %.0fs, shuffle on %d new rows", base.root,
             "modelstobetested" if args.gating else "models", args.export_poll_seconds, args.min_new_rows)
    return loop.run()
