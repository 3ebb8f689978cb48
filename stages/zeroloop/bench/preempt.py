"""`zeroloop bench preempt`: how much self-play work survives a SIGTERM and restart every minute.

Real ``zeroloop selfplay`` subprocesses on fresh BASEDIRs, with a model of
``--net`` (random weights) in models/ and the ``--config`` self-play config,
each run for ``--duration`` seconds of wall time:

1. uninterrupted: one process, sent SIGTERM at the end;
2. interrupted: a process gets SIGTERM ``--period`` seconds after it was
   started and the next one starts as soon as it has exited, until the same
   wall time is over (restart costs count against it).

``--clock cpu`` counts ``--duration`` and ``--period`` in CPU seconds of the
run's processes (per thread each was given) instead of wall seconds: on a
shared machine a process then gets as much work done before its SIGTERM as
on a machine of its own, so the ratio no longer falls with the load (a
loaded machine stretches the fixed CPU cost of a start over fewer steps per
wall-clock period; when a process gets fewer steps than a full search's
visits, no full search finishes and no row is recorded). What stays on the
wall clock is self-play's own: the stop's ``inprogress_stop_search_seconds``,
the periodic save, the model poll. ``cpu_s_*`` is each run's CPU seconds
either way.

The two runs go side by side, each with half the threads (``--threads``,
default the usable CPUs), so that load from other processes on a shared
machine hits both alike; ``--sequential`` runs them one after the other
with all the threads (a dedicated machine, one GPU).

Both write every finished game and save their games in progress when
stopped. The rows a run recorded are those in tdata plus those recorded in
the games saved at its end (the next process finishes those games with the
rows they hold: kept work, as a finished game's are); ``ratio`` is run 2's
over run 1's, ``ratio_written`` the same for tdata rows alone (lumpier:
games finish in waves). KataGo drops the games in progress at every stop;
``--compare-drop`` runs 2 again with ``save_games_in_progress = false`` to
show what that costs (``ratio_dropping``).

``evals_ratio`` (NN evaluations of run 2 over run 1) and the rows per 1000
evaluations of each tell the machine time a run got from the work it kept.
Restart overhead comes from the interrupted run's processes: process start
to the first search step (``start_to_first_step_s``: interpreter and
imports, then the model load, then adopting and replaying the saved games,
loading the compiled search from numba's cache and the first batch), and
SIGTERM to exit (``stop_s``, of which ``stop_save_s`` is writing the
finished games and saving the games in progress); ``start_cpu_s`` is the
process's CPU seconds at its first search step. Counted, not timed, from the
restarted processes' stop lines (medians per stop): the moves searches in
progress made during the stop, the searches it cut short and their visits
(``zeroloop.selfplay.stopping``), and ``nn_evals_per_process``. A short unmeasured run
first fills numba's cache, as an earlier pod on the node would have.

``save_*``: the time to save ``--save-games`` games in progress of
``--save-board-size`` (default 256 on 19x19, a GPU pod's batch) as at a
stop, for synthetic games of realistic length (random legal moves, every
fourth move recorded with a sparse policy target, as the GPU config's
full-search probability): ``--save-moves`` is the mean game length so far.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import math
import os
import posixpath
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

from zeroloop import layout, plan, rows, runtime
from zeroloop.selfplay import config as spconfig
from zeroloop.storage import open_location


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=300.0, help="wall seconds of each run")
    parser.add_argument("--period", type=float, default=60.0, help="seconds from a process's start to its SIGTERM")
    parser.add_argument("--config", default="cpu", help="self-play config: cpu, gpu or a file")
    parser.add_argument("--net", default="b6c96", help="net size of the model in models/ (random weights)")
    parser.add_argument("--compare-drop", action="store_true",
                        help="also run the interrupted case dropping games in progress (KataGo's behaviour)")
    parser.add_argument("--sequential", action="store_true",
                        help="run the cases one after the other with all threads (default: side by side)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="what --duration and --period count: wall seconds, or CPU seconds of the run's "
                             "processes per thread (a shared machine's load then changes nothing but self-play's "
                             "own wall-clock budgets)")
    parser.add_argument("--save-games", type=int, default=256, help="games in progress for the save timing")
    parser.add_argument("--save-board-size", type=int, default=19)
    parser.add_argument("--save-moves", type=int, default=150, help="mean moves played so far per saved game")


# --- subprocess runs --------------------------------------------------------------------


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a running process, all its threads (Linux /proc); None if unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime: fields 14 and 15 of stat


class _Proc:
    """A `zeroloop selfplay` process whose stderr lines are timestamped as they arrive."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.start = time.monotonic()
        self.lines: list[tuple[float, str]] = []
        self.cpu_s: float | None = None  # its CPU seconds once it has exited (its rusage)
        self._cpu_seen = 0.0
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append((time.monotonic() - self.start, line.rstrip()))

    def cpu(self) -> float:
        """CPU seconds so far (the last reading once it has exited)."""
        if self.cpu_s is not None:
            return self.cpu_s
        seen = process_cpu_seconds(self.proc.pid) if self.proc.returncode is None else None
        if seen is not None:
            self._cpu_seen = seen
        return self._cpu_seen

    def stop(self, timeout: float = 120.0) -> float:
        """SIGTERM; wait; seconds until it exited."""
        t = time.monotonic()
        self.cpu()
        self.proc.send_signal(signal.SIGTERM)
        self._reap(t + timeout)
        self._reader.join(5)
        # Killed by the SIGTERM itself: it came before self-play set its handler, in the imports, when
        # nothing was played or adopted yet (a loaded machine, a short run), so nothing was lost.
        if self.proc.returncode not in (0, -signal.SIGTERM):
            raise RuntimeError(f"selfplay exited {self.proc.returncode}: {self.text()[-2000:]}")
        return time.monotonic() - t

    def _reap(self, deadline: float) -> None:
        """Wait for the exit (SIGKILL after deadline), keeping its CPU seconds from wait4's rusage."""
        while self.proc.returncode is None:
            try:
                pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            except ChildProcessError:  # reaped already (it exited on its own and poll() saw it)
                self.proc.wait()
                break
            if pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                self.cpu_s = usage.ru_utime + usage.ru_stime
                break
            if time.monotonic() > deadline:
                self.proc.kill()
                deadline = math.inf
            time.sleep(0.02)
        if self.cpu_s is None:
            self.cpu_s = self._cpu_seen

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def at(self, needle: str) -> float | None:
        """Seconds from start to the first line containing needle."""
        return next((t for t, line in self.lines if needle in line), None)

    def number(self, pattern: str) -> float | None:
        m = re.search(pattern, self.text())
        return float(m.group(1)) if m else None


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # the source root holding zeroloop/
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _argv(base: Path, config: Path, threads: int, seed: int, device: str) -> list[str]:
    """Self-play as the run plan starts it, with this benchmark's config file."""
    place = plan.Placement(basedir=str(base), config_dir=str(config.parent), config_suffix=config.suffix,
                           devices={"selfplay": device}, threads=threads, seed=seed)
    assert place.config_file("selfplay") == str(config)
    return [sys.executable, "-m", "zeroloop", *plan.selfplay_args(plan.RunDescription("bench"), place)]


