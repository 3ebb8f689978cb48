"""The self-play loop: many games at once, one batched evaluation per step.

``SelfplayEngine`` keeps ``num_games`` game slots busy. Each step is one
call of ``BatchSearch.step`` (a leaf from every searching game, one forward
pass, backup); then every game whose search has reached its visit budget
makes its move (per-move work, in Python: choose by temperature, record a
training row for a full search, play, keep the subtree, start the next
search with playout-cap randomisation) and a finished game is turned into
rows and an SGF for its model's ``TdataWriter``; its slot takes a new game.

Models: new games use the newest model (``ModelSource.poll``); a game keeps
the model it started with, so a step may hold leaves of two models, each
evaluated in its own batch until the old model's games finish and its
writer flushes. A model with another board length than the batch buffers
waits until the running games finish.

Stopping: ``request_stop`` (SIGTERM/SIGINT) starts nothing new, drops the
games in progress and flushes every finished game; ``max_games_total``
starts no game beyond that many and returns once they are all written.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from zeroloop.go.rules import MAX_KOMI, Rules
from zeroloop.metrics import metric
from zeroloop.search import puct, tree
from zeroloop.search.batch import BatchSearch
from zeroloop.search.evaluators import EvalOutput
from zeroloop.selfplay import gamestate as gs
from zeroloop.selfplay.config import SelfplayConfig
from zeroloop.selfplay.models import LoadedModel, ModelSource
from zeroloop.selfplay.sgfs import game_sgf
from zeroloop.selfplay.writer import TdataWriter
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


def new_game_id() -> int:
    """A game id unique across processes and restarts: from the OS, never from --seed (a stage
    restarted with the same seed must not reuse the ids of the games it wrote before)."""
    return secrets.randbits(63) or 1


class SelfplayEngine:
    def __init__(self, config: SelfplayConfig, storage: Storage, output_dir: str, models: ModelSource,
                 rng: np.random.Generator, max_games_total: int | None = None):
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
        self.models: dict[int, LoadedModel] = {}
        self.writers: dict[int, TdataWriter] = {}
        self._next_model_id = 0
        self._retired_files = 0
        self.current = self._add_model(models.initial())
        self.search = self._new_search(self.models[self.current].pos_len)
        self._size_p = np.asarray(config.board_size_weights, dtype=np.float64)
        self._size_p /= self._size_p.sum()
        self._fill = 0.0
        self._m_evals = metric("zeroloop_selfplay_nn_evals_total")
        self._m_batch = metric("zeroloop_selfplay_batch_size")
        self._m_fill = metric("zeroloop_selfplay_batch_fill_ratio")
        self._m_visits = metric("zeroloop_selfplay_visits_total")
        self._m_in_progress = metric("zeroloop_selfplay_games_in_progress")

    # --- models ----------------------------------------------------------------

    def _new_search(self, pos_len: int) -> BatchSearch:
        c = self.cfg
        return BatchSearch(c.num_games, c.max_board_size, pos_len, max(c.max_visits, c.cheap_visits),
                           c.max_moves(c.max_board_size), c.search_params())

    def _add_model(self, model: LoadedModel) -> int:
        mid = self._next_model_id
        self._next_model_id += 1
        self.models[mid] = model
        self.writers[mid] = TdataWriter(self.storage, self.output_dir, model.name, self.cfg.data_board_len,
                                        self.cfg.max_rows_per_file, self.cfg.first_file_min_prop, self.rng,
                                        self.cfg.write_sgfs)
        metric("zeroloop_selfplay_model").info({"name": model.name})
        return mid

    def _poll_models(self) -> None:
        model = self.source.poll()
        if model is not None:
            self.current = self._add_model(model)
            log.info("new games use model %s", model.name)
        self._retire_models()

    def _retire_models(self) -> None:
        """Flush and drop models no game uses any more."""
        for mid in list(self.models):
            if mid != self.current and not np.any(self.slot_model == mid):
                writer = self.writers.pop(mid)
                writer.flush()
                self._retired_files += writer.files_written
                log.info("model %s retired", self.models.pop(mid).name)

    # --- the loop ----------------------------------------------------------------

    def request_stop(self) -> None:
        self.stop_requested = True

    def run(self, should_stop: Callable[[], bool] | None = None) -> Counters:
        """Play until stopped or max_games_total games are written; flush; return counters."""
        c = self.counters
        next_log = time.monotonic() + self.cfg.log_every_seconds
        last = (time.monotonic(), c.nn_evals, c.visits)
        while not self.stop_requested and not (should_stop and should_stop()):
            if not self.tick():
                break
            now = time.monotonic()
            if now >= next_log:
                dt = now - last[0]
                log.info("selfplay: %d games written, %d rows, %.0f NN evals/s, %.0f visits/s, batch %.0f%% full",
                         c.games_finished, c.rows, (c.nn_evals - last[1]) / dt, (c.visits - last[2]) / dt,
                         100 * self._fill)
                last = (now, c.nn_evals, c.visits)
                next_log = now + self.cfg.log_every_seconds
        self.shutdown()
        return c

    def tick(self) -> bool:
        """Look for a new model, fill free slots, one step. False: no game left to play."""
        self._poll_models()
        self._fill_slots()
        if not np.any(self.slot_model >= 0):
            return False
        self.step()
        return True

    def step(self) -> int:
        """One batched search step, then the moves of every game whose search is done."""
        terminal = self.search.terminal_visits
        k = self.search.step(self._evaluate)
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
        free = np.flatnonzero(self.slot_model < 0)
        if len(free) == 0 or not self._may_start():
            return
        if self.models[self.current].pos_len != self.search.pos_len:
            if len(free) < self.cfg.num_games:
                return  # let the running games finish before the buffers change shape
            self.search = self._new_search(self.models[self.current].pos_len)
        for g in free:
            if not self._may_start():
                break
            self._start_game(int(g))
        self._m_in_progress.set(int(np.sum(self.slot_model >= 0)))

    def _start_game(self, g: int) -> None:
        c = self.cfg
        size = int(self.rng.choice(c.board_sizes, p=self._size_p))
        rules = Rules(str(self.rng.choice(c.ko_rules)), bool(self.rng.random() < c.multi_stone_suicide_prob),
                      self._komi())
        model = self.models[self.current]
        state = gs.GameState(new_game_id(), size, rules, c.max_moves(size), model.name)
        self.search.new_game(g, size, rules.ko_code, rules.multi_stone_suicide, rules.komi, state.max_moves)
        self.slots[g] = state
        self.slot_model[g] = self.current
        self.counters.games_started += 1
        self._start_search(g)

    def _komi(self) -> float:
        c = self.cfg
        stdev = c.komi_big_stdev if self.rng.random() < c.komi_big_stdev_prob else c.komi_stdev
        komi = c.komi_mean + self.rng.normal() * stdev
        return float(min(MAX_KOMI, max(-MAX_KOMI, round(komi * 2) / 2)))

    def _start_search(self, g: int) -> None:
        c = self.cfg
        state = self.slots[g]
        full = bool(self.rng.random() < c.full_search_prob)
        if full:
            temp = puct.decayed_temperature(state.turn, c.root_policy_temperature_early, c.root_policy_temperature,
                                            c.temperature_halflife, state.size * state.size)
            self.search.start_search(g, c.max_visits, full=True, root_temperature=temp,
                                     noise=c.dirichlet_weight > 0)
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
        move = int(r.moves[puct.choose_with_temperature(weights, temp, self.rng)])
        if state.full_search:
            state.recorded.append(gs.record_position(s.board(g), s.hists[g], state.komi, c.data_board_len,
                                                     state.turn, r.moves, weights, state.model))
        state.moves.append(move)
        s.play(g, move, reuse=c.reuse_tree)
        self.counters.moves += 1
        if s.game_over(g):
            self._finish_game(g)
        else:
            self._start_search(g)

    def _finish_game(self, g: int) -> None:
        state = self.slots[g]
        ownership, score = gs.final_position(state, self.search.board(g))
        game_rows = gs.build_rows(state, ownership, score, self.cfg.data_board_len)
        n_rows = len(state.recorded)
        sgf = game_sgf(state, gs.result_string(score), n_rows) if self.cfg.write_sgfs else None
        mid = int(self.slot_model[g])
        self.writers[mid].add_game(game_rows, sgf)
        c = self.counters
        c.games_finished += 1
        c.game_moves += len(state.moves)
        c.rows += n_rows
        metric("zeroloop_selfplay_games_total").inc()
        metric("zeroloop_selfplay_game_length_moves").observe(len(state.moves))
        log.debug("game %016x finished: %d moves, %s, %d rows", state.game_id, len(state.moves),
                  gs.result_string(score), n_rows)
        self.search.release(g)
        self.slots[g] = None
        self.slot_model[g] = -1

    def shutdown(self) -> None:
        """Drop games in progress and flush every writer."""
        dropped = [s for s in self.slots if s is not None]
        for g in range(len(self.slots)):
            if self.slots[g] is not None:
                self.search.release(g)
                self.slots[g] = None
                self.slot_model[g] = -1
        for w in self.writers.values():
            w.flush()
        self._m_in_progress.set(0)
        c = self.counters
        log.info("selfplay stopped: %d games written (%d rows, %d tdata files), %d games in progress dropped",
                 c.games_finished, c.rows, self.files_written, len(dropped))

    @property
    def files_written(self) -> int:
        return self._retired_files + sum(w.files_written for w in self.writers.values())

    @property
    def mean_game_length(self) -> float:
        c = self.counters
        return c.game_moves / c.games_finished if c.games_finished else math.nan
