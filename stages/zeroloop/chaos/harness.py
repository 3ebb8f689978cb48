"""The fault injector: the asynchronous loop's stages, killed, stopped and restarted at random.

``ChaosRun`` sets up a BASEDIR as ``zeroloop loop --async`` does (tiny net,
small board, few visits) and starts the same stage processes
(``loop.asyncmode.stage_commands``: self-play, shuffle-export-loop, train,
gatekeeper), each with its own log under ``BASEDIR/logs/``. It supervises
them itself instead of through the loop, because the loop rightly stops
everything when a stage dies. Every ``interval`` seconds (jittered to
0.5-1.5x, so faults land at random points of each stage's work) the next
stage in turn gets the next fault of its cycle:

- ``sigkill``: SIGKILL, then a restart after a short random delay;
- ``sigterm``: SIGTERM; it must exit 0 within ``stop_grace_s``; restart;
- ``sigstop``: SIGSTOP for a random 0.5-3 s, then SIGCONT;
- ``restart``: SIGINT (what the loop sends on Ctrl-C); exit 0; restart.

Every ``corrupt_every``-th fault also drops a file of random bytes named
like tdata into self-play's output (a hostile input the shuffler must
quarantine). While it runs it follows the trainer's checkpoint
(``invariants.TrainerWatch``), notes whether the loop as a whole made
progress within ``progress_window_s`` of each fault, and whether each
faulted stage came back: it logged progress (a tdata file, a shuffle or
export, a training report or checkpoint, a gating decision) or that it
waits for work. A stage is faulted only once it is at work (after its
start and after its last fault), so a slow machine gets the same faults
later instead of different ones. A stage that
exits without being told to is a crash: it is restarted and counted.

At the end every stage gets SIGTERM and must exit 0; then the invariants
(``chaos.invariants``) are checked on the BASEDIR and ``ChaosRun.run``
returns a ``ChaosSummary``.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from zeroloop import layout, quarantine
from zeroloop.chaos import invariants as inv
from zeroloop.loop import settings as S
from zeroloop.loop.children import Child
from zeroloop.storage import BaseDir

log = logging.getLogger(__name__)

KINDS = ("sigkill", "sigterm", "sigstop", "restart")

# A line a stage logs when it did a unit of work, and one it logs when it waits for work.
PROGRESS = {
    "selfplay": re.compile(r"zeroloop\.selfplay\.writer: wrote "),
    "shuffle-export-loop": re.compile(r"shuffle \d+ published|zeroloop\.export: exported "),
    "train": re.compile(r"zeroloop\.train\.\w+: (samples \d|checkpoint saved|exported )"),
    "gatekeeper": re.compile(r"\b(accepted|rejected) \S+ vs "),
}
IDLE = {
    "selfplay": None,
    "shuffle-export-loop": re.compile(r"waiting for self-play|not enough rows"),
    "train": re.compile(r"zeroloop\.train\.loop: waiting: "),
    "gatekeeper": re.compile(r"waiting for candidates"),
}


SHUFFLED = re.compile(r"shuffle \d+ published")
EXPORTED = re.compile(r"zeroloop\.export: exported ")


def count_lines(path: str, pattern: re.Pattern) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f.read().decode(errors="replace").splitlines() if pattern.search(line))
    except FileNotFoundError:
        return 0


def tiny_settings(seed: int | None = None, gating: bool = True) -> S.LoopSettings:
    """A loop small enough for a fault every few seconds on two CPU cores.

    No seed by default: a stage restarted with the same --seed replays the same games, as a pod
    restarted with the same arguments would (the fault schedule has its own seed).
    """
    return S.LoopSettings(
        name_prefix="chaos", model_kind="b1c16", board_size=5, visits=8, cheap_visits=2, full_search_prob=0.5,
        games_at_once=8, games_per_cycle=40, gating=gating, gating_games=4, gating_visits=4,
        shuffle_min_rows=100, keep_target_rows=2000, taper_window_scale=500, batch_size=16,
        samples_per_epoch=64, max_train_per_data=2.0, max_train_samples_per_cycle=1000, lr_warmup_samples=0,
        poll_seconds=1.0, device="cpu", threads=1, seed=seed)


def _export_package_path() -> None:
    """Let `python -m zeroloop` children import this zeroloop (a checkout run from its tree, as in the tests)."""
    import zeroloop

    root = os.path.dirname(os.path.dirname(os.path.abspath(zeroloop.__file__)))
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *parts])


def stage_kind(name: str) -> str:
    return "selfplay" if name.startswith("selfplay") else name


class Stage:
    """One supervised stage process, restarted as often as needed, with its log followed."""

    def __init__(self, name: str, argv: list[str], log_path: str):
        self.name = name
        self.kind = stage_kind(name)
        self.argv = argv
        self.log_path = log_path
        self.child: Child | None = None
        self.starts = 0
        self.progress = 0  # progress lines logged, in all
        self.idle = 0  # "waiting" lines logged, in all
        self._offset = 0
        self._partial = b""

    def start(self) -> None:
        self.child = Child.start(self.name, self.argv, self.log_path, "chaos")
        self.starts += 1

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.poll() is None

    def send(self, sig: int) -> None:
        if self.child is not None and self.child.poll() is None:
            try:
                os.kill(self.child.pid, sig)
            except ProcessLookupError:
                pass

    def read_log(self) -> None:
        """Count the progress and waiting lines logged since the last call."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        idle = IDLE[self.kind]
        for raw in lines:
            line = raw.decode(errors="replace")
            if PROGRESS[self.kind].search(line):
                self.progress += 1
            elif idle is not None and idle.search(line):
                self.idle += 1

    def tail(self, n: int = 8) -> str:
        return self.child.tail(n) if self.child is not None else ""