def _run(base: Path, config: Path, models: Path, duration: float, period: float | None, threads: int,
         seed: int, device: str, clock: str = "wall") -> list[_Proc]:
    """Self-play on base for duration seconds; SIGTERM + restart every period (None: never).

    clock "wall": seconds since the run's and each process's start; "cpu":
    CPU seconds per thread, of all the run's processes and of each one.
    """
    base.mkdir(parents=True)
    Path(layout.models(str(base))).symlink_to(models, target_is_directory=True)
    env = _env()
    t0 = time.monotonic()
    spent = 0.0  # cpu clock: CPU seconds per thread of the run's exited processes
    procs: list[_Proc] = []

    def used(p: _Proc) -> tuple[float, float]:  # (the run's clock, this process's clock)
        if clock == "cpu":
            own = p.cpu() / threads
            return spent + own, own
        return time.monotonic() - t0, time.monotonic() - p.start

    while (spent if clock == "cpu" else time.monotonic() - t0) < duration - 1.0:
        p = _Proc(_argv(base, config, threads, seed + len(procs), device), env)
        procs.append(p)
        while p.proc.poll() is None:
            run_s, own_s = used(p)
            if run_s >= duration or (period is not None and own_s >= period):
                break
            time.sleep(0.05)
        p.stop_s = p.stop()
        spent += p.cpu() / threads
    return procs


