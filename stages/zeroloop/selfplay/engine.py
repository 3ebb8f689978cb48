"""The self-play loop: many games at once, one batched evaluation per step.

``SelfplayEngine`` keeps ``num_games`` game slots busy. Each step is one
call of ``BatchSearch.step`` (a leaf from every searching game, one forward
pass, backup); then every game whose search has reached its visit budget
makes its move (per-move work, in Python: choose by temperature, record a
training row for a full search, play, keep the subtree, start the next
search with playout-cap randomisation) and a finished game (two passes,
the move cap, or with ``end_when_pass_alive`` a board settled by
``zeroloop.go.passalive``, scored by its pass-alive area) is turned into
rows and an SGF for its model's ``TdataWriter``; its slot takes a new game.

Models: new games use the newest model (``ModelSource.poll``); a game keeps
the model it started with, so a step may hold leaves of two models, each
evaluated in its own batch until the old model's games finish and its
writer flushes. A model with another board length than the batch buffers
waits until the running games finish.

Games in progress survive stops (``zeroloop.selfplay.inprogress``): every
``inprogress_save_seconds`` (or ``inprogress_save_moves``) the engine saves
its unfinished games, and the finished ones whose rows are not yet in tdata,
to its batch files; before each tdata publish it saves again, naming the
files about to appear. At start, and every ``inprogress_poll_seconds``, it
adopts saved games and plays them before starting new ones: each is
replayed on a fresh board and continues with the current model (a switch
the rows and SGF record); the search tree is not saved, so a resumed move
starts a fresh search.

Stopping: ``request_stop`` (SIGTERM/SIGINT) starts nothing new, lets the
searches in progress reach their moves where that costs less than their
visits (for at most ``inprogress_stop_search_seconds``;
``zeroloop.selfplay.stopping`` weighs the two from the steps' fitted cost:
a search's visits are otherwise lost, as the tree is not saved), writes every
finished game, saves the games in
progress and lets their files go for adoption (with
``save_games_in_progress = false`` it drops them at once, as KataGo does); ``max_games_total`` starts no new game beyond that many (adopted
games are finished too) and returns once they are all written.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from zeroloop.go import passalive
from zeroloop.go.game import Game
from zeroloop.go.rules import MAX_KOMI, Rules
from zeroloop.metrics import metric
from zeroloop.search import puct, tree
from zeroloop.search.batch import BatchSearch
from zeroloop.search.evaluators import EvalOutput
from zeroloop.go import board as B
from zeroloop.selfplay import gamestate as gs
from zeroloop.selfplay import openings, stopping, weighting
from zeroloop.selfplay.config import SelfplayConfig
from zeroloop.selfplay.inprogress import SaveReport, SavedGames
from zeroloop.selfplay.models import LoadedModel, ModelSource
from zeroloop.selfplay.sgfs import game_sgf
from zeroloop.selfplay.writer import PendingGame, TdataWriter
from zeroloop.storage import Storage

log = logging.getLogger(__name__)


@dataclass
class Counters:
    """What the engine has done since it started (benchmarks read these)."""

    steps: int = 0
    nn_evals: int = 0
    visits: int = 0
    moves: int = 0
    games_started: int = 0
    games_finished: int = 0
    game_moves: int = 0  # moves of finished games
    rows: int = 0
    games_adopted: int = 0  # saved games in progress taken over
    games_resumed: int = 0  # adopted games replayed into a slot
    games_settled: int = 0  # finished games ended by a settled board (end_when_pass_alive)
    games_forked: int = 0  # games started from an early fork of a finished game
    stop_searches_cut: int = 0  # searches a stop cut short (``stopping``): their games saved, their visits lost


def handicap_stones_at_most(size: int) -> int:
    """Most extra Black stones of a handicap game on this board size (KataGo's table, but from 9x9 on)."""
    if size < 9:
        return 0
    return 1 if size <= 14 else 2 if size <= 16 else 3 if size <= 17 else 4 if size <= 18 else 5


def new_game_id() -> int:
    """A game id unique across processes and restarts: from the OS, never from --seed (a stage
    restarted with the same seed must not reuse the ids of the games it wrote before)."""
    return secrets.randbits(63) or 1


class SelfplayEngine:
    def __init__(self, config: SelfplayConfig, storage: Storage, output_dir: str, models: ModelSource,
                 rng: np.random.Generator, max_games_total: int | None = None, owner: str | None = None):
        self.cfg = config
        self.storage = storage
        self.output_dir = output_dir
        self.source = models
        self.rng = rng
        self.max_games_total = max_games_total
        self.counters = Counters()
        self.stop_requested = False
        g = config.num_games
        self.slots: list[gs.GameState | None] = [None] * g
        self.slot_model = np.full(g, -1, dtype=np.int64)
        self.slot_batch: list[str] = [""] * g  # the saved-games batch of each slot's game
        self.slot_weight = np.ones(g)  # the row weight of each slot's search in progress (reduced visits)
        self.adopted: deque[tuple[str, gs.GameState]] = deque()  # adopted games waiting for a slot
        self.forks: deque[gs.GameState] = deque()  # early forks waiting for a slot (not saved at a stop)
        self._fair_komi: dict[tuple[str, int], float] = {}  # komi_auto: by (model, board size)
        self.models: dict[int, LoadedModel] = {}
        self.writers: dict[str, TdataWriter] = {}  # by model name: selfplay/<name>/
        self._next_model_id = 0
        self._retired_files = 0
        self.saved = SavedGames(storage, output_dir, config.data_board_len,
                                stale_seconds=config.inprogress_stale_seconds,
                                max_age_seconds=config.inprogress_max_age_seconds, owner=owner,
                                rng=np.random.default_rng(rng.integers(2**63))) \
            if config.save_games_in_progress else None
        self.last_save: SaveReport | None = None
        now = time.monotonic()
        self._next_save = now + config.inprogress_save_seconds
        self._moves_at_save = 0
        self._next_adopt = now  # look at the first tick
        self.current = self._add_model(models.initial())
        self.search = self._new_search(self.models[self.current])
        self._size_p = np.asarray(config.board_size_weights, dtype=np.float64)
        self._size_p /= self._size_p.sum()
        self._fill = 0.0
        self._step_times: deque[tuple[int, float]] = deque(maxlen=32)  # (batch, seconds): the stop's cost fit
        self._m_evals = metric("zeroloop_selfplay_nn_evals_total")
        self._m_batch = metric("zeroloop_selfplay_batch_size")
        self._m_fill = metric("zeroloop_selfplay_batch_fill_ratio")
        self._m_visits = metric("zeroloop_selfplay_visits_total")
        self._m_in_progress = metric("zeroloop_selfplay_games_in_progress")

    # --- models ----------------------------------------------------------------

    def _new_search(self, model: LoadedModel) -> BatchSearch:
        """Search buffers for the model's board length and inputs (its feature version)."""
        c = self.cfg
        if self.saved is not None:
            self.saved.feature_version = model.feature_version
        return BatchSearch(c.num_games, c.max_board_size, model.pos_len, max(c.max_visits, c.cheap_visits),
                           c.max_moves(c.max_board_size), c.search_params(), model.feature_version)

    def _add_model(self, model: LoadedModel) -> int:
        mid = self._next_model_id
        self._next_model_id += 1
        self.models[mid] = model
        self._writer(model.name)
        metric("zeroloop_selfplay_model").info({"name": model.name})
        return mid

    def _writer(self, model_name: str) -> TdataWriter:
        w = self.writers.get(model_name)
        if w is None:
            w = self.writers[model_name] = TdataWriter(self.storage, self.output_dir, model_name,
                                                       self.cfg.data_board_len, self.cfg.max_rows_per_file,
                                                       self.cfg.first_file_min_prop, self.rng, self.cfg.write_sgfs)
        return w

    def _poll_models(self) -> None:
        model = self.source.poll()
        if model is not None:
            self.current = self._add_model(model)
            log.info("new games use model %s", model.name)
        self._retire_models()

    def _retire_models(self) -> None:
        """Drop models no game uses any more; flush writers of models no game uses."""
        for mid in list(self.models):
            if mid != self.current and not np.any(self.slot_model == mid):
                log.info("model %s retired", self.models.pop(mid).name)
        in_use = {m.name for m in self.models.values()}
        idle = [name for name in self.writers if name not in in_use]
        if idle:
            self._publish(everything=True, names=idle)
            for name in idle:
                self._retired_files += self.writers.pop(name).files_written

    def _publish(self, everything: bool, names: list[str] | None = None) -> None:
        """Publish due (everything: all) tdata files, saving the games first with the files' names."""
        plans = [(w, w.plan(everything)) for w in (self.writers[n] for n in (names or list(self.writers)))]
        plans = [(w, p) for w, p in plans if p]
        if not plans:
            return
        if self.saved is not None and self.save_games().stolen:  # the save names the files about to appear
            for w, _ in plans:
                w.unplan()  # games of a batch adopted elsewhere were dropped from the queues: plan again
            self._publish(everything, names)
            return
        for w, p in plans:
            w.write(p)

    # --- the loop ----------------------------------------------------------------

    def request_stop(self) -> None:
        self.stop_requested = True

    def run(self, should_stop: Callable[[], bool] | None = None) -> Counters:
        """Play until stopped or max_games_total games are written; flush; return counters."""
        c = self.counters
        started = time.monotonic()
        next_log = started + self.cfg.log_every_seconds
        last = (started, c.nn_evals, c.visits)
        first = True
        while not self.stop_requested and not (should_stop and should_stop()):
            if not self.tick():
                break
            now = time.monotonic()
            if first:
                first = False
                # the process's CPU seconds too: on a shared machine wall time says more about the load
                log.info("first search step %.2f s after start: %d games (%d adopted games resumed); "
                         "process CPU %.2f s", now - started, int(np.sum(self.slot_model >= 0)), c.games_resumed,
                         time.process_time())
            if self.saved is not None and self._save_due(now):
                r = self.save_games()
                log.debug("saved %d games in progress, %d finished (%d rows) in %d files, %.0f kB, %.3f s",
                          r.games, r.pending, r.rows, r.files, r.bytes / 1e3, r.seconds)
            if now >= next_log:
                dt = now - last[0]
                log.info("selfplay: %d games written, %d rows, %.0f NN evals/s, %.0f visits/s, batch %.0f%% full",
                         c.games_finished, c.rows, (c.nn_evals - last[1]) / dt, (c.visits - last[2]) / dt,
                         100 * self._fill)
                last = (now, c.nn_evals, c.visits)
                next_log = now + self.cfg.log_every_seconds
        self.stop_requested = True
        self._finish_searches()
        self.shutdown()
        return c

    def tick(self) -> bool:
        """Look for a new model and saved games, fill free slots, one step. False: no game left to play."""
        self._poll_models()
        self._poll_saved()
        self._fill_slots()
        if not np.any(self.slot_model >= 0):
            self._poll_saved(now=True)  # before giving up: saved games another process let go meanwhile
            self._fill_slots()
            if not np.any(self.slot_model >= 0):
                return False
        self.step()
        return True

    def step(self) -> int:
        """One batched search step, then the moves of every game whose search is done."""
        terminal = self.search.terminal_visits
        t = time.monotonic()
        k = self.search.step(self._evaluate)
        self._step_times.append((k, time.monotonic() - t))
        c = self.counters
        c.steps += 1
        c.nn_evals += k
        visits = k + self.search.terminal_visits - terminal
        c.visits += visits
        self._m_visits.inc(visits)
        if k:
            self._m_evals.inc(k)
            self._m_batch.observe(k)
            self._fill = 0.95 * self._fill + 0.05 * k / self.cfg.num_games
            self._m_fill.set(self._fill)
        s = self.search
        done = np.flatnonzero((s.game_i[:, tree.G_ACTIVE] == 1)
                              & (s.node_i[:, 0, tree.N_VISITS] >= s.game_i[:, tree.G_TARGET]))
        for g in done:
            self._move(int(g))
        return k

    def _evaluate(self, spatial: np.ndarray, glob: np.ndarray, games: np.ndarray) -> EvalOutput:
        mids = self.slot_model[games]
        first = mids[0]
        if np.all(mids == first):
            return self.models[int(first)].evaluator.evaluate(spatial, glob)
        b = len(games)
        area = spatial.shape[-1] ** 2 + 1
        policy = np.empty((b, area), dtype=np.float32)
        value = np.empty((b, 3), dtype=np.float32)
        score = np.empty(b, dtype=np.float32)
        for mid in np.unique(mids):
            idx = np.flatnonzero(mids == mid)
            out = self.models[int(mid)].evaluator.evaluate(spatial[idx], glob[idx])
            policy[idx] = out.policy
            value[idx] = out.value
            score[idx] = out.score
        return EvalOutput(policy, value, score)

    # --- games -------------------------------------------------------------------

    def _may_start(self) -> bool:
        if self.stop_requested:
            return False
        return self.max_games_total is None or self.counters.games_started < self.max_games_total

    def _fill_slots(self) -> None:
        """Free slots take adopted games first, then new ones."""
        free = np.flatnonzero(self.slot_model < 0)
        if len(free) == 0 or self.stop_requested or not (self.adopted or self._may_start()):
            return
        model = self.models[self.current]
        if (model.pos_len, model.feature_version) != (self.search.pos_len, self.search.feature_version):
            if len(free) < self.cfg.num_games:
                return  # let the running games finish before the buffers change shape
            self.search = self._new_search(model)
        for g in free:
            while self.adopted and not self._resume_game(int(g), *self.adopted.popleft()):
                pass
            while self.slot_model[g] < 0 and self.forks and self._may_start():
                self._start_fork(int(g), self.forks.popleft())
            if self.slot_model[g] < 0:
                if not self._may_start():
                    break
                self._start_game(int(g))
        self._m_in_progress.set(int(np.sum(self.slot_model >= 0)))

    def _start_game(self, g: int) -> None:
        c = self.cfg
        size = int(self.rng.choice(c.board_sizes, p=self._size_p))
        model = self.models[self.current]
        rules = Rules(str(self.rng.choice(c.ko_rules)), bool(self.rng.random() < c.multi_stone_suicide_prob),
                      self._komi(self._komi_mean(model, size)))
        state = gs.GameState(new_game_id(), size, rules, c.max_moves(size), model.name)
        if c.policy_init_area_prop > 0:
            state.policy_init_moves = int(self.rng.exponential() * c.policy_init_area_prop * size * size)
        most = handicap_stones_at_most(size)
        if most and c.handicap_prob > 0 and self.rng.random() < c.handicap_prob:
            state.handicap_stones = 1 + int(self.rng.integers(most))
            state.policy_init_moves += 2 * state.handicap_stones
        self.search.new_game(g, size, rules.ko_code, rules.multi_stone_suicide, rules.komi, state.max_moves)
        self.slots[g] = state
        self.slot_model[g] = self.current
        self.slot_batch[g] = self.saved.home(model.name) if self.saved is not None else ""
        self.counters.games_started += 1
        self._start_search(g)

    def _start_fork(self, g: int, state: gs.GameState) -> None:
        """Start a forked game (its opening moves played, none recorded) in slot g."""
        if self._replay(g, state) is not None:
            return  # (cannot happen: a fork is a legal continuation of a game this engine played)
        state.model = self.models[self.current].name  # the newest model plays it, as any new game
        self.slots[g] = state
        self.slot_model[g] = self.current
        self.slot_batch[g] = self.saved.home(state.model) if self.saved is not None else ""
        self.counters.games_started += 1
        self.counters.games_forked += 1
        if not self._finish_if_over(g):
            self._start_search(g)

    def _replay(self, g: int, state: gs.GameState) -> str | None:
        """Set slot g's board to state's moves (no tree); why it cannot be, or None."""
        limit = self.cfg.max_moves(self.cfg.max_board_size)  # the superko table's capacity
        r = state.rules
        if len(state.moves) >= limit or state.size > self.search.max_board_size:
            return f"{state.size}x{state.size} with {len(state.moves)} moves does not fit this config (at most " \
                   f"{limit} moves)"
        state.max_moves = min(state.max_moves, limit)
        self.search.new_game(g, state.size, r.ko_code, r.multi_stone_suicide, r.komi, state.max_moves)
        for i, move in enumerate(state.moves):
            try:
                self.search.play(g, move, reuse=False)
            except ValueError:
                self.search.release(g)
                return f"move {i} is illegal on replay"
        return None

    def _resume_game(self, g: int, batch: str, state: gs.GameState) -> bool:
        """Replay an adopted game into slot g and search on with the current model; False if it cannot be."""
        why = self._replay(g, state)
        if why is not None:
            return self._unplayable(batch, state, why)
        model = self.models[self.current]
        state.switch_model(model.name)
        self.slots[g] = state
        self.slot_model[g] = self.current
        self.slot_batch[g] = batch
        self.counters.games_resumed += 1
        if not self._finish_if_over(g):
            self._start_search(g, state.full_search)  # the kind of search the stop cut short
        return True

    def _unplayable(self, batch: str, state: gs.GameState, reason: str) -> bool:
        log.warning("discarded saved game %016x (batch %s): %s", state.game_id, batch, reason)
        metric("zeroloop_selfplay_games_discarded_total").inc()
        return False

    def _komi_mean(self, model: LoadedModel, size: int) -> float:
        """komi_mean, or with komi_auto the komi the model finds fair on the empty board (once per size)."""
        c = self.cfg
        if not c.komi_auto:
            return c.komi_mean
        key = (model.name, size)
        if key not in self._fair_komi:
            self._fair_komi[key] = openings.fair_komi(model.evaluator, model.pos_len, size, Rules(), c.komi_mean)
            log.info("komi_auto: model %s finds komi %g fair on %dx%d", model.name, self._fair_komi[key], size, size)
        return self._fair_komi[key]

    def _komi(self, mean: float) -> float:
        c = self.cfg
        stdev = c.komi_big_stdev if self.rng.random() < c.komi_big_stdev_prob else c.komi_stdev
        komi = mean + self.rng.normal() * stdev
        return float(min(MAX_KOMI, max(-MAX_KOMI, round(komi * 2) / 2)))

    def _start_search(self, g: int, full: bool | None = None) -> None:
        """Start game g's next search: full or cheap as given, else drawn (playout-cap randomisation)."""
        c = self.cfg
        state = self.slots[g]
        if state.turn < state.policy_init_moves:
            self.search.start_search(g, 1)  # the root's evaluation: its priors are the net's policy
            state.full_search = False
            return
        if full is None:
            full = bool(self.rng.random() < c.full_search_prob)
        if full:
            temp = puct.decayed_temperature(state.turn, c.root_policy_temperature_early, c.root_policy_temperature,
                                            c.temperature_halflife, state.size * state.size)
            visits, self.slot_weight[g] = c.max_visits, 1.0
            if c.reduce_visits:
                visits, self.slot_weight[g] = weighting.reduced_visits(
                    state.root_values, c.max_visits, c.reduce_visits_threshold, c.reduce_visits_lookback,
                    c.reduced_visits_min, c.reduced_visits_weight)
            self.search.start_search(g, visits, full=True, root_temperature=temp,
                                     noise=c.dirichlet_weight > 0, fresh=c.fresh_tree_full_search)
        else:
            self.search.start_search(g, c.cheap_visits)
        state.full_search = full

    def _move(self, g: int) -> None:
        """Game g's search is done: choose, record, play; finish or search again."""
        c = self.cfg
        state = self.slots[g]
        s = self.search
        r = s.root_result(g)
        weights = r.target(state.full_search and c.forced_playouts_coeff > 0, c.cpuct)
        if not np.any(weights > 0):
            weights = r.priors  # a search cut short by its pools: fall back to the policy
        temp = puct.decayed_temperature(state.turn, c.move_temperature_early, c.move_temperature,
                                        c.temperature_halflife, state.size * state.size)
        if state.turn < state.policy_init_moves:  # an opening move from the net's policy (initGamesWithPolicy)
            weights, temp = r.priors, c.policy_init_temperature
            if state.turn < 2 * state.handicap_stones:  # a handicap stone, or White's pass after one
                pass_index = state.size * state.size
                black = state.turn % 2 == 0
                weights = np.where((r.moves == pass_index) != black, r.priors, 0.0)
                if not np.any(weights > 0):
                    weights = r.priors
        move = int(r.moves[puct.choose_with_temperature(weights, temp, self.rng)])
        sign = 1.0 if s.to_move(g) == B.BLACK else -1.0
        # the policy target: a full search's LCB-raised if lcb_policy_target, a cheap one's as searched
        target = r.play_weights(s.params, weights) if state.full_search else weights
        if c.opponent_policy_from_search and state.recorded and state.recorded[-1].turn == state.turn - 1:
            state.recorded[-1].next_policy = gs.data_policy(r.moves, target, state.size, c.data_board_len)
        if state.full_search:
            model = self.models[int(self.slot_model[g])].name
            rec = gs.record_position(s.board(g), s.hists[g], state.komi, c.data_board_len, state.turn, r.moves,
                                     target, model, s.feature_version, s.recent_boards(g))
            rec.weight = float(self.slot_weight[g])
            rec.nn_value = sign * float(s.node_f[g, 0, tree.N_WL])  # the net's own value at the root (stored for Black)
            if c.policy_surprise_data_weight > 0:
                rec.policy_surprise = weighting.policy_surprise(target, r.priors)
            state.recorded.append(rec)
        state.root_values.append(sign * r.root_wl)
        state.root_scores.append(sign * r.root_score)
        state.moves.append(move)
        s.play(g, move, reuse=c.reuse_tree)
        self.counters.moves += 1
        if self._finish_if_over(g):
            return
        if self.stop_requested:
            s.release(g)  # stopping: the game waits at this position to be saved
            state.full_search = None  # its next search is drawn when it resumes
        else:
            self._start_search(g)

    def _finish_if_over(self, g: int) -> bool:
        """Finish game g if it is over: two passes, its move cap, or (end_when_pass_alive) a settled board."""
        if self.search.game_over(g):
            self._finish_game(g)
            return True
        if self.cfg.end_when_pass_alive:
            settled = passalive.settled_ownership(self.search.board(g))
            if settled is not None:
                self.counters.games_settled += 1
                self._finish_game(g, settled)
                return True
        return False

    def _finish_game(self, g: int, settled: np.ndarray | None = None) -> None:
        """Write game g's rows; settled: its pass-alive ownership (Black's view) where that ended it."""
        state = self.slots[g]
        if settled is None:
            ownership, score = gs.final_position(state, self.search.board(g))
        else:
            ownership, score = gs.settled_position(state, settled)
        game_rows = gs.build_rows(state, ownership, score, self.cfg.data_board_len, self._row_weights(state, score),
                                  self.cfg.opponent_policy_from_search)
        n_rows = len(state.recorded)
        sgf = game_sgf(state, gs.result_string(score), n_rows) if self.cfg.write_sgfs else None
        writer = self.writers[self.models[int(self.slot_model[g])].name]
        batch = self.slot_batch[g]
        # The slot is free before the writer may publish (and save): the game is saved once, as finished.
        self.search.release(g)
        self.slots[g] = None
        self.slot_model[g] = -1
        self.slot_batch[g] = ""
        writer.add(PendingGame(state.game_id, writer.model, game_rows, sgf, batch))
        c = self.counters
        c.games_finished += 1
        c.game_moves += len(state.moves)
        c.rows += n_rows
        metric("zeroloop_selfplay_games_total").inc()
        metric("zeroloop_selfplay_game_length_moves").observe(len(state.moves))
        log.debug("game %016x finished: %d moves, %s, %d rows", state.game_id, len(state.moves),
                  gs.result_string(score), n_rows)
        if writer.due:
            self._publish(everything=False, names=[writer.model])
        if self.cfg.early_fork_game_prob > 0 and self.rng.random() < self.cfg.early_fork_game_prob:
            self._fork(state)

    def _fork(self, state: gs.GameState) -> None:
        """Queue an early fork of a finished game (KataGo's earlyForkGameProb): its first moves, then the best
        by the net's score of a few random legal moves, as the opening of a new game."""
        c = self.cfg
        turn = int(self.rng.exponential() * c.early_fork_expected_move_prop * state.size * state.size)
        if turn >= len(state.moves):
            return
        game = Game(state.size, state.rules, max_moves=state.max_moves)
        for i, m in enumerate(state.moves[:turn]):
            game.play(game.to_move, None if m == state.size * state.size else (m % state.size, m // state.size))
        if game.is_over:
            return
        model = self.models[self.current]
        n = state.size
        legal = [i for i in range(n * n) if game.is_legal(game.to_move, (i % n, i // n))]
        k = min(len(legal), int(self.rng.integers(c.fork_min_choices, c.early_fork_max_choices + 1)))
        if k == 0:
            return
        choices = [int(i) for i in self.rng.choice(legal, size=k, replace=False)]
        best = openings.fork_move(game, choices, model.evaluator, model.pos_len)
        fork = gs.GameState(new_game_id(), n, state.rules, c.max_moves(n), model.name, [*state.moves[:turn], best])
        fork.root_values = [math.nan] * len(fork.moves)  # no search of this game's: root values stay by turn
        fork.root_scores = [math.nan] * len(fork.moves)
        self.forks.append(fork)

    def _row_weights(self, state: gs.GameState, score_black: float) -> np.ndarray | None:
        """The rows' weights after surprise weighting (None: each row's own weight)."""
        c = self.cfg
        recs = state.recorded
        if not recs or (c.policy_surprise_data_weight <= 0 and c.value_surprise_data_weight <= 0):
            return None
        value = np.zeros(len(recs))
        if c.value_surprise_data_weight > 0:
            outcome = float(np.sign(score_black))
            nn_black = [r.nn_value * (1 if r.to_move == B.BLACK else -1) for r in recs]
            value = weighting.value_surprise(state.root_values, outcome, state.size * state.size,
                                             [r.turn for r in recs], nn_black)
        return weighting.surprise_weights(np.array([r.weight for r in recs]),
                                          np.array([r.policy_surprise for r in recs]), value,
                                          c.policy_surprise_data_weight, c.value_surprise_data_weight)

    # --- saved games -------------------------------------------------------------

    def _save_due(self, now: float) -> bool:
        k = self.cfg.inprogress_save_moves
        return now >= self._next_save or (k > 0 and self.counters.moves - self._moves_at_save >= k * self.cfg.num_games)

    def save_games(self, release: bool = False) -> SaveReport:
        """Save every game not yet in tdata to this process's batch files (release: for adoption)."""
        playing = [(self.slot_batch[g], s) for g, s in enumerate(self.slots) if s is not None] + list(self.adopted)
        pending = [p for w in self.writers.values() for p in w.queue]
        report = self.saved.save(playing, pending, release)
        if report.stolen:
            self._drop_batches(report.stolen)
        self.last_save = report
        self._next_save = time.monotonic() + self.cfg.inprogress_save_seconds
        self._moves_at_save = self.counters.moves
        return report

    def _drop_batches(self, batches: set[str]) -> None:
        """Forget the games of batches another process has adopted: they are its games now."""
        for g in range(len(self.slots)):
            if self.slots[g] is not None and self.slot_batch[g] in batches:
                self.search.release(g)
                self.slots[g] = None
                self.slot_model[g] = -1
                self.slot_batch[g] = ""
        self.adopted = deque(x for x in self.adopted if x[0] not in batches)
        for w in self.writers.values():
            w.queue = [p for p in w.queue if p.batch not in batches]

    def _poll_saved(self, now: bool = False) -> None:
        """Adopt saved games (at start and every inprogress_poll_seconds) while the queue is short."""
        if self.saved is None or self.stop_requested:
            return
        t = time.monotonic()
        if t < self._next_adopt and not now:
            return
        self._next_adopt = t + self.cfg.inprogress_poll_seconds
        capacity = self.cfg.num_games - len(self.adopted)
        if capacity <= 0:
            return
        for snap in self.saved.claim(capacity, self._fits):
            for state in snap.playing:
                self.adopted.append((snap.batch, state))
            for game in snap.pending:
                self._writer(game.model_dir).add(game)  # an idle writer: published at the next tick
            self.counters.games_adopted += len(snap.playing) + len(snap.pending)

    def _fits(self, header: dict) -> str | None:
        """Why this process cannot play a saved batch (None: it can)."""
        c = self.cfg
        if header["pos_len"] != c.data_board_len:
            return f"its rows have board length {header['pos_len']}, this self-play writes {c.data_board_len}"
        if header["feature_version"] != self.search.feature_version:
            return (f"its rows hold inputs of feature version {header['feature_version']}, this self-play's model "
                    f"reads version {self.search.feature_version}")
        largest = max((int(g["size"]) for g in header["games"]), default=0)
        if largest > c.max_board_size:
            return f"it has {largest}x{largest} games, this config plays at most {c.max_board_size}x{c.max_board_size}"
        return None

    def stop_step_cost(self) -> stopping.StepCost | None:
        """The batched step's cost, fitted from the last steps (``stopping``)."""
        if not self._step_times:
            return None
        batches, seconds = zip(*self._step_times)
        return stopping.fit_step_cost(np.array(batches), np.array(seconds), self.cfg.num_games)

    def _finish_searches(self) -> None:
        """Stopping: step on while finishing the searches costs less than their visits; cut the rest (``stopping``)."""
        budget = self.cfg.inprogress_stop_search_seconds
        if self.saved is None or budget <= 0:
            return
        s = self.search
        t0 = time.monotonic()
        moves = self.counters.moves
        cut = lost = 0
        step_seconds = None
        while True:
            visits = s.node_i[:, 0, tree.N_VISITS].astype(np.int64)
            targets = s.game_i[:, tree.G_TARGET].astype(np.int64)
            searching = (s.game_i[:, tree.G_ACTIVE] == 1) & (visits < targets)
            for g in stopping.searches_to_cut(visits, targets, searching, self.stop_step_cost(), step_seconds,
                                              budget - (time.monotonic() - t0)):
                s.release(int(g))  # the game stays in its slot, saved with the kind of search it was in
                searching[g] = False
                cut += 1
                lost += int(visits[g])
            if not searching.any():
                break
            if not self.step():
                break  # no leaf left to evaluate (pools full): what is open is saved as it is
            step_seconds = self._step_times[-1][1]
        self.counters.stop_searches_cut += cut
        log.info("stopping: searches in progress made %d moves in %.2f s; %d cut short (%d visits)",
                 self.counters.moves - moves, time.monotonic() - t0, cut, lost)

    def shutdown(self) -> None:
        """Write every finished game; save the games in progress for adoption (or drop them)."""
        t0 = time.perf_counter()
        active = [g for g in range(len(self.slots)) if self.slots[g] is not None]
        in_progress = len(active) + len(self.adopted)
        if self.saved is not None:
            self._publish(everything=True)
            report = self.save_games(release=True)
            metric("zeroloop_selfplay_games_saved_total").inc(report.games + report.pending)
            what = (f"{report.games} games in progress saved for later ({report.rows} rows recorded, "
                    f"{report.files} files, {report.bytes / 1e6:.1f} MB, {report.seconds:.2f} s)")
        else:
            for w in self.writers.values():
                w.flush()
            what = f"{in_progress} games in progress dropped"
        for g in active:
            self.search.release(g)
            self.slots[g] = None
            self.slot_model[g] = -1
            self.slot_batch[g] = ""
        self.adopted.clear()
        self._m_in_progress.set(0)
        c = self.counters
        log.info("selfplay stopped: %d games written (%d rows, %d tdata files), %d NN evals, %s; stop took %.2f s",
                 c.games_finished, c.rows, self.files_written, c.nn_evals, what, time.perf_counter() - t0)

    @property
    def files_written(self) -> int:
        return self._retired_files + sum(w.files_written for w in self.writers.values())

    @property
    def mean_game_length(self) -> float:
        c = self.counters
        return c.game_moves / c.games_finished if c.games_finished else math.nan
