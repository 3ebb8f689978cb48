"""`zeroloop ladder BASEDIR`: every model of a run on one Elo scale.

Players: the run's first model (``loop/init-model``, the random-weight net
training started from, when the run was made by ``zeroloop loop``), every
accepted model in ``models/`` (oldest first), and GNU Go at fixed levels
(``--gnugo-levels``) as outside references. Games:

- model against model: each model meets the next ``--distance`` models
  after it (or every other model with ``--pairs all``), ``--games`` games
  per pair, colours alternating, played in batches by ``zeroloop.arena``
  (the gatekeeper's machinery: each net batched on its own);
- model against GNU Go: ``--gnugo-games`` games per model and level through
  ``zeroloop.match``'s GTP referee (the model as `zeroloop gtp --model`).

One Bradley-Terry fit over all the results (``zeroloop.ratings.fit``) gives
the ratings, anchored at GNU Go's lowest level (else the first model) = 0.
Results are cached in ``BASEDIR/ladder/ladder.json``, keyed by the pair and
the game settings (board size, komi, visits), so a rerun plays only pairs
that are new or short of games; the ratings land in the same file (which
``zeroloop report`` plots) and in the ``zeroloop_ladder_elo`` gauge
(``--metrics-textfile`` writes it for a node exporter's textfile collector).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import posixpath
import shlex
import shutil
import sys
import time
from dataclasses import dataclass

import numpy as np

from zeroloop import cliflags, layout, metrics, modellist, ratings, runtime
from zeroloop.arena import A, Arena, ArenaSettings, Contestant
from zeroloop.errors import ModelFileError, UserError
from zeroloop.loop.settings import fair_komi
from zeroloop.match import MatchConfig, run_match, tally
from zeroloop.nn import modelfile
from zeroloop.search.batch import SearchParams
from zeroloop.search.evaluators import net_evaluator
from zeroloop.storage import BaseDir

log = logging.getLogger("zeroloop.ladder")


@dataclass(frozen=True)
class Player:
    name: str
    kind: str  # init | model | reference
    path: str | None = None  # model directory
    command: str | None = None  # GTP command (references)
    samples_trained: int = 0
    time: float = 0.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("basedir", metavar="BASEDIR", help="the run's directory")
    f = cliflags.flag
    f(parser, "--games", type=int, default=20, help="games per model pair")
    f(parser, "--pairs", choices=("neighbours", "all"), default="neighbours",
      help="which model pairs meet: each model and the next --distance ones, or all pairs")
    f(parser, "--distance", type=int, default=2, help="with --pairs neighbours: how many later models each meets")
    f(parser, "--visits", type=int, default=64, help="visits per move for every model")
    f(parser, "--board-size", type=int, default=None, help="board size (default: the run's)")
    f(parser, "--komi", type=float, default=None, help="komi (default: the run's)")
    f(parser, "--gnugo", default=shutil.which("gnugo") or "/usr/games/gnugo", help="GNU Go binary")
    f(parser, "--gnugo-levels", default="1", help="comma-separated GNU Go levels to rate against ('' for none)")
    f(parser, "--gnugo-games", type=int, default=10, help="games per model and GNU Go level")
    f(parser, "--no-init", action="store_true", help="leave the run's first (random-weight) model out")
    f(parser, "--metrics-textfile", default=None,
      help="also write zeroloop_ladder_elo in Prometheus text format to this file")
    cliflags.add_common(parser, device=True)


# --- players and pairs (pure) ------------------------------------------------------------


def plan_pairs(models: list[str], mode: str, distance: int) -> list[tuple[str, str]]:
    """Model pairs to play: (older, newer)."""
    out = []
    for i, a in enumerate(models):
        for j in range(i + 1, len(models)):
            if mode == "all" or j - i <= distance:
                out.append((a, models[j]))
    return out


def pair_key(a: str, b: str, signature: str) -> str:
    return f"{a}|{b}|{signature}"


def fit_ratings(results: dict, players: dict[str, Player], anchor: str | None) -> dict[str, dict]:
    """Elo and standard error per player from the cached results of these players."""
    records = [(r["a"], r["b"], r["wins"] + 0.5 * r["draws"], r["wins"] + r["losses"] + r["draws"])
               for r in results.values() if r["a"] in players and r["b"] in players]
    games: dict[str, int] = {}
    for a, b, _, n in records:
        games[a] = games.get(a, 0) + int(n)
        games[b] = games.get(b, 0) + int(n)
    if anchor not in games:
        anchor = None
    fitted = ratings.fit(records, anchor=anchor)
    out = {}
    for name, p in players.items():
        r = fitted.get(name)
        out[name] = {"kind": p.kind, "elo": r.elo if r else math.nan, "stderr": r.stderr if r else math.inf,
                     "games": games.get(name, 0), "samples_trained": p.samples_trained, "time": p.time}
    return out


# --- the run's players ------------------------------------------------------------------------


def run_settings(base: BaseDir) -> dict:
    path = layout.loop_settings(base.root)
    if base.storage.exists(path):
        try:
            return json.loads(base.storage.read_bytes(path))
        except ValueError:
            pass
    return {}


def find_players(base: BaseDir, include_init: bool, gnugo: str, levels: list[int]) -> list[Player]:
    out = []
    init = layout.loop_init_model(base.root)
    if include_init and modellist.is_model_dir(base.storage, init):
        info = modelfile.read_info(base.storage, init)
        out.append(Player(info.name, "init", init, samples_trained=0, time=base.storage.mtime(init)))
    for mtime, path in modellist.list_models(base.storage, base.models):
        try:
            info = modelfile.read_info(base.storage, path)
        except ModelFileError as e:
            log.warning("leaving out %s: %s", path, e)
            continue
        out.append(Player(posixpath.basename(path), "model", path, samples_trained=info.samples_trained, time=mtime))
    for level in levels:
        out.append(Player(f"gnugo-l{level}", "reference",
                          command=f"{shlex.quote(gnugo)} --mode gtp --level {level} --chinese-rules "
                                  f"--positional-superko"))
    return out


# --- playing -----------------------------------------------------------------------------------


class Ladder:
    def __init__(self, base: BaseDir, args: argparse.Namespace, board_size: int, komi: float):
        self.base = base
        self.args = args
        self.board_size = board_size
        self.komi = komi
        self.device = runtime.resolve_device(args.device)
        self.rng = np.random.default_rng(runtime.seed_everything(args.seed))
        self.signature = f"{board_size}x{board_size}-komi{komi:g}-v{args.visits}"
        self._loaded: dict[str, Contestant] = {}
        self.cache = self._load_cache()

    def _load_cache(self) -> dict:
        path = layout.ladder_results(self.base.root)
        if self.base.storage.exists(path):
            try:
                data = json.loads(self.base.storage.read_bytes(path))
                if isinstance(data, dict) and isinstance(data.get("results"), dict):
                    return data
            except ValueError as e:
                log.warning("ignoring unreadable %s (%s): starting over", path, e)
        return {"version": 1, "results": {}, "players": {}}

    def save(self) -> None:
        self.base.storage.makedirs(layout.ladder(self.base.root))
        self.base.storage.write_bytes(layout.ladder_results(self.base.root),
                                      (json.dumps(self.cache, indent=1, sort_keys=True) + "\n").encode())

    def _contestant(self, p: Player) -> Contestant:
        if p.name not in self._loaded:
            net, info = modelfile.load_model(self.base.storage, p.path, self.device)
            if info.pos_len < self.board_size:
                raise UserError(f"model {p.path} is for boards up to {info.pos_len}, the ladder plays "
                                f"{self.board_size}x{self.board_size}")
            self._loaded[p.name] = Contestant(p.name, net_evaluator(net, p.name, self.device, max_batch=32))
        return self._loaded[p.name]

    def arena_settings(self, games: int) -> ArenaSettings:
        return ArenaSettings(num_games_at_once=max(1, min(games, 32)), board_sizes=(self.board_size,),
                             komi_mean=self.komi, max_visits=self.args.visits,
                             search=SearchParams(forced_playouts_coeff=0.0, dirichlet_weight=0.0))

    def _record(self, a: Player, b: Player, wins: int, losses: int, draws: int) -> None:
        key = pair_key(a.name, b.name, self.signature)
        old = self.cache["results"].get(key, {"a": a.name, "b": b.name, "wins": 0, "losses": 0, "draws": 0})
        old.update(wins=old["wins"] + wins, losses=old["losses"] + losses, draws=old["draws"] + draws,
                   signature=self.signature, updated=time.time())
        self.cache["results"][key] = old
        self.save()

    def _missing(self, a: Player, b: Player, wanted: int) -> int:
        r = self.cache["results"].get(pair_key(a.name, b.name, self.signature))
        return wanted - (r["wins"] + r["losses"] + r["draws"] if r else 0)

    def play_models(self, a: Player, b: Player) -> None:
        n = self._missing(a, b, self.args.games)
        if n <= 0:
            return
        started = time.monotonic()
        arena = Arena(self._contestant(a), self._contestant(b), self.arena_settings(n), self.rng)
        games = arena.play(n).games
        w = sum(g.outcome_for(A) == "win" for g in games)
        d = sum(g.outcome_for(A) == "draw" for g in games)
        self._record(a, b, w, len(games) - w - d, d)
        log.info("%s vs %s: %d-%d-%d in %.0fs", a.name, b.name, w, len(games) - w - d, d, time.monotonic() - started)

    def play_reference(self, model: Player, ref: Player) -> None:
        n = self._missing(model, ref, self.args.gnugo_games)
        if n <= 0:
            return
        engine = shlex.join([sys.executable, "-m", "zeroloop", "gtp", "--model", model.path, "--visits",
                             str(self.args.visits), "--board-size", str(self.board_size), "--komi", f"{self.komi:g}",
                             "--threads", "1", "--device", str(self.device)]
                            + (["--seed", str(self.args.seed)] if self.args.seed is not None else []))
        # Each engine pair takes about one core (one engine thinks while the other waits).
        config = MatchConfig(engine, ref.command, n, self.board_size, self.komi, move_timeout=120.0,
                             sgf_dir=layout.ladder_sgf(self.base.root, f"{model.name}-vs-{ref.name}"),
                             parallel=runtime.cpu_count())
        started = time.monotonic()
        result = run_match(config)
        rec = tally(result.games, "A")
        self._record(model, ref, rec.wins, rec.losses, rec.draws)
        log.info("%s vs %s: %d-%d-%d in %.0fs", model.name, ref.name, rec.wins, rec.losses, rec.draws,
                 time.monotonic() - started)


def run(args: argparse.Namespace) -> int:
    if args.games < 1 or args.gnugo_games < 0 or args.visits < 1 or args.distance < 1:
        raise UserError("--games, --visits and --distance must be at least 1 and --gnugo-games not negative")
    try:
        levels = sorted({int(x) for x in args.gnugo_levels.split(",") if x.strip()})
    except ValueError:
        raise UserError(f"--gnugo-levels {args.gnugo_levels!r}: expected comma-separated integers") from None
    if any(not 0 <= lv <= 10 for lv in levels):
        raise UserError(f"--gnugo-levels {args.gnugo_levels}: GNU Go levels are 0..10")
    if levels and args.gnugo_games and not shutil.which(args.gnugo):
        raise UserError(f"GNU Go not found at {args.gnugo!r} (install gnugo, pass --gnugo PATH, or "
                        f"--gnugo-levels '')")
    base = BaseDir.open(args.basedir, create=False)
    runtime.set_threads(args.threads)
    run_cfg = run_settings(base)
    players = find_players(base, not args.no_init, args.gnugo, levels if args.gnugo_games else [])
    models = [p for p in players if p.kind != "reference"]
    if not models:
        raise UserError(f"no models to rate in {base.models}" + ("" if args.no_init else " or loop/init-model"))
    size = args.board_size or run_cfg.get("board_size") or \
        modelfile.read_info(base.storage, models[-1].path).pos_len
    komi = args.komi if args.komi is not None else run_cfg.get("komi") or fair_komi(int(size))
    ladder = Ladder(base, args, int(size), float(komi))
    by_name = {p.name: p for p in players}
    pairs = plan_pairs([p.name for p in models], args.pairs, args.distance)
    refs = [p for p in players if p.kind == "reference"]
    log.info("ladder of %d models and %d references on %dx%d, komi %g, %d visits: %d model pairs", len(models),
             len(refs), size, size, komi, args.visits, len(pairs))
    for a, b in pairs:
        ladder.play_models(by_name[a], by_name[b])
    for m in models:
        for ref in refs:
            ladder.play_reference(m, ref)
    anchor = refs[0].name if refs else models[0].name
    rated = fit_ratings({k: v for k, v in ladder.cache["results"].items() if v.get("signature") == ladder.signature},
                        by_name, anchor)
    ladder.cache.update(players=rated, anchor=anchor, signature=ladder.signature, updated=time.time())
    ladder.save()
    gauge = metrics.metric("zeroloop_ladder_elo")
    for name, r in rated.items():
        if r["kind"] != "reference" and math.isfinite(r["elo"]):
            gauge.labels(model=name).set(r["elo"])
    if args.metrics_textfile:
        import prometheus_client

        prometheus_client.write_to_textfile(args.metrics_textfile, prometheus_client.REGISTRY)
    print(format_table(rated, anchor))
    return 0


def format_table(rated: dict[str, dict], anchor: str) -> str:
    lines = [f"{'player':<40} {'Elo':>7} {'+-':>6} {'games':>6}   ({anchor} = 0)"]
    for name, r in sorted(rated.items(), key=lambda kv: -kv[1]["elo"] if math.isfinite(kv[1]["elo"]) else math.inf):
        se = f"{r['stderr']:.0f}" if math.isfinite(r["stderr"]) else "-"
        elo = f"{r['elo']:.0f}" if math.isfinite(r["elo"]) else "-"
        lines.append(f"{name:<40} {elo:>7} {se:>6} {r['games']:>6}")
    return "\n".join(lines)