def _run_cases(root: Path, cases: dict, models: Path, duration: float, threads: int, seed: int, device: str,
               sequential: bool, clock: str) -> dict[str, list[_Proc]]:
    """Each case (name -> (config, period)) on its own BASEDIR, one after another or side by side."""
    out: dict[str, list[_Proc]] = {}
    errors: list[BaseException] = []

    def one(name: str) -> None:
        try:
            config, period = cases[name]
            out[name] = _run(root / name, config, models, duration, period, threads, seed, device, clock)
        except BaseException as e:  # reported from the main thread
            errors.append(e)

    if sequential:
        for name in cases:
            one(name)
    else:
        workers = [threading.Thread(target=one, args=(name,)) for name in cases]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    if errors:
        raise errors[0]
    return out


def _recorded_rows(base: Path) -> tuple[int, int]:
    """(rows in tdata, rows recorded in saved games) of a run's BASEDIR."""
    from fsspec.implementations.local import LocalFileSystem

    from zeroloop.selfplay import snapshot
    from zeroloop.storage import Storage

    storage = Storage(LocalFileSystem())
    selfplay = layout.selfplay(str(base))
    written = sum(rows.count_rows(storage, f) for f in glob.glob(layout.tdata_file(selfplay, "*", "*")))
    saved = 0
    for f in glob.glob(posixpath.join(layout.model_inprogress(selfplay, "*"), "*.npz")):
        snap = snapshot.decode(Path(f).read_bytes(), f)
        saved += sum(len(g.recorded) for g in snap.playing) + sum(g.num_rows for g in snap.pending)
    return written, saved


STOP_LINE = re.compile(r"stopping: searches in progress made (\d+) moves in [\d.]+ s; (\d+) cut short \((\d+) visits\)")


