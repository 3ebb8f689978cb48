"""`zeroloop gatekeeper`: test candidate models against the accepted one.

    zeroloop gatekeeper --test-models-dir BASEDIR/modelstobetested \\
        --accepted-models-dir BASEDIR/models --rejected-models-dir BASEDIR/rejectedmodels \\
        --sgf-output-dir BASEDIR/gatekeepersgf [--selfplay-dir BASEDIR/selfplay] \\
        [--required-candidate-win-prop 0.5] [--no-autoreject-old-models] \\
        [--quit-if-no-nets-to-test] --config cpu|gpu|FILE [--device D]

KataGo's gatekeeper semantics:

- It tests the newest candidate in the test directory against the newest
  accepted model ("newest" by the weights' modification time, as self-play
  picks models), or against the random evaluator while none is accepted.
- A candidate older than the accepted model is rejected without playing
  (unless ``--no-autoreject-old-models``): once the newest of several
  queued candidates is accepted, the older ones go.
- The match (``zeroloop.arena``) plays up to ``num_games_per_gating``
  games, colours alternating, many at once with each net batched on its
  own, and stops as soon as the result is decided: by the fixed-length
  rule, or with ``sprt = true`` by Leela Zero's sequential probability
  ratio test (``zeroloop.gating``). Ties go to the candidate.
- Accepting or rejecting is a rename into the accepted or rejected
  directory; with ``--selfplay-dir`` an accepted model's
  ``selfplay/<name>/{tdata,sgfs}`` are created first, so self-play
  processes never race to create them.
- Each decision leaves ``<sgf-output-dir>/<candidate>/result.json``
  (``zeroloop.decisions``) beside the SGFs of the candidate's games.
- SIGINT/SIGTERM abandons the match in progress without deciding (the
  candidate stays queued; the games finished so far are written as SGFs)
  and exits 0. ``--quit-if-no-nets-to-test`` exits once no candidate is left.
"""

from __future__ import annotations

import argparse
import logging
import posixpath
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from zeroloop import cliflags, config as cfgmod, decisions, metrics, modellist, runtime
from zeroloop.arena import A, Arena, ArenaGame, Contestant
from zeroloop.errors import ModelFileError, UserError
from zeroloop.gatekeeper import config as gkconfig
from zeroloop.gatekeeper.config import GatekeeperConfig
from zeroloop.gating import ACCEPT, CONTINUE, SprtParams, Tally, fixed_decision, sprt_decision, sprt_llr
from zeroloop.nn import modelfile
from zeroloop.search.evaluators import RANDOM_MODEL_NAME, RandomEvaluator, net_evaluator
from zeroloop.storage import Storage, open_location, precreate_selfplay, unique_name

log = logging.getLogger("zeroloop.gatekeeper")


# --- the decision rule ---------------------------------------------------------------


@dataclass
class Judge:
    """The running tally of one match and whether it is decided."""

    max_games: int
    required: float
    sprt: SprtParams | None = None
    tally: Tally = field(default_factory=Tally)

    def add(self, outcome: str) -> str:
        """Count a game ('win', 'loss', 'draw' for the candidate); ACCEPT, REJECT or CONTINUE."""
        self.tally = self.tally.add(outcome)
        return self.decision()

    def decision(self) -> str:
        if self.sprt is not None:
            return sprt_decision(self.tally, self.sprt, self.max_games, self.required)
        return fixed_decision(self.tally, self.max_games, self.required)

    @property
    def method(self) -> str:
        return "sprt" if self.sprt is not None else "fixed"

    @property
    def llr(self) -> float | None:
        return sprt_llr(self.tally, self.sprt) if self.sprt is not None else None


class CandidateUnusable(Exception):
    """The candidate cannot play (unreadable, or too small a board for the match)."""


class Match(Protocol):
    def __call__(self, candidate: str, baseline: str | None, judge: Judge, sgf_dir: str) -> bool:
        """Play candidate (a model dir) against baseline (None: random) until judge decides.

        Returns True when decided, False when abandoned (stop requested).
        Raises CandidateUnusable when the candidate cannot play.
        """
        ...


