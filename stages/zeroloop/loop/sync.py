"""The synchronous loop: KataGo's synchronous_loop.sh, resumable at any point.

Each cycle runs five steps, each a `zeroloop <stage>` process
(``children``) with the flags that make it finish instead of running on:

1. ``gatekeeper --quit-if-no-nets-to-test``: gate the model the last cycle
   exported (skipped without gating while nothing is queued);
2. ``selfplay --max-games-total``: the cycle's games with the newest model;
3. ``shuffle``: the window of recent rows (below ``--min-rows`` it writes
   nothing and the cycle goes on);
4. ``train --stop-when-train-bucket-limited --no-repeat-files
   --quit-if-no-data``: as many epochs as the new rows allow;
5. ``export``: the new model, to ``modelstobetested/`` or ``models/``.

Resuming: ``BASEDIR/loop/state.json`` names the cycle and the step in
progress and is rewritten at every step boundary. Killed anywhere (the loop
and its stage by SIGKILL included), the same command reruns the step that
was in progress; every stage is itself safe to kill and restart. Self-play
is told the total number of games the BASEDIR should hold when the cycle's
self-play ends, so a rerun plays only the games still missing. One loop per
BASEDIR: a lock file refuses a second.

Output: one line per step when it ends (with a progress bar while it runs
on a terminal), a summary per cycle (also appended to
``loop/cycles.jsonl``), and the report (``zeroloop report``) rewritten
after every cycle in ``BASEDIR/report/`` (beside the next cycle).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import math
import os
import posixpath
import re
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import TextIO

import tqdm

from zeroloop import decisions, exits, layout, modellist, shuffled
from zeroloop.errors import UserError
from zeroloop.loop import settings as S
from zeroloop.loop import forking
from zeroloop.loop.children import Child
from zeroloop.runstats import RunStats
from zeroloop.storage import BaseDir

log = logging.getLogger("zeroloop.loop")

STEPS = ("gatekeeper", "selfplay", "shuffle", "train", "export")
# Cycles in a row that had rows enough to shuffle but trained nothing, while self-play still has no net,
# after which the loop gives up: random rows count toward the window only up to the shuffle's minimum, so
# such a cycle's shuffle is the same size as the last one's and training would never start.
MAX_CYCLES_WITHOUT_TRAINING = 3
NN_EVALS_LINE = re.compile(r"selfplay stopped: .*?(\d+) NN evals")

tqdm.tqdm.monitor_interval = 0  # no monitor thread: children are started with a preexec function


@dataclass
class LoopState:
    cycle: int = 1  # the cycle in progress
    step: str = STEPS[0]  # the step in progress (rerun on resume)
    selfplay_target: int | None = None  # games BASEDIR should hold when this cycle's self-play ends
    cycle_time: float = 0.0  # when the cycle started (seconds since the epoch)
    start_games: int = 0
    start_rows: int = 0
    start_samples: int = 0
    step_seconds: dict = field(default_factory=dict)
    nn_evals: int = 0  # self-play NN evaluations of the whole run so far (from the self-play logs)
    random_evals: int = 0  # self-play evaluations by the random evaluator (no net; not counted as NN evals)
    evals_per_game: float = 0.0  # NN evaluations per game of the last self-play step with a net
    start_nn_evals: int = 0
    shuffled: bool = False  # this cycle's shuffle step wrote a shuffle
    train_stop: str = ""  # why this cycle's train step trained nothing (its stop record)
    cycles_without_training: int = 0  # cycles in a row that shuffled, with no net yet, and trained nothing

    @classmethod
    def load(cls, base: BaseDir) -> "LoopState":
        path = layout.loop_state(base.root)
        if not base.storage.exists(path):
            return cls()
        try:
            d = json.loads(base.storage.read_bytes(path))
            state = cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
        except (ValueError, TypeError) as e:
            raise UserError(f"{path} is unreadable ({e}); fix or remove it") from None
        if state.step not in STEPS:
            raise UserError(f"{path}: unknown step {state.step!r}")
        return state

    def save(self, base: BaseDir) -> None:
        base.storage.write_bytes(layout.loop_state(base.root), (json.dumps(asdict(self), indent=1) + "\n").encode())


def setup(base: BaseDir, settings: S.LoopSettings, fork: bool = False) -> None:
    """Directories, stage configs and the run's first (random-weight) model (made in a forked child
    with fork, so that this process runs no torch operation before it forks stages)."""
    for d in (base.selfplay, base.models, base.modelstobetested, base.rejectedmodels, base.gatekeepersgf,
              base.logs, layout.loop(base.root)):
        base.storage.makedirs(d)
    S.save(base, settings)
    S.write_stage_configs(base, settings)
    path = layout.loop_init_model(base.root)
    if modellist.is_model_dir(base.storage, path):
        return
    if not fork:
        _make_init_model(base, settings, path)
    elif forking.in_child(lambda: _make_init_model(base, settings, path)) != 0:
        raise UserError(f"could not write the run's first model to {path} (the error is above)")


def _make_init_model(base: BaseDir, settings: S.LoopSettings, path: str) -> None:
    import torch

    from zeroloop.features import NAMES
    from zeroloop.nn import modelfile
    from zeroloop.nn.model import build_model

    torch.manual_seed(settings.seed if settings.seed is not None else 0)
    net = build_model(settings.model_kind, settings.board_size, NAMES[settings.features]).eval()
    info = modelfile.ModelInfo.for_model(net, f"{settings.name_prefix}-init",
                                         extra={"note": "the random-weight net training starts from"})
    if base.storage.exists(path):
        base.storage.remove_tree(path)  # an incomplete one from a killed start
    modelfile.save_model(base.storage, path, net, info)


@contextlib.contextmanager
def run_lock(base: BaseDir):
    """One loop per BASEDIR (local directories; the lock goes with the process, even on SIGKILL). A POSIX
    record lock, which a forked child does not inherit: a stage still stopping after its loop was killed
    does not keep the next loop out (nor does a started one)."""
    if not base.storage.local:
        yield
        return
    path = layout.loop_lock(base.root)
    with open(path, "a+") as f:
        try:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            f.seek(0)
            raise UserError(f"another zeroloop loop is running on {base.root} (pid {f.read().strip() or '?'})") \
                from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        with forking.closed_in_children(f.fileno()):
            yield


def fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def fmt_losses(losses: dict[str, float]) -> str:
    short = {"policy": "policy", "opponent_policy": "opp", "value": "value", "score": "score", "ownership": "own",
             "soft_policy": "soft", "soft_opponent_policy": "soft-opp", "td_value_long": "td-long",
             "td_value_mid": "td-mid", "td_value_short": "td-short", "td_score": "td-score"}
    return " ".join(f"{short.get(k, k)} {v:.3f}" for k, v in losses.items()) if losses else "none yet"


class SyncLoop:
    def __init__(self, base: BaseDir, settings: S.LoopSettings, cycles: int | None = None,
                 max_seconds: float | None = None, report: bool = True, out: TextIO = sys.stdout,
                 max_nn_evals: int | None = None, fork_stages: bool = False):
        self.base = base
        self.fork_stages = fork_stages  # fork each stage from this (warm) process: forking.py
        self.s = settings
        self.cycles = cycles
        self.max_nn_evals = max_nn_evals
        self.deadline = time.monotonic() + max_seconds if max_seconds else None
        self.report = report
        self.out = out
        self.tty = out.isatty()
        self.stats = RunStats(base)
        self._models = modellist.ModelListing(base.storage, base.models)
        self._targets = {d: modellist.ModelListing(base.storage, d) for d in (base.models, base.modelstobetested)}
        self.stopping: str | None = None  # why the loop is stopping
        self.child: Child | None = None
        self.report_child: Child | None = None  # the report of the last cycle, running beside the next one

    # --- output -------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _prefix(self, state: LoopState) -> str:
        total = f"/{self.cycles}" if self.cycles else ""
        return f"cycle {state.cycle}{total}"

    # --- signals ------------------------------------------------------------------------

    def request_stop(self, why: str) -> None:
        if self.stopping is None:
            self.stopping = why
        if self.child is not None:
            self.child.interrupt()

    def _on_signal(self, signum, _frame) -> None:
        if self.stopping is not None and self.child is not None:
            self.child.proc.kill()  # a second Ctrl-C: do not wait for the stage's clean stop
        self.request_stop(signal.Signals(signum).name)

    # --- running a step -------------------------------------------------------------------

    def _run(self, state: LoopState, name: str, argv: list[str], progress=None, total: int | None = None,
             unit: str = "") -> int | None:
        """Run one stage to its end; its exit status, or None if the loop is stopping."""
        if self.stopping is not None:
            return None
        child = Child.start(name, argv, layout.log(self.base.root, name), f"cycle {state.cycle}",
                            fork=self.fork_stages)
        self.child = child
        running = {"cycle": state.cycle, "step": name, "pid": child.pid, "loop_pid": os.getpid()}
        self.base.storage.write_bytes(layout.loop_running(self.base.root), json.dumps(running).encode())
        if not self.tty:
            self.say(f"{self._prefix(state)} · {name}: started (log: {child.log_path})")
        bar = tqdm.tqdm(total=total, desc=f"{self._prefix(state)} · {name}", unit=unit, disable=not self.tty,
                        leave=False, dynamic_ncols=True)
        next_progress = 0.0
        try:
            while child.poll() is None:
                time.sleep(0.25)
                if self.deadline is not None and time.monotonic() > self.deadline:
                    self.request_stop("time limit")
                if self.stopping is not None:
                    child.interrupt()
                elif progress is not None and not bar.disable and time.monotonic() >= next_progress:
                    bar.update(max(0, progress() - bar.n))
                    next_progress = time.monotonic() + 2.0
        finally:
            bar.close()
            self.child = None
        rc = child.proc.returncode
        if self.stopping is not None:
            return None
        if rc not in (0, exits.NOT_ENOUGH_ROWS if name == "shuffle" else 0):
            raise UserError(f"{name} failed (exit status {rc}) in cycle {state.cycle}; its log "
                            f"{child.log_path} ends with:\n{child.tail()}\nRerun the same command to retry the step.")
        return rc

    # --- the steps --------------------------------------------------------------------------

    def step_gatekeeper(self, state: LoopState) -> str | None:
        queued = self._targets[self.base.modelstobetested].models()
        if not self.s.gating and not queued:
            return "skipped (no gating)"
        if not queued:
            return "no candidate"
        since = time.time()
        if self._run(state, "gatekeeper", S.gatekeeper_argv(self.base, self.s, True, 10 * state.cycle)) is None:
            return None
        made = self.stats.decisions_since(since - 1)
        return "; ".join(_decision_text(r) for r in made) or "no decision"

    def _cycle_games(self, state: LoopState, games: int) -> int:
        """Games this cycle plays: a full cycle, or under --max-nn-evals what the budget's rest pays for
        at the NN evaluations per game of the last step with a net (else of the run so far: games is the
        count of games played with a net)."""
        if self.max_nn_evals is None or games == 0 or state.nn_evals == 0:
            return self.s.games_per_cycle
        per_game = state.evals_per_game or state.nn_evals / games  # the latest games: lengths drift
        left = self.max_nn_evals - state.nn_evals
        return max(1, min(self.s.games_per_cycle, math.ceil(left / per_game)))

    def budget_spent(self, state: LoopState) -> bool:
        return self.max_nn_evals is not None and state.nn_evals >= self.max_nn_evals

    def step_selfplay(self, state: LoopState) -> str | None:
        games = self.stats.games()
        if state.selfplay_target is None:
            net_games = games - self.stats.random_games()
            state.selfplay_target = games + self._cycle_games(state, net_games)
            state.save(self.base)
        remaining = state.selfplay_target - games
        if remaining <= 0:
            return "nothing left to play"
        rows0 = self.stats.rows()
        model = self._models.latest()
        rc = self._run(state, "selfplay", S.selfplay_argv(self.base, self.s, remaining, 10 * state.cycle + 1),
                       progress=lambda: self.stats.games() - games, total=remaining, unit="game")
        evals = selfplay_nn_evals(layout.log(self.base.root, "selfplay"))  # a stop by signal logs them too
        if model is None:
            state.random_evals += evals  # no net: not part of the compute budget
        else:
            state.nn_evals += evals
            played = self.stats.games() - games
            if played > 0 and evals > 0:
                state.evals_per_game = evals / played
        state.save(self.base)
        if rc is None:
            return None
        played, rows = self.stats.games() - games, self.stats.rows() - rows0
        what = f"{evals:,} NN evals with {posixpath.basename(model)}" if model else \
            f"{evals:,} evaluations with the random evaluator"
        return f"{played} games, {rows:,} rows, {what}"

    def step_shuffle(self, state: LoopState) -> str | None:
        rc = self._run(state, "shuffle", S.shuffle_argv(self.base, self.s, 10 * state.cycle + 2))
        if rc is None:
            return None
        state.shuffled = rc != exits.NOT_ENOUGH_ROWS
        if rc == exits.NOT_ENOUGH_ROWS:
            return f"not enough rows yet ({self.stats.rows():,} of {self.s.shuffle_min_rows:,})"
        latest = shuffled.latest_dir(self.base)
        summary = shuffled.read_summary(self.base, latest) if latest else None
        if summary is None:
            return "no shuffle"
        first, end = summary.range
        return f"{summary.num_rows:,} rows kept from a window of {end - first:,} (of {end:,})"

    def step_train(self, state: LoopState) -> str | None:
        before = self.stats.samples_trained()
        started = time.time()
        rc = self._run(state, "train", S.train_argv(self.base, self.s, True, 10 * state.cycle + 3),
                       progress=lambda: self.stats.samples_trained() - before, unit="sample")
        if rc is None:
            return None
        after = self.stats.samples_trained()
        stop = exits.read_stop(self.base.storage, self.base.train_stop(self.s.training_name), since=started)
        if after == before:
            state.train_stop = stop.message if stop else f"see {layout.log(self.base.root, 'train')}"
            return f"trained nothing: {state.train_stop}"
        return (f"{after - before:,} samples ({after:,} in all); {fmt_losses(self.stats.last_losses())}"
                + (f"; stopped: {stop.summary}" if stop else ""))

    def step_export(self, state: LoopState) -> str | None:
        target = self.base.modelstobetested if self.s.gating else self.base.models
        before = {p for _, p in self._targets[target].models()}
        if self._run(state, "export", S.export_argv(self.base, self.s)) is None:
            return None
        new = [posixpath.basename(p) for _, p in self._targets[target].models() if p not in before]
        where = "modelstobetested" if self.s.gating else "models"
        return f"{', '.join(new)} -> {where}/" if new else "no new model"

    # --- the loop -------------------------------------------------------------------------------

    def _cycle_summary(self, state: LoopState) -> dict:
        games, rows, samples = self.stats.games(), self.stats.rows(), self.stats.samples_trained()
        made = self.stats.decisions_since(state.cycle_time - 1)
        models = self.stats.model_tally()
        return {
            "cycle": state.cycle, "time": round(time.time(), 3), "seconds": round(time.time() - state.cycle_time, 1),
            "games": games - state.start_games, "total_games": games, "rows": rows - state.start_rows,
            "total_rows": rows, "samples": samples - state.start_samples, "total_samples": samples,
            "nn_evals": state.nn_evals - state.start_nn_evals, "total_nn_evals": state.nn_evals,
            "random_evals": state.random_evals,
            "losses": self.stats.last_losses(), "accepted_models": models.count,
            "model": models.newest.name if models.newest else "random",
            "gating": [{"candidate": r.candidate, "decision": r.decision, "score": r.score, "games": r.games,
                        "baseline": r.baseline} for r in made],
            "step_seconds": state.step_seconds,
        }

    def _print_summary(self, summary: dict) -> None:
        played = [g for g in summary["gating"] if g["games"]]
        unplayed = len(summary["gating"]) - len(played)
        gating = "; ".join([f"{g['candidate']} {g['decision']} ({g['score']:.3f} in {g['games']} games vs "
                            f"{g['baseline']})" for g in played]
                           + ([f"{unplayed} older candidates rejected unplayed"] if unplayed else []))
        gating = gating or ("none" if self.s.gating else "off")
        self.say(f"== cycle {summary['cycle']} done in {fmt_seconds(summary['seconds'])}: "
                 f"games {summary['games']:,} ({summary['total_games']:,} in all), "
                 f"rows {summary['rows']:,} ({summary['total_rows']:,}), "
                 f"samples {summary['samples']:,} ({summary['total_samples']:,}), "
                 f"NN evals {summary['nn_evals']:,} ({summary['total_nn_evals']:,}); "
                 f"losses {fmt_losses(summary['losses'])}; self-play model {summary['model']} "
                 f"({summary['accepted_models']} accepted); gating: {gating}")

    def _new_cycle(self, state: LoopState) -> None:
        state.cycle_time = time.time()
        state.start_games, state.start_rows = self.stats.games(), self.stats.rows()
        state.start_samples = self.stats.samples_trained()
        state.start_nn_evals = state.nn_evals
        state.selfplay_target = None
        state.step_seconds = {}
        state.shuffled, state.train_stop = False, ""

    def run(self) -> int:
        state = LoopState.load(self.base)
        if state.cycle_time != 0.0 and not (self.cycles is not None and state.cycle > self.cycles):
            self.say(f"resuming cycle {state.cycle} at {state.step}")
        if state.cycle_time == 0.0:
            self._new_cycle(state)
            state.save(self.base)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._run_cycles(state)
        finally:
            self._reap_report(interrupt=self.stopping is not None)
            for s, h in previous.items():
                signal.signal(s, h)

    def _run_cycles(self, state: LoopState) -> int:
        if self.cycles is not None and state.cycle > self.cycles:
            self.say(f"{state.cycle - 1} cycles already done in {self.base.root} (--cycles {self.cycles})")
            return 0
        while True:
            while state.step in STEPS:
                if state.step == "selfplay" and state.selfplay_target is None and self.budget_spent(state):
                    self.say(f"done: {state.nn_evals:,} self-play NN evaluations of --max-nn-evals "
                             f"{self.max_nn_evals:,} spent; rerun with a larger budget to carry on")
                    return 0
                started = time.monotonic()
                result = getattr(self, f"step_{state.step}")(state)
                if result is None:  # stopping: the step reruns next time
                    return self._stopped(state)
                seconds = time.monotonic() - started
                state.step_seconds[state.step] = round(state.step_seconds.get(state.step, 0.0) + seconds, 1)
                self.say(f"{self._prefix(state)} · {state.step}: {result} · {fmt_seconds(seconds)}")
                i = STEPS.index(state.step)
                if i + 1 == len(STEPS):
                    break
                state.step = STEPS[i + 1]
                state.save(self.base)
            summary = self._cycle_summary(state)
            with open(layout.loop_cycles(self.base.root), "a") as f:
                f.write(json.dumps(summary) + "\n")
            self._print_summary(summary)
            not_started = self._training_not_started(state, summary)
            state.cycle += 1
            state.step = STEPS[0]
            self._new_cycle(state)
            state.save(self.base)
            if self.report:
                self._write_report(state)
            if not_started:
                raise UserError(not_started)
            if self.stopping is not None:
                return self._stopped(state)
            if self.cycles is not None and state.cycle > self.cycles:
                self.say(f"done: {self.cycles} cycles; report: {layout.report_file(self.base.root)}")
                return 0
            if self.deadline is not None and time.monotonic() > self.deadline:
                self.request_stop("time limit")
                return self._stopped(state)

    def _training_not_started(self, state: LoopState, summary: dict) -> str | None:
        """Counts the cycles in a row in which training failed to start; past MAX_CYCLES_WITHOUT_TRAINING, why.

        Only while self-play has no net: a loop with one makes NN evaluations (its budget runs down) and its
        window grows with every cycle. The next cycle starts afresh after the error, so a rerun with better
        settings carries on.
        """
        stalled = state.shuffled and summary["samples"] == 0 and self._models.latest() is None
        state.cycles_without_training = state.cycles_without_training + 1 if stalled else 0
        if state.cycles_without_training < MAX_CYCLES_WITHOUT_TRAINING:
            return None
        s = self.s
        return (f"training has not started: {state.cycles_without_training} cycles in a row shuffled rows of "
                f"random games and trained nothing (last time: {state.train_stop or 'no reason recorded'}). Until "
                f"the first net exists, random rows count toward the shuffle window only up to --shuffle-min-rows "
                f"{s.shuffle_min_rows}, so each cycle's shuffle is about as large as the last and an epoch of "
                f"--samples-per-epoch {s.samples_per_epoch} (--batch-size {s.batch_size}; each shuffled file is "
                f"used once) never fits; raise --shuffle-min-rows or lower --samples-per-epoch and rerun")

    def _write_report(self, state: LoopState, wait: bool = False) -> None:
        """Start the report of the cycles so far. It runs beside the next cycle (it only reads BASEDIR, as in
        the asynchronous loop), off the cycle's critical path, unless wait or the loop is stopping."""
        self._reap_report()
        self.report_child = Child.start("report", S.report_argv(self.base), layout.log(self.base.root, "report"),
                                        f"after cycle {state.cycle - 1}", fork=self.fork_stages)
        if wait or self.stopping is not None:
            self._reap_report(interrupt=self.stopping is not None and not wait)

    def _reap_report(self, interrupt: bool = False) -> None:
        """Wait for the report in progress (interrupt: ask it to stop first); say if it failed."""
        child, self.report_child = self.report_child, None
        if child is None:
            return
        rc = child.stop(grace_s=300) if interrupt else child.proc.wait()
        if rc != 0 and not interrupt:
            self.say(f"(report failed, exit status {rc}; see {child.log_path})")

    def _stopped(self, state: LoopState) -> int:
        if self.stopping == "time limit" and self.report:
            self._write_report(state, wait=True)
            self.say(f"report: {layout.report_file(self.base.root)}")
        self.say(f"stopped ({self.stopping}) in cycle {state.cycle} at {state.step}; rerun the same command to "
                 f"carry on")
        return 0


def selfplay_nn_evals(path: str) -> int:
    """NN evaluations the last self-play process in this log reported when it stopped (0: none found)."""
    for line in reversed(_log_tail(path, 20_000)):
        if line.startswith("=== "):
            return 0
        m = NN_EVALS_LINE.search(line)
        if m:
            return int(m.group(1))
    return 0


def _log_tail(path: str, size: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode(errors="replace").splitlines()
    except OSError:
        return []


def _decision_text(r: decisions.DecisionRecord) -> str:
    if not r.games:
        return f"{r.decision} {r.candidate} ({r.reason})"
    return f"{r.decision} {r.candidate} vs {r.baseline} ({r.wins}-{r.losses}-{r.draws}, score {r.score:.3f})"


