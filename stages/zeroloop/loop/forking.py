"""Stage processes forked from a warm loop: the start-up a cycle pays once, not five times.

A `zeroloop <stage>` process spends its first seconds importing torch and
numba and loading numba's compiled functions from its cache, before its
first step; the synchronous loop starts five such processes per cycle.
The loop imports all of that once (``warm_up``) and then forks each stage:
the child is a copy of the warm loop that runs the same command line
(``zeroloop.cli.main``) as a freshly started process would, so it starts
at its first step.

It stays a process of its own, as a started one: its own session, log file
on stdout and stderr, SIGINT when the loop dies (``PR_SET_PDEATHSIG``), the
default signal handlers, its exit status that of the command (or minus the
signal that killed it), and on exit the interpreter's own steps (joining
threads, its own atexit handlers, not the loop's) before ``os._exit``, never
a return into the loop's code.

What makes forking safe here: the loop is one thread, and it never runs a
torch operation (a forked OpenMP thread pool can hang a child); the run's
first model is made in a forked child too (``in_child``). Each stage sets
torch's thread count after numba's (``runtime.set_threads``): numba's
OpenMP layer, started in a forked child, reset it.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Sequence

# The modules the synchronous loop's stages import: torch._dynamo is what torch.optim imports on its
# first optimizer (seconds), matplotlib what the report after every cycle draws with.
STAGE_MODULES = ("torch", "torch._dynamo", "zeroloop.nn.modelfile", "zeroloop.selfplay.main", "zeroloop.shuffle",
                 "zeroloop.train.main", "zeroloop.export", "zeroloop.gatekeeper", "zeroloop.report")

# File descriptors a forked stage must not keep open, as a started process inherits none (the loop's
# lock file; its POSIX lock is the loop's alone in any case).
_CLOSE_IN_CHILD: set[int] = set()


@contextlib.contextmanager
def closed_in_children(fd: int):
    """While open, fd is closed in every forked child (the number is forgotten when it closes)."""
    _CLOSE_IN_CHILD.add(fd)
    try:
        yield
    finally:
        _CLOSE_IN_CHILD.discard(fd)


def warm_up(selfplay_config: str | None = None) -> float:
    """Import what the stages import and load numba's compiled search (a few steps of self-play without a
    net, with selfplay_config: the run's); the seconds it took."""
    import importlib

    t = time.perf_counter()
    for name in STAGE_MODULES:
        importlib.import_module(name)
    import matplotlib

    matplotlib.use("Agg")  # as the report does, before pyplot
    importlib.import_module("matplotlib.pyplot")
    _load_compiled_search(selfplay_config)
    return time.perf_counter() - t


def _load_compiled_search(config_path: str | None) -> None:
    """Self-play steps with the null evaluator (numpy only: no torch operation here), in a scratch directory:
    numba's functions of the search and the features are loaded from its cache (or compiled) once."""
    import dataclasses
    import tempfile

    import numpy as np
    from fsspec.implementations.local import LocalFileSystem

    from zeroloop.search.evaluators import NullEvaluator
    from zeroloop.selfplay import config as spconfig
    from zeroloop.selfplay.engine import SelfplayEngine
    from zeroloop.selfplay.models import FixedModel, LoadedModel
    from zeroloop.storage import Storage

    cfg = spconfig.load(config_path)
    cfg = dataclasses.replace(cfg, num_games=2, save_games_in_progress=False)
    with tempfile.TemporaryDirectory(prefix="zeroloop-warm-") as tmp:
        model = FixedModel(LoadedModel("null", NullEvaluator(cfg.data_board_len)))
        engine = SelfplayEngine(cfg, Storage(LocalFileSystem()), tmp, model, np.random.default_rng(0))
        for _ in range(8):
            engine.tick()


class ForkedProcess:
    """A ``subprocess.Popen``-like handle on a `zeroloop` command run in a forked copy of this process."""

    def __init__(self, pid: int, args: Sequence[str]):
        self.pid = pid
        self.args = list(args)
        self.returncode: int | None = None

    @classmethod
    def start(cls, args: Sequence[str], log_fd: int, preexec: Callable[[], None] | None = None) -> "ForkedProcess":
        """Fork; the child runs `zeroloop ARGS` with stdout and stderr on log_fd (closed here)."""
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            _run_child(list(args), log_fd, parent, preexec)
        os.close(log_fd)
        return cls(pid, args)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None:
            if self.returncode is None:
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode
        end = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() >= end:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _forget_parent_exit() -> None:
    """Drop the exit handlers the child inherited: they belong to the loop (a temporary directory of the
    loop's, removed at its exit, must not go when a stage exits); the child's own still run."""
    atexit._clear()
    weakref.finalize._registry.clear()
    weakref.finalize._registered_with_atexit = False


def _run_child(args: list[str], log_fd: int, parent: int, preexec: Callable[[], None] | None) -> None:
    code = 1
    try:
        _forget_parent_exit()
        os.setsid()
        if preexec is not None:
            preexec()
        if os.getppid() != parent:  # the loop died before the death signal was armed
            os._exit(1)
        _own_io(log_fd)
        for fd in _CLOSE_IN_CHILD:
            try:
                os.close(fd)
            except OSError:
                pass
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        sys.argv = ["zeroloop", *args]
        from zeroloop import cli

        code = cli.main(args)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except BaseException:  # as an uncaught exception ends an interpreter: traceback, status 1
        traceback.print_exc()
        code = 1
    finally:
        _exit(code)


def _own_io(log_fd: int) -> None:
    """stdin from /dev/null, stdout and stderr to the log, unbuffered as PYTHONUNBUFFERED makes them."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 (the interpreter's own stream)
    sys.stdout = io.TextIOWrapper(open(1, "wb", 0, closefd=False), write_through=True)  # noqa: SIM115
    sys.stderr = io.TextIOWrapper(open(2, "wb", 0, closefd=False), write_through=True,  # noqa: SIM115
                                  errors="backslashreplace")
    logging.getLogger().handlers[:] = []  # the loop's handlers write to its own streams


def _exit(code: int) -> None:
    """What an interpreter does on exit (join threads, atexit, flush), then leave without returning."""
    try:
        shutdown = getattr(threading, "_shutdown", None)
        if shutdown is not None:
            shutdown()
        atexit._run_exitfuncs()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 (exiting whatever happens)
        pass
    os._exit(code if 0 <= code <= 255 else 1)


def in_child(fn: Callable[[], None]) -> int:
    """Run fn in a forked child (torch work the loop itself must not do before forking); its exit status."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _forget_parent_exit()
            fn()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            _exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