# --- the real match: batched games in an arena ----------------------------------------


class ArenaMatch:
    """Plays a gating match with ``zeroloop.arena`` (candidate = contestant A)."""

    def __init__(self, storage: Storage, config: GatekeeperConfig, device, rng: np.random.Generator,
                 should_stop: Callable[[], bool]):
        self.storage = storage
        self.config = config
        self.settings = config.arena()
        self.device = device
        self.rng = rng
        self.should_stop = should_stop
        self._baseline: tuple[tuple[str, float], Contestant] | None = None

    def _load(self, path: str) -> Contestant:
        net, info = modelfile.load_model(self.storage, path, self.device)
        if info.pos_len < self.config.max_board_size:
            raise ModelFileError(f"model {path} has pos_len {info.pos_len}, smaller than the gating board "
                                 f"size {self.config.max_board_size}")
        name = posixpath.basename(path)
        return Contestant(name, net_evaluator(net, name, self.device, max_batch=self.settings.num_games_at_once,
                                              precision=self.config.nn_precision))

    def _baseline_for(self, path: str | None, pos_len: int) -> Contestant:
        if path is None:
            return Contestant(RANDOM_MODEL_NAME, RandomEvaluator(pos_len, int(self.rng.integers(2**31))))
        key = (path, self.storage.mtime(path))
        if self._baseline is None or self._baseline[0] != key:
            try:
                self._baseline = (key, self._load(path))
            except ModelFileError as e:
                raise UserError(f"the accepted model cannot play: {e}") from None
        return self._baseline[1]

    def __call__(self, candidate: str, baseline: str | None, judge: Judge, sgf_dir: str) -> bool:
        try:
            cand = self._load(candidate)
        except ModelFileError as e:
            raise CandidateUnusable(str(e)) from None
        base = self._baseline_for(baseline, cand.evaluator.pos_len)
        names = {A: cand.name, "B": base.name}
        arena = Arena(cand, base, self.settings, self.rng)
        lines: list[str] = []
        m_games = metrics.metric("zeroloop_gatekeeper_games_total")
        m_rate = metrics.metric("zeroloop_gatekeeper_candidate_win_rate")
        every = self.config.log_every_games

        def on_game(game: ArenaGame) -> bool:
            outcome = game.outcome_for(A)
            decision = judge.add(outcome)
            lines.append(game.sgf(names, f"gating game {game.index}: candidate {cand.name} vs {base.name}"))
            m_games.labels(result=outcome).inc()
            t = judge.tally
            m_rate.set(t.points / t.games)
            if t.games % every == 0 or decision != CONTINUE:
                log.info("%s vs %s: %d games, %d-%d-%d (score %.3f)%s", cand.name, base.name, t.games, t.wins,
                         t.losses, t.draws, t.points / t.games,
                         f", LLR {judge.llr:.2f}" if judge.llr is not None else "")
            return decision != CONTINUE

        try:
            outcome = arena.play(judge.max_games, on_game, self.should_stop)
        finally:
            if lines:
                self.storage.makedirs(sgf_dir)
                self.storage.write_bytes(posixpath.join(sgf_dir, f"{unique_name()}.sgfs"),
                                         ("\n".join(lines) + "\n").encode())
        return outcome.decided


# --- the polling loop --------------------------------------------------------------------


@dataclass(frozen=True)
class Dirs:
    test: str
    accepted: str
    rejected: str
    sgf: str
    selfplay: str | None = None


