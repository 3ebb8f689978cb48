"""Stage processes started by the loop: own log file, stopped with it, never orphaned.

Each stage runs as its own `zeroloop <stage>` process, as KataGo's loop
scripts run them: a crash or a leak in one stage cannot take the loop down,
and a stage restarted after an interruption resumes exactly as it would
when started by hand. Its output is appended to ``BASEDIR/logs/<stage>.log``.

Children get a session of their own, so a Ctrl-C in the terminal reaches
the loop only, which passes SIGINT on once; every stage treats SIGINT as a
request to stop cleanly (finish or drop the work in flight, flush, exit).
On Linux each child also gets SIGINT when the loop itself dies, even by
SIGKILL (``PR_SET_PDEATHSIG``), so no stage outlives its loop.

``fork=True`` forks the stage from the (warm) loop instead of starting an
interpreter (``zeroloop.loop.forking``): the same command, process and log,
without paying the imports again.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from zeroloop.loop import forking

log = logging.getLogger(__name__)

ZEROLOOP_COMMAND = [sys.executable, "-m", "zeroloop"]  # how the loop's argv start (settings.zeroloop)

PR_SET_PDEATHSIG = 1


try:  # loaded now: the child between fork and exec should only make the call
    _PRCTL = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):
    _PRCTL = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGINT))


@dataclass
class Child:
    """A running stage process."""

    name: str
    argv: list[str]
    log_path: str
    proc: subprocess.Popen | forking.ForkedProcess
    started: float = field(default_factory=time.monotonic)
    interrupted: bool = False

    @classmethod
    def start(cls, name: str, argv: list[str], log_path: str, header: str = "", fork: bool = False) -> "Child":
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        with open(log_path, "ab") as logf:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            logf.write(f"\n=== {stamp} {header} {' '.join(argv)}\n".encode())
            logf.flush()
            if fork and argv[:3] == ZEROLOOP_COMMAND:
                return cls(name, argv, log_path, forking.ForkedProcess.start(argv[3:], os.dup(logf.fileno()),
                                                                            _die_with_parent))
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=_die_with_parent, env=env)
        return cls(name, argv, log_path, proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def interrupt(self) -> None:
        """Ask the stage to stop cleanly (SIGINT), once."""
        if not self.interrupted and self.proc.poll() is None:
            self.interrupted = True
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)

    def stop(self, grace_s: float = 60.0) -> int:
        """Interrupt, wait up to grace_s, then kill; the exit status."""
        self.interrupt()
        try:
            return self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs: killing it", self.name, grace_s)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            return self.proc.wait()

    def tail(self, lines: int = 5) -> str:
        """The last lines of its log (for an error message)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4000))
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