def stop_counts(text: str) -> tuple[int, int, int] | None:
    """(moves made, searches cut, visits lost) of a self-play process's stop, from its log; None if absent."""
    m = STOP_LINE.search(text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def _median(xs: list[float | None]) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(float(np.median(xs)), 3) if xs else None


# --- save timing ------------------------------------------------------------------------


def _synthetic_games(n: int, size: int, mean_moves: int, seed: int):
    """n games in progress of random legal moves, every fourth move recorded with a sparse target."""
    from zeroloop.go import board as B
    from zeroloop.go.rules import Rules
    from zeroloop.search.batch import BatchSearch
    from zeroloop.selfplay import gamestate as gs

    rng = np.random.default_rng(seed)
    limit = 4 * size * size
    search = BatchSearch(1, size, size, 16, limit)
    legal = np.zeros(size * size + 1, dtype=np.int64)
    games = []
    for i in range(n):
        target = int(rng.integers(0, 2 * mean_moves + 1))
        rules = Rules("positional", False, 7.0)
        state = gs.GameState(int(rng.integers(1, 2**63 - 1)), size, rules, limit, "bench")
        search.new_game(0, size, rules.ko_code, False, 7.0, limit)
        while state.turn < target and not search.game_over(0):
            board = search.board(0)
            B.legal_mask(board, search.hists[0], int(board[B.H_TO_MOVE]), legal)
            moves = np.flatnonzero(legal[:-1])
            if state.turn % 4 == 0:
                kids = np.append(moves, size * size)
                w = np.zeros(len(kids))
                top = rng.choice(len(kids), size=min(40, len(kids)), replace=False)
                w[top] = rng.dirichlet(np.ones(len(top)))
                state.recorded.append(gs.record_position(board, search.hists[0], 7.0, size, state.turn, kids, w))
            move = int(rng.choice(moves)) if len(moves) and rng.random() > 0.02 else size * size
            search.play(0, move, reuse=False)
            state.moves.append(move)
        games.append(state)
    return games


def _save_timing(args: argparse.Namespace) -> dict:
    from fsspec.implementations.local import LocalFileSystem

    from zeroloop.selfplay.inprogress import SavedGames
    from zeroloop.storage import Storage

    games = _synthetic_games(args.save_games, args.save_board_size, args.save_moves, 7)
    with tempfile.TemporaryDirectory(prefix="zeroloop-bench-save-") as tmp:
        saved = SavedGames(Storage(LocalFileSystem()), tmp, args.save_board_size, stale_seconds=300.0,
                           max_age_seconds=3600.0)
        batch = saved.home("bench")
        playing = [(batch, g) for g in games]
        times = []
        for _ in range(3):
            t = time.perf_counter()
            report = saved.save(playing, [])
            times.append(time.perf_counter() - t)
    return {
        "save_games": args.save_games,
        "save_board_size": args.save_board_size,
        "save_mean_moves": round(float(np.mean([len(g.moves) for g in games])), 1),
        "save_rows": report.rows,
        "save_mb": round(report.bytes / 1e6, 2),
        "save_seconds": round(float(np.median(times)), 3),
    }


# --- the benchmark ----------------------------------------------------------------------


def _check(args: argparse.Namespace) -> None:
    from zeroloop.errors import UserError
    from zeroloop.go import board as B

    if not args.duration > 0 or not 0 < args.period < args.duration:
        raise UserError(f"--duration {args.duration:g} and --period {args.period:g}: need 0 < period < duration")
    if args.save_games < 1 or args.save_moves < 0 or not B.MIN_SIZE <= args.save_board_size <= B.MAX_SIZE:
        raise UserError(f"--save-games {args.save_games}, --save-moves {args.save_moves}, --save-board-size "
                        f"{args.save_board_size}: need at least 1 game, 0 moves, a size {B.MIN_SIZE}..{B.MAX_SIZE}")


def measure(args: argparse.Namespace) -> dict:
    _check(args)
    threads = args.threads or runtime.cpu_count()
    seed = args.seed if args.seed is not None else 1
    device = args.device or "auto"
    cfg = spconfig.load(args.config)
    cfg = dataclasses.replace(cfg, log_every_seconds=86400.0)
    from zeroloop.nn.model import random_init_model
    from zeroloop.nn.modelfile import ModelInfo, save_model

    out: dict = {"config": args.config, "net": args.net, "duration_s": args.duration, "period_s": args.period,
                 "clock": args.clock, "threads": threads}
    with tempfile.TemporaryDirectory(prefix="zeroloop-bench-preempt-") as tmp:
        root = Path(tmp)
        models = Path(layout.models(str(root)))  # shared by every run's BASEDIR (a symlink there)
        net = random_init_model(args.net, cfg.data_board_len, seed=seed)
        storage, path = open_location(str(models / f"bench-{args.net}"))
        save_model(storage, path, net, ModelInfo.for_model(net, f"bench-{args.net}"))
        config = root / "selfplay.yaml"
        config.write_text(yaml.safe_dump(dataclasses.asdict(cfg)))
        drop = root / "selfplay-drop.yaml"
        drop.write_text(yaml.safe_dump(dataclasses.asdict(dataclasses.replace(cfg, save_games_in_progress=False))))

        # Fill numba's cache (and the page cache) as a node's earlier pods would have: unmeasured.
        _run(root / "warm", config, models, min(20.0, args.duration), None, threads, seed, device)
        cases = {"steady": (config, None), "restarted": (config, args.period)}
        if args.compare_drop:
            cases["dropping"] = (drop, args.period)
        each = threads if args.sequential else max(1, threads // len(cases))
        procs = _run_cases(root, cases, models, args.duration, each, seed, device, args.sequential, args.clock)
        steady, restarted = procs["steady"], procs["restarted"]
        out["threads_per_run"] = each
        w1, s1 = _recorded_rows(root / "steady")
        w2, s2 = _recorded_rows(root / "restarted")
        evals = {name: sum(p.number(r"tdata files\), (\d+) NN evals,") or 0 for p in ps) for name, ps in procs.items()}
        out.update({
            "rows_uninterrupted": w1 + s1, "rows_interrupted": w2 + s2,
            "ratio": round((w2 + s2) / max(w1 + s1, 1), 3),
            "rows_written_uninterrupted": w1, "rows_written_interrupted": w2,
            "ratio_written": round(w2 / max(w1, 1), 3),
            "restarts": len(restarted) - 1,
            # What each run got of the machine, and how many rows it made of it.
            "nn_evals_uninterrupted": evals["steady"], "nn_evals_interrupted": evals["restarted"],
            "evals_ratio": round(evals["restarted"] / max(evals["steady"], 1), 3),
            "rows_per_1k_evals_uninterrupted": round(1000 * (w1 + s1) / max(evals["steady"], 1), 2),
            "rows_per_1k_evals_interrupted": round(1000 * (w2 + s2) / max(evals["restarted"], 1), 2),
        })
        if args.compare_drop:
            w3, _ = _recorded_rows(root / "dropping")
            out.update({"rows_dropping": w3, "ratio_dropping": round(w3 / max(w1 + s1, 1), 3),
                        "restarts_dropping": len(procs["dropping"]) - 1})
        later = restarted[1:] or restarted
        out.update({
            "start_to_first_step_s": _median([p.at("first search step") for p in later]),
            "start_to_ready_s": _median([p.at("engine ready") for p in later]),
            "imports_s": _median([p.at("games at once") for p in later]),
            "model_load_s": _median([p.number(r"engine ready in ([\d.]+) s") for p in later]),
            "adopt_replay_first_step_s": _median([p.number(r"first search step ([\d.]+) s") for p in later]),
            "games_resumed_per_start": _median([p.number(r"\((\d+) adopted games resumed\)") for p in later]),
            "stop_s": _median([p.stop_s for p in restarted]),
            "stop_save_s": _median([p.number(r"stop took ([\d.]+) s") for p in restarted]),
            "stop_save_s_max": max((p.number(r"stop took ([\d.]+) s") or 0.0) for p in restarted),
            "steady_first_step_s": _median([p.at("first search step") for p in steady]),
            "start_cpu_s": _median([p.number(r"process CPU ([\d.]+) s") for p in later]),
            # What each run got of the machine's CPU, and the rows per CPU second against the uninterrupted run.
            "cpu_s_uninterrupted": round(sum(p.cpu() for p in steady), 1),
            "cpu_s_interrupted": round(sum(p.cpu() for p in restarted), 1),
            "ratio_per_cpu_s": round(((w2 + s2) / max(sum(p.cpu() for p in restarted), 1e-9))
                                     / max((w1 + s1) / max(sum(p.cpu() for p in steady), 1e-9), 1e-9), 3),
            "nn_evals_per_process": _median([p.number(r"tdata files\), (\d+) NN evals,") for p in restarted]),
        })
        stops = [c for c in (stop_counts(p.text()) for p in restarted[:-1]) if c is not None]  # the restarts' stops
        out.update({
            "stop_moves": _median([c[0] for c in stops]),
            "stop_searches_cut": _median([c[1] for c in stops]),
            "stop_visits_lost": _median([c[2] for c in stops]),
        })
    out.update(_save_timing(args))
    return out