class Gatekeeper:
    def __init__(self, storage: Storage, dirs: Dirs, config: GatekeeperConfig, match: Match,
                 required: float = 0.5, autoreject: bool = True, stop: threading.Event | None = None):
        self.storage = storage
        self.dirs = dirs
        self.config = config
        self.match = match
        self.required = required
        self.autoreject = autoreject
        self.stop = stop or threading.Event()
        for d in (dirs.test, dirs.accepted, dirs.rejected, dirs.sgf):
            storage.makedirs(d)
        self._candidates = modellist.ModelListing(storage, dirs.test)
        self._accepted = modellist.ModelListing(storage, dirs.accepted)

    def run(self, quit_if_no_nets: bool = False) -> int:
        waiting_logged = False
        while not self.stop.is_set():
            record = self.step()
            if record is not None:
                waiting_logged = False
                continue
            if self.stop.is_set():
                break
            if quit_if_no_nets:
                log.info("no candidate left in %s: quitting (--quit-if-no-nets-to-test)", self.dirs.test)
                break
            if not waiting_logged:
                log.info("waiting for candidates in %s (checking every %.0fs)", self.dirs.test,
                         self.config.poll_seconds)
                waiting_logged = True
            self.stop.wait(self.config.poll_seconds)
        return 0

    def step(self) -> decisions.DecisionRecord | None:
        """Handle the newest candidate; its record, or None (no candidate, or the match was abandoned)."""
        candidates = self._candidates.models()
        if not candidates:
            return None
        cand_mtime, cand = candidates[-1]
        accepted = self._accepted.models()
        base_mtime, base = accepted[-1] if accepted else (None, None)
        base_name = posixpath.basename(base) if base else RANDOM_MODEL_NAME
        if self.autoreject and base_mtime is not None and cand_mtime < base_mtime:
            return self._decide(cand, False, self._record(cand, base_name, decisions.REJECTED,
                                                          f"older than the accepted model {base_name}"))
        name = posixpath.basename(cand)
        sgf_dir = posixpath.join(self.dirs.sgf, name)
        # SGFs and records half-written by a gatekeeper killed while on this candidate (it is still queued:
        # a candidate leaves the queue only after its record is written)
        self.storage.sweep_tmp(sgf_dir)
        judge = Judge(self.config.num_games_per_gating, self.required, self.config.sprt_params())
        log.info("testing %s against %s (%d games at most, %s rule, candidate needs %.3f)", name, base_name,
                 judge.max_games, judge.method, self.required)
        started = time.monotonic()
        try:
            decided = self.match(cand, base, judge, sgf_dir)
        except CandidateUnusable as e:
            return self._decide(cand, False, self._record(cand, base_name, decisions.REJECTED, f"unusable: {e}"))
        if not decided:
            log.info("match of %s abandoned after %d games: no decision", name, judge.tally.games)
            return None
        t = judge.tally
        accept = judge.decision() == ACCEPT
        record = self._record(cand, base_name, decisions.ACCEPTED if accept else decisions.REJECTED, "match",
                              wins=t.wins, losses=t.losses, draws=t.draws, method=judge.method, llr=judge.llr,
                              max_games=judge.max_games, seconds=round(time.monotonic() - started, 3))
        return self._decide(cand, accept, record)

    def _record(self, cand: str, base_name: str, decision: str, reason: str, **kw) -> decisions.DecisionRecord:
        samples = rows = 0
        try:
            info = modelfile.read_info(self.storage, cand)
            samples, rows = info.samples_trained, info.data_rows
        except ModelFileError:
            pass
        return decisions.DecisionRecord(posixpath.basename(cand), base_name, decision, reason,
                                        required=self.required, time=time.time(), samples_trained=samples,
                                        data_rows=rows, **kw)

    def _decide(self, cand: str, accept: bool, record: decisions.DecisionRecord) -> decisions.DecisionRecord:
        name = record.candidate
        self.storage.sweep_tmp(posixpath.join(self.dirs.sgf, name))
        decisions.write(self.storage, self.dirs.sgf, record)
        if accept and self.dirs.selfplay:
            precreate_selfplay(self.storage, self.dirs.selfplay, name)
        target_root = self.dirs.accepted if accept else self.dirs.rejected
        target = posixpath.join(target_root, name)
        try:
            self.storage.move_dir(cand, target)
        except FileExistsError:
            # A model of that name was decided before: keep this copy out of the way, never overwrite.
            target = posixpath.join(self.dirs.rejected, f"{name}.duplicate-{unique_name()[:8]}")
            log.warning("%s already exists in %s: moving the candidate to %s instead", name, target_root, target)
            self.storage.move_dir(cand, target)
            accept = False
        metrics.metric("zeroloop_gatekeeper_models_accepted_total" if accept
                       else "zeroloop_gatekeeper_models_rejected_total").inc()
        score = f", score {record.score:.3f}" if record.score is not None else ""
        log.info("%s %s %s: %s (%d-%d-%d%s)", "accepted" if accept else "rejected", name, f"vs {record.baseline}",
                 record.reason, record.wins, record.losses, record.draws, score)
        return record


