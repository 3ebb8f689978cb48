"""The asynchronous mode: every stage runs on its own, forever, sharing BASEDIR.

``zeroloop loop BASEDIR --async`` starts, as docs/loop.md's asynchronous
set-up and KataGo's documentation describe:

- ``--selfplay-processes`` self-play processes (polling models/ for the
  newest model; several on one BASEDIR are the intended use);
- ``shuffle-export-loop`` (shuffles whenever there is new data, exports
  each new training export);
- ``train`` without ``--stop-when-train-bucket-limited``: it waits for new
  data when the train bucket is empty;
- with gating, ``gatekeeper`` polling ``modelstobetested/``.

It supervises them: a status line every ``--status-seconds`` (games, rows,
samples, accepted models, last losses), the report rewritten every
``--report-seconds``, and on SIGINT/SIGTERM (or ``--max-hours``) every
stage is asked to stop cleanly and waited for. A stage that exits on its
own is an error: the others are stopped and the loop exits non-zero,
naming the stage's log. The same stages can be started by hand instead,
one command each (docs/loop.md, "Asynchronous mode").
"""

from __future__ import annotations

import signal
import sys
import time
from typing import TextIO

from zeroloop import layout
from zeroloop.errors import UserError
from zeroloop.loop import settings as S
from zeroloop.loop.children import Child
from zeroloop.loop.sync import fmt_losses, fmt_seconds
from zeroloop.runstats import RunStats
from zeroloop.storage import BaseDir


def stage_commands(base: BaseDir, s: S.LoopSettings, selfplay_processes: int) -> dict[str, list[str]]:
    """name -> argv of every stage of the asynchronous set."""
    out = {f"selfplay-{i}": S.selfplay_argv(base, s, None, 100 + i) for i in range(selfplay_processes)}
    out["shuffle-export-loop"] = S.shuffle_export_loop_argv(base, s)
    out["train"] = S.train_argv(base, s, synchronous=False, seed_offset=3)
    if s.gating:
        out["gatekeeper"] = S.gatekeeper_argv(base, s, once=False, seed_offset=4)
    return out


class AsyncLoop:
    def __init__(self, base: BaseDir, settings: S.LoopSettings, selfplay_processes: int = 1,
                 max_seconds: float | None = None, status_seconds: float = 60.0, report_seconds: float = 600.0,
                 report: bool = True, out: TextIO = sys.stdout):
        self.base = base
        self.s = settings
        self.selfplay_processes = selfplay_processes
        self.deadline = time.monotonic() + max_seconds if max_seconds else None
        self.status_seconds = status_seconds
        self.report_seconds = report_seconds
        self.report = report
        self.out = out
        self.stats = RunStats(base)
        self.stopping: str | None = None
        self.children: dict[str, Child] = {}

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _on_signal(self, signum, _frame) -> None:
        if self.stopping is None:
            self.stopping = signal.Signals(signum).name

    def status(self, started: float) -> str:
        models = self.stats.model_tally()
        return (f"[{fmt_seconds(time.monotonic() - started)}] games {self.stats.games():,}, "
                f"rows {self.stats.rows():,}, samples {self.stats.samples_trained():,}, "
                f"models accepted {models.count} (newest {models.newest.name if models.newest else 'none'}); "
                f"losses {fmt_losses(self.stats.last_losses())}")

    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        started = time.monotonic()
        failed: tuple[str, Child] | None = None
        report: Child | None = None
        try:
            for name, argv in stage_commands(self.base, self.s, self.selfplay_processes).items():
                self.children[name] = Child.start(name, argv, layout.log(self.base.root, name), "async")
                self.say(f"started {name} (pid {self.children[name].pid}, log {self.children[name].log_path})")
            next_status = time.monotonic() + self.status_seconds
            next_report = time.monotonic() + self.report_seconds
            while self.stopping is None:
                time.sleep(0.5)
                for name, child in self.children.items():
                    if child.poll() is not None:
                        failed = (name, child)
                        self.stopping = f"{name} exited"
                        break
                now = time.monotonic()
                if self.deadline is not None and now > self.deadline:
                    self.stopping = self.stopping or "time limit"
                if now >= next_status:
                    self.say(self.status(started))
                    next_status = now + self.status_seconds
                if self.report and now >= next_report and (report is None or report.poll() is not None):
                    report = Child.start("report", S.report_argv(self.base), layout.log(self.base.root, "report"), "")
                    next_report = now + self.report_seconds
        finally:
            self.say(f"stopping every stage ({self.stopping or 'error'})")
            for child in self.children.values():
                child.interrupt()
            for child in self.children.values():
                child.stop(grace_s=120)
            if report is not None:
                report.stop(grace_s=120)
            for s, h in previous.items():
                signal.signal(s, h)
        self.say(self.status(started))
        if failed is not None:
            name, child = failed
            raise UserError(f"{name} exited on its own (status {child.proc.returncode}); its log {child.log_path} "
                            f"ends with:\n{child.tail()}")
        if self.report:
            Child.start("report", S.report_argv(self.base), layout.log(self.base.root, "report"), "final").proc.wait()
            self.say(f"report: {layout.report_file(self.base.root)}")
        return 0