@dataclass
class Fault:
    stage: str
    kind: str
    at: float  # seconds since the run started
    pause_s: float = 0.0
    exit_code: int | None = None  # of a clean stop (sigterm, restart)
    clean: bool | None = None  # a clean stop exited 0 within the grace period
    stop_s: float | None = None  # how long the clean stop took
    progress_mark: int = 0  # the stage's progress count when it was restarted
    idle_mark: int = 0
    recovered: bool = False  # the stage worked (or waited for work) again afterwards
    loop_mark: int = 0  # the loop's progress count at the fault
    loop_deadline: float = 0.0  # by when (monotonic) the loop must have made progress again
    loop_progressed: bool | None = None  # the loop as a whole made progress within the window after it

    @property
    def survived(self) -> bool:
        return self.clean is not False and self.recovered


@dataclass
class ChaosSummary:
    seconds: float = 0.0
    faults_injected: int = 0
    faults_survived: int = 0
    faults_by_stage: dict = field(default_factory=dict)
    faults_by_kind: dict = field(default_factory=dict)
    faults_without_loop_progress: int = 0
    slowest_clean_stop_s: float = 0.0
    failed_faults: list = field(default_factory=list)
    stage_crashes: list = field(default_factory=list)
    unclean_final_stops: list = field(default_factory=list)
    games_reported: int = 0
    games_reported_with_rows: int = 0
    games_found: int = 0
    rows: int = 0
    lost_games: int = 0
    duplicated_games: int = 0
    split_games: int = 0
    unreported_games: int = 0
    files_checked: int = 0
    corrupt_files: int = 0
    corrupt: list = field(default_factory=list)
    tmp_leftovers: list = field(default_factory=list)
    hostile_files_injected: int = 0
    files_quarantined: int = 0
    shuffles: int = 0
    exports: int = 0
    trainer_samples: int = 0
    trainer_checkpoints_seen: int = 0
    trainer_backwards: list = field(default_factory=list)
    repeated_shuffled_files: int = 0
    repeated_batches: int = 0
    models_accepted: int = 0
    models_rejected: int = 0
    models_both: list = field(default_factory=list)
    models_unloadable: list = field(default_factory=list)
    record_mismatches: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.faults_survived == self.faults_injected and not self.stage_crashes
                and not self.unclean_final_stops and self.faults_without_loop_progress == 0
                and self.lost_games == 0 and self.duplicated_games == 0 and self.corrupt_files == 0
                and not self.tmp_leftovers and self.files_quarantined == self.hostile_files_injected
                and not self.trainer_backwards and self.repeated_shuffled_files == 0 and self.repeated_batches == 0
                and not self.models_both and not self.models_unloadable and not self.record_mismatches)

    def line(self) -> str:
        return (f"lost games: {self.lost_games}, duplicated games: {self.duplicated_games}, "
                f"corrupt files: {self.corrupt_files}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        return d


class ChaosRun:
    def __init__(self, basedir: str, duration_s: float = 120.0, interval_s: float = 5.0, seed: int = 1,
                 selfplay_processes: int = 1, gating: bool = True, corrupt_every: int = 7,
                 stop_grace_s: float = 90.0, settle_s: float = 60.0, settings: S.LoopSettings | None = None,
                 max_faults: int | None = None):
        self.base = BaseDir.open(basedir)
        self.duration_s = duration_s
        # With max_faults the run ends after that many faults, duration_s only caps a slow or hung
        # run: what a run counts then does not depend on how fast the machine is.
        self.max_faults = max_faults
        self.interval_s = interval_s
        self.rng = np.random.default_rng(seed)
        self.settings = settings or tiny_settings(None, gating)
        self.selfplay_processes = selfplay_processes
        self.corrupt_every = corrupt_every
        self.stop_grace_s = stop_grace_s
        self.settle_s = settle_s
        # The loop as a whole must make progress within this long after each fault. Counting faults,
        # the next fault also waits for that progress, so the window only has to catch a hung loop
        # and is generous: a slow or loaded machine then gives the same verdict as a fast one.
        self.progress_window_s = max(2 * interval_s, 15.0) if max_faults is None else max(8 * interval_s, 120.0)
        self.stages: dict[str, Stage] = {}
        self.faults: list[Fault] = []
        self.crashes: list[str] = []
        self.hostile_files = 0
        self.watch = inv.TrainerWatch(self.base, self.settings.training_name, self.settings.samples_per_epoch)
        self._t0 = 0.0
        self._restart_at: dict[str, float] = {}  # stage -> when to start it again
        self._stopping: dict[str, tuple[Fault, float]] = {}  # stage -> (its clean-stop fault, deadline)
        self._resume_at: dict[str, float] = {}  # stopped stage -> when to SIGCONT it
        self._open: dict[str, Fault] = {}  # stage -> its last fault, until it recovers
        self._expected_exit: set[str] = set()
        # stages not yet at work since the run began: a fault during start-up (imports, before the
        # signal handlers exist) would test how fast the machine is, not the stage, so they wait
        self._starting: set[str] = set()

    # --- set-up ----------------------------------------------------------------------------

    def setup(self) -> None:
        from zeroloop.loop import asyncmode, sync

        _export_package_path()
        sync.setup(self.base, self.settings)
        commands = asyncmode.stage_commands(self.base, self.settings, self.selfplay_processes)
        for name, argv in commands.items():
            self.stages[name] = Stage(name, argv, layout.log(self.base.root, name))

    def now(self) -> float:
        return time.monotonic() - self._t0

    # --- the loop's progress ------------------------------------------------------------------

    def loop_progress(self) -> int:
        """A number that grows whenever any stage does a unit of work."""
        for s in self.stages.values():
            s.read_log()
        return sum(s.progress for s in self.stages.values())

    # --- faults -----------------------------------------------------------------------------

    def _order(self) -> list[tuple[str, str]]:
        """(stage, fault kind) in turn: every stage meets every kind of fault."""
        names = list(self.stages)
        out = []
        for round_ in range(len(KINDS)):
            for i, name in enumerate(names):
                out.append((name, KINDS[(i + round_) % len(KINDS)]))
        return out

    def inject(self, stage: Stage, kind: str) -> Fault:
        stage.read_log()
        fault = Fault(stage.name, kind, self.now())
        if kind == "sigkill":
            self._expected_exit.add(stage.name)
            stage.send(signal.SIGKILL)
            if stage.child is not None:
                stage.child.proc.wait()
            self._restart_at[stage.name] = time.monotonic() + float(self.rng.uniform(0.0, 1.0))
        elif kind in ("sigterm", "restart"):
            self._expected_exit.add(stage.name)
            stage.send(signal.SIGTERM if kind == "sigterm" else signal.SIGINT)
            self._stopping[stage.name] = (fault, time.monotonic() + self.stop_grace_s)
        elif kind == "sigstop":
            fault.pause_s = float(self.rng.uniform(0.5, 3.0))
            stage.send(signal.SIGSTOP)
            self._resume_at[stage.name] = time.monotonic() + fault.pause_s
        fault.progress_mark, fault.idle_mark = stage.progress, stage.idle
        fault.loop_mark = self.loop_progress()
        fault.loop_deadline = time.monotonic() + self.progress_window_s
        self._open[stage.name] = fault
        self.faults.append(fault)
        log.info("fault %d: %s %s at %.1fs", len(self.faults), kind, stage.name, fault.at)
        return fault

    def plant_corrupt_tdata(self) -> None:
        """A random-bytes file under a tdata name: the shuffler must quarantine it, not choke on it."""
        models = [m for m in self.base.storage.list_subdirs(self.base.selfplay)]
        if not models:
            return
        model = os.path.basename(models[int(self.rng.integers(len(models)))])
        os.makedirs(self.base.tdata(model), exist_ok=True)
        name = layout.tdata_file(self.base.selfplay, model, secrets.token_hex(8))
        with open(name + ".writing.tmp", "wb") as f:
            f.write(self.rng.bytes(int(self.rng.integers(10, 5000))))
        os.rename(name + ".writing.tmp", name)
        self.hostile_files += 1
        log.info("planted corrupt tdata %s", name)

    # --- supervision ----------------------------------------------------------------------------

    def tick(self) -> None:
        t = time.monotonic()
        for name, when in list(self._resume_at.items()):
            if t >= when:
                self.stages[name].send(signal.SIGCONT)
                del self._resume_at[name]
                self._open[name].progress_mark = self.stages[name].progress
                self._open[name].idle_mark = self.stages[name].idle
        for name, (fault, deadline) in list(self._stopping.items()):
            stage = self.stages[name]
            code = stage.child.poll() if stage.child else 0
            if code is not None:
                fault.exit_code, fault.clean = code, code == 0
                fault.stop_s = round(self.now() - fault.at, 2)
                del self._stopping[name]
                self._restart_at[name] = t + float(self.rng.uniform(0.0, 1.0))
            elif t > deadline:
                fault.clean = False
                stage.send(signal.SIGKILL)
                stage.child.proc.wait()
                del self._stopping[name]
                self._restart_at[name] = t
        for name, when in list(self._restart_at.items()):
            if t >= when:
                stage = self.stages[name]
                stage.read_log()
                self._expected_exit.discard(name)
                stage.start()
                del self._restart_at[name]
                fault = self._open.get(name)
                if fault is not None:
                    fault.progress_mark, fault.idle_mark = stage.progress, stage.idle
        for name, stage in self.stages.items():
            if name in self._expected_exit or stage.child is None:
                continue
            code = stage.child.poll()
            if code is not None:
                self.crashes.append(f"{name} exited on its own with status {code} at {self.now():.1f}s: "
                                    f"{stage.tail(3)}")
                log.warning("stage %s crashed (status %s); restarting it", name, code)
                stage.start()
        for name in list(self._starting):
            stage = self.stages[name]
            stage.read_log()
            if stage.progress or stage.idle:
                self._starting.discard(name)
        for name, fault in list(self._open.items()):
            stage = self.stages[name]
            stage.read_log()
            busy = name in self._resume_at or name in self._stopping or name in self._restart_at
            if not busy and (stage.progress > fault.progress_mark or stage.idle > fault.idle_mark):
                fault.recovered = True
                del self._open[name]
        self.watch.poll()
        waiting = [f for f in self.faults if f.loop_progressed is None]
        if waiting:
            progress = self.loop_progress()
            for f in waiting:
                if progress > f.loop_mark:
                    f.loop_progressed = True
                elif t > f.loop_deadline:
                    f.loop_progressed = False

    def _busy(self, name: str) -> bool:
        """Whether a stage is still starting, down, or coming back from its last fault."""
        return (name in self._starting or name in self._open or name in self._restart_at or name in self._stopping
                or name in self._resume_at)

    def _settled(self) -> bool:
        """Every stage back from its faults, and every planted corrupt file found by the shuffler."""
        if self._open or self._restart_at or self._stopping or self._resume_at:
            return False
        return len(quarantine.list_quarantined(self.base)) >= self.hostile_files

    def run(self) -> ChaosSummary:
        self.setup()
        self._t0 = time.monotonic()
        order = self._order()
        try:
            for stage in self.stages.values():
                stage.start()
            self._starting = set(self.stages)
            next_fault = time.monotonic() + self.interval_s * 2  # let every stage get going first
            turn = 0
            end = self._t0 + self.duration_s
            while time.monotonic() < end and (self.max_faults is None or len(self.faults) < self.max_faults):
                self.tick()
                if time.monotonic() >= next_fault:
                    if self.max_faults is not None and any(f.loop_progressed is None for f in self.faults):
                        next_fault = time.monotonic() + 0.5  # the loop has not yet moved on since the last fault
                        continue
                    ready = [i for i in range(len(order)) if not self._busy(order[(turn + i) % len(order)][0])]
                    if not ready:
                        next_fault = time.monotonic() + 0.5  # every stage is still coming back from a fault
                        continue
                    turn = (turn + ready[0]) % len(order)  # a stage still recovering waits for its next turn
                    name, kind = order[turn]
                    turn += 1
                    self.inject(self.stages[name], kind)
                    if self.corrupt_every and len(self.faults) % self.corrupt_every == 0:
                        self.plant_corrupt_tdata()
                    next_fault = time.monotonic() + self.interval_s * float(self.rng.uniform(0.5, 1.5))
                time.sleep(0.2)
            settle_end = time.monotonic() + self.settle_s
            while time.monotonic() < settle_end and not self._settled():
                self.tick()
                time.sleep(0.2)
            self.tick()
            progress = self.loop_progress()
            for f in self.faults:
                if f.loop_progressed is None:
                    f.loop_progressed = progress > f.loop_mark
        finally:
            final = self.shutdown()
        return self.summarize(final)

    def shutdown(self) -> list[str]:
        """SIGCONT anything stopped, then SIGTERM every stage: each must exit 0."""
        unclean = []
        for name in list(self._resume_at):
            self.stages[name].send(signal.SIGCONT)
        self._resume_at.clear()
        for stage in self.stages.values():
            if stage.running:
                stage.send(signal.SIGTERM)
        for stage in self.stages.values():
            if stage.child is None:
                continue
            try:
                code = stage.child.proc.wait(self.stop_grace_s)
            except Exception:  # noqa: BLE001 - TimeoutExpired: kill it, and say so
                stage.send(signal.SIGKILL)
                code = stage.child.proc.wait()
                unclean.append(f"{stage.name}: did not stop within {self.stop_grace_s:.0f}s of SIGTERM")
                continue
            if code != 0 and stage.name not in self._expected_exit:
                unclean.append(f"{stage.name}: exit status {code} after SIGTERM: {stage.tail(3)}")
        return unclean

    # --- the verdict -----------------------------------------------------------------------------

    def summarize(self, unclean: list[str]) -> ChaosSummary:
        s = ChaosSummary(seconds=round(self.now(), 1))
        s.faults_injected = len(self.faults)
        s.faults_survived = sum(f.survived for f in self.faults)
        for f in self.faults:
            s.faults_by_stage[f.stage] = s.faults_by_stage.get(f.stage, 0) + 1
            s.faults_by_kind[f.kind] = s.faults_by_kind.get(f.kind, 0) + 1
            if not f.survived:
                s.failed_faults.append(f"{f.kind} {f.stage} at {f.at:.1f}s: "
                                       + ("unclean stop" if f.clean is False else "no progress afterwards"))
        s.faults_without_loop_progress = sum(1 for f in self.faults if f.loop_progressed is False)
        s.slowest_clean_stop_s = max((f.stop_s for f in self.faults if f.stop_s is not None), default=0.0)
        s.stage_crashes = list(self.crashes)
        s.unclean_final_stops = unclean
        games = inv.check_games(self.base)
        s.games_reported, s.games_found, s.rows = games.reported, games.found, games.rows
        s.games_reported_with_rows = games.reported_with_rows
        s.lost_games, s.duplicated_games = len(games.lost), len(games.duplicated)
        s.split_games, s.unreported_games = games.split, games.unreported
        files = inv.check_files(self.base)
        s.files_checked, s.corrupt_files, s.corrupt = files.checked, len(files.corrupt), files.corrupt[:20]
        s.files_quarantined = len(files.quarantined)
        s.hostile_files_injected = self.hostile_files
        s.tmp_leftovers = inv.find_leftovers(self.base)
        loop_log = self.stages["shuffle-export-loop"].log_path
        s.shuffles = count_lines(loop_log, SHUFFLED)
        s.exports = count_lines(loop_log, EXPORTED)
        training = inv.check_training(self.base, self.settings.training_name, self.watch)
        s.trainer_samples = training.samples
        s.trainer_checkpoints_seen = len(self.watch.points)
        s.trainer_backwards = training.backwards
        s.repeated_shuffled_files = len(training.repeated_files)
        s.repeated_batches = training.repeated_batches
        models = inv.check_models(self.base)
        s.models_accepted, s.models_rejected = len(models.accepted), len(models.rejected)
        s.models_both, s.models_unloadable = models.both, models.unloadable
        s.record_mismatches = models.record_mismatch
        return s