# --- command line ----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    f = cliflags.flag
    f(parser, "--test-models-dir", help="candidates: BASEDIR/modelstobetested")
    f(parser, "--accepted-models-dir", help="accepted models: BASEDIR/models")
    f(parser, "--rejected-models-dir", help="rejected models: BASEDIR/rejectedmodels")
    f(parser, "--sgf-output-dir", help="games and decision records: BASEDIR/gatekeepersgf")
    f(parser, "--selfplay-dir", default=None,
      help="BASEDIR/selfplay: create selfplay/<name>/ for each accepted model")
    f(parser, "--required-candidate-win-prop", type=float, default=0.5,
      help="share of points the candidate needs (win 1, draw 1/2; ties pass)")
    f(parser, "--no-autoreject-old-models", action="store_true",
      help="test candidates older than the accepted model instead of rejecting them")
    f(parser, "--quit-if-no-nets-to-test", action="store_true", help="exit once no candidate is left")
    f(parser, "--config", default="cpu",
      help="gatekeeper config: a TOML/YAML file, or 'cpu' / 'gpu' for the packaged defaults")
    f(parser, "--help-config", action="store_true", help="print every config key with its default and exit")
    cliflags.add_common(parser, device=True, metrics=True)


def run(args: argparse.Namespace) -> int:
    if args.help_config:
        print(cfgmod.describe(GatekeeperConfig), end="")
        return 0
    missing = [n for n in ("test_models_dir", "accepted_models_dir", "rejected_models_dir", "sgf_output_dir")
               if not getattr(args, n)]
    if missing:
        raise UserError("missing " + ", ".join("--" + n.replace("_", "-") for n in missing))
    if not 0.0 <= args.required_candidate_win_prop <= 1.0:
        raise UserError(f"--required-candidate-win-prop {args.required_candidate_win_prop}: must be in 0..1")
    config = gkconfig.load(args.config)
    runtime.set_threads(args.threads)
    seed = runtime.seed_everything(args.seed)
    device = runtime.resolve_device(args.device)
    storage, test_dir = open_location(args.test_models_dir)
    dirs = Dirs(test_dir, *(open_location(d)[1] for d in (args.accepted_models_dir, args.rejected_models_dir,
                                                                  args.sgf_output_dir)),
                open_location(args.selfplay_dir)[1] if args.selfplay_dir else None)
    stop = threading.Event()

    def on_signal(signum, _frame):
        if not stop.is_set():
            log.info("%s: abandoning the match in progress, no decision", signal.Signals(signum).name)
        stop.set()

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, on_signal)
    metrics.serve(args.metrics_port)
    # Decision counters exist from the start, at zero: a dashboard shows 0, not "No data", until the first one.
    for name in ("zeroloop_gatekeeper_models_accepted_total", "zeroloop_gatekeeper_models_rejected_total"):
        metrics.metric(name)
    log.info("gatekeeper: %d games per candidate (%s), %d at once, boards %s, %d visits, device %s, seed %d",
             config.num_games_per_gating, "SPRT" if config.sprt else "fixed length", config.num_games_at_once,
             config.board_sizes, config.max_visits, device, seed)
    match = ArenaMatch(storage, config, device, np.random.default_rng(seed), stop.is_set)
    keeper = Gatekeeper(storage, dirs, config, match, args.required_candidate_win_prop,
                        not args.no_autoreject_old_models, stop)
    return keeper.run(args.quit_if_no_nets_to_test)
