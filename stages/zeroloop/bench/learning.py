"""`zeroloop bench learning --json`: what a set of methods buys per unit of compute.

Two or more ARMS (named sets of loop settings, self-play config keys and
train flags) each train from zero, one after another, from the same seed,
in ``--dir``/NAME with ``zeroloop loop --max-nn-evals BUDGET``: every arm
gets the same compute budget counted in self-play NN evaluations (a count
that does not depend on how busy a shared machine is; the random
evaluator's, before the first net, cost next to nothing and do not
count), and training is held
to the same samples per data row (``max_train_per_data`` is common to all
arms). Wall-clock and CPU seconds are reported beside the budget.

Then every arm's newest accepted model plays, through ``zeroloop match``'s
GTP referee (each model as ``zeroloop gtp --model``), with colours
alternating and each pair of games from its own random opening
(``--opening-moves``; the pair plays it once with each colour):

- every other arm's model, ``--head-to-head-games`` games (or, with
  ``--head-to-head-with ARM``, only that arm's: one baseline against each variation);
- GNU Go at each of ``--gnugo-levels``, ``--gnugo-games`` games.

The result is one JSON object: per arm its settings, NN evaluations,
games, rows, samples, last losses and, per opponent, the score and Elo with
95% (Wilson) intervals; and the head-to-head matrix of scores.

Arms come from ``--arm 'NAME KEY=VALUE ...'`` (repeatable) or a TOML/YAML
file (``--arms FILE``) with a ``[common]`` table applied to every arm and
one table per arm under ``[arms]``. A KEY is a loop setting (``visits``,
``games_per_cycle`` ... as in ``zeroloop loop --help`` with underscores),
``selfplay.KEY`` (a self-play config key) or ``train.FLAG`` (a train flag
without its dashes). Unknown keys are refused by name. A rerun with the same
``--dir`` resumes: arms whose budget is spent only play their matches. The
JSON is also written to ``--dir``/learning.json after every match.
``--train-only ARM`` trains one arm and stops, so that arms can train side by
side in separate processes before one rerun plays the matches.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from zeroloop import config, layout, runtime
from zeroloop.errors import ConfigError, UserError
from zeroloop.loop import settings as S
from zeroloop.match import MatchConfig, elo_estimate, run_match, tally, wilson_interval
from zeroloop.nn import modelfile
from zeroloop.runstats import RunStats
from zeroloop.storage import BaseDir

# Settings every arm must share, or the comparison means nothing: the board and the training per row.
COMMON_ONLY = ("board_size", "komi", "max_train_per_data", "seed", "device", "threads")
NOT_SETTABLE = ("name_prefix",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    f = parser.add_argument
    f("--dir", required=True, help="where the arms' runs go (one BASEDIR per arm; a rerun resumes)")
    f("--arm", action="append", default=[], metavar="'NAME KEY=VALUE ...'",
      help="an arm: its name, then settings (repeat for each arm)")
    f("--arms", default=None, metavar="FILE", help="arms from a TOML or YAML file ([common] and [arms.NAME])")
    f("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting for every arm (like [common])")
    f("--budget-nn-evals", type=int, required=True, help="self-play NN evaluations each arm may spend")
    f("--visits", type=int, default=64, help="visits per move of every model in the matches")
    f("--head-to-head-games", type=int, default=100, help="games between each pair of arms")
    f("--head-to-head-with", default=None, metavar="ARM",
      help="play head to head only against this arm (an ablation's baseline), not every pair")
    f("--train-only", default=None, metavar="ARM",
      help="train (or resume) just this arm, then stop: one process per arm trains arms side by side; "
           "a rerun without it plays the matches")
    f("--gnugo-games", type=int, default=50, help="games of each arm against each GNU Go level")
    f("--gnugo-levels", default="1,5", help="comma-separated GNU Go levels ('' for none)")
    f("--gnugo", default=shutil.which("gnugo") or "/usr/games/gnugo", help="GNU Go binary")
    f("--opening-moves", type=int, default=None,
      help="random moves that start each pair of match games (default: 2 on boards below 9x9, else 4)")
    f("--parallel", type=int, default=runtime.cpu_count(), help="match games at once (each engine one thread)")
    f("--move-timeout", type=float, default=300.0, help="seconds an engine may take per move in the matches")


# --- arms (pure) ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Arm:
    name: str
    settings: dict  # LoopSettings fields (selfplay_keys and train_flags as dicts)


def parse_assignments(items: list[str], where: str) -> dict:
    """KEY=VALUE strings into a settings dict; selfplay.K and train.F go into selfplay_keys / train_flags."""
    out: dict = {}
    for item in items:
        try:
            key, value = S.key_value(item)
        except argparse.ArgumentTypeError as e:
            raise UserError(f"{where}: {e}") from None
        _assign(out, key, value, where)
    return out


def _assign(out: dict, key: str, value, where: str) -> None:
    fields = {f.name for f in dataclasses.fields(S.LoopSettings)} - set(NOT_SETTABLE) - set(S.PASS_THROUGH)
    head, dot, rest = key.partition(".")
    if dot and head in ("selfplay", "train"):
        out.setdefault("selfplay_keys" if head == "selfplay" else "train_flags", {})[rest] = value
    elif key.replace("-", "_") in fields:
        out[key.replace("-", "_")] = _typed(key.replace("-", "_"), value, where)
    else:
        raise UserError(f"{where}: unknown setting {key!r} (a loop setting: {', '.join(sorted(fields))}; "
                        f"or selfplay.KEY, or train.FLAG)")


def _typed(name: str, value, where: str):
    """value checked against the loop setting's type (an int where a float goes is fine)."""
    kind = str(next(f.type for f in dataclasses.fields(S.LoopSettings) if f.name == name))
    ok = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}
    if value is None and kind.endswith("| None"):
        return value
    want = ok[kind.split(" |")[0]]
    if isinstance(value, bool) and bool not in want or not isinstance(value, want):
        raise UserError(f"{where}: {name} = {value!r}: expected {kind.split(' |')[0]}")
    return float(value) if kind.startswith("float") else value


def arms_from_file(path: str) -> tuple[dict, list[Arm]]:
    try:
        data = config.read_file(path)
    except ConfigError as e:
        raise UserError(str(e)) from None
    unknown = sorted(set(data) - {"common", "arms"})
    if unknown:
        raise UserError(f"{path}: unknown top-level key {', '.join(unknown)} (known: common, arms)")
    common = _table(data.get("common", {}), f"{path} [common]")
    arms_data = data.get("arms", {})
    if not isinstance(arms_data, dict):
        raise UserError(f"{path}: [arms] must be a table of arms")
    return common, [Arm(str(name), _table(t, f"{path} [arms.{name}]")) for name, t in arms_data.items()]


def _table(table, where: str) -> dict:
    if not isinstance(table, dict):
        raise UserError(f"{where}: must be a table")
    out: dict = {}
    for key, value in table.items():
        if key in ("selfplay", "train") and isinstance(value, dict):
            for k, v in value.items():
                _assign(out, f"{key}.{k}", v, where)
        else:
            _assign(out, key, value, where)
    return out


def arm_from_text(text: str) -> Arm:
    parts = shlex.split(text)
    if not parts:
        raise UserError("--arm '': give the arm's name, then its settings")
    return Arm(parts[0], parse_assignments(parts[1:], f"--arm {parts[0]}"))


def resolve_arms(common: dict, arms: list[Arm], seed: int) -> list[tuple[Arm, S.LoopSettings]]:
    """Each arm's full settings: defaults, then common, then its own; checked, names unique."""
    if len(arms) < 2:
        raise UserError(f"a learning benchmark needs two or more arms (got {len(arms)})")
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise UserError(f"arm names must differ: {', '.join(names)}")
    out = []
    for arm in arms:
        shared = sorted(k for k in arm.settings if k in COMMON_ONLY)
        if shared:
            raise UserError(f"arm {arm.name}: {', '.join(shared)} must be the same for every arm; set it with "
                            f"--set or in [common]")
        values = {**common, **arm.settings, "seed": common.get("seed", seed)}
        for k in S.PASS_THROUGH:
            values[k] = {**common.get(k, {}), **arm.settings.get(k, {})}
        try:
            s = S.LoopSettings(name_prefix=arm.name, **values)
        except TypeError as e:
            raise UserError(f"arm {arm.name}: {e}") from None
        if s.komi is None:
            s = dataclasses.replace(s, komi=S.fair_komi(s.board_size))
        try:
            s.check()
        except UserError as e:
            raise UserError(f"arm {arm.name}: {e}") from None
        out.append((arm, s))
    return out


def changed_settings(s: S.LoopSettings) -> dict:
    """The settings that differ from the loop's defaults (what an arm is)."""
    default = dataclasses.asdict(S.LoopSettings(s.name_prefix, board_size=s.board_size))
    return {k: v for k, v in dataclasses.asdict(s).items()
            if k not in ("name_prefix", "komi") and v != default[k]}


def match_record(summary: dict) -> dict:
    """Engine A's record from a match summary: games, score and Elo with 95% intervals, and where each
    engine's own count of the final positions (final_score) differs from the referee's."""
    a = summary["engines"]["A"]
    n = a["wins"] + a["losses"] + a["draws"]
    lo, hi = wilson_interval(a["points"], n)
    elo, elo_lo, elo_hi = elo_estimate(a["wins"], a["losses"], a["draws"])
    finite = lambda x: round(x, 1) if abs(x) != float("inf") else None  # noqa: E731 (JSON has no infinity)
    return {"games": n, "wins": a["wins"], "losses": a["losses"], "draws": a["draws"],
            "score": round(a["points"] / max(1, n), 4), "score_95": [round(lo, 4), round(hi, 4)],
            "elo": finite(elo), "elo_95": [finite(elo_lo), finite(elo_hi)], "by_colour": a["by_colour"],
            "own_counts": {"self": a.get("own_count"), "opponent": summary["engines"]["B"].get("own_count")}}


def flip_record(r: dict) -> dict:
    """The same match seen from the other engine."""
    lo, hi = r["score_95"]
    neg = lambda x: None if x is None else -x  # noqa: E731
    own = r.get("own_counts")
    if own is not None:
        r = {**r, "own_counts": {"self": own["opponent"], "opponent": own["self"]}}
    return {**r, "wins": r["losses"], "losses": r["wins"], "score": round(1 - r["score"], 4),
            "score_95": [round(1 - hi, 4), round(1 - lo, 4)], "elo": neg(r["elo"]),
            "elo_95": [neg(r["elo_95"][1]), neg(r["elo_95"][0])],
            "by_colour": {"black": r["by_colour"]["white"][1::-1] + r["by_colour"]["white"][2:],
                          "white": r["by_colour"]["black"][1::-1] + r["by_colour"]["black"][2:]}}


# --- running ---------------------------------------------------------------------------------


def _child_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def train_arm(root: Path, s: S.LoopSettings, budget: int, log) -> dict:
    """Run (or resume) the arm's loop until its budget is spent; its figures."""
    base = BaseDir.open(str(root))
    stored = S.load_stored(base) if root.exists() else None
    if stored is not None:
        mine = json.loads(s.to_json())
        differ = sorted(k for k in mine if k in stored and stored[k] != mine[k])  # (keys added since: defaults)
        if differ:
            raise UserError(f"{root} holds a run with other settings ({', '.join(differ)}); give a new --dir")
    else:
        base.storage.makedirs(layout.loop(base.root))
        S.save(base, s)
    argv = S.zeroloop("loop", str(root), "--name-prefix", s.name_prefix, "--max-nn-evals", str(budget),
                      "--no-report")
    cpu0, wall0 = _child_cpu_seconds(), time.monotonic()
    bench_log = Path(layout.loop(str(root))) / "bench.log"
    with open(bench_log, "ab") as out:
        p = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=_env())
    cpu, wall = _child_cpu_seconds() - cpu0, time.monotonic() - wall0
    prior = _previous_timing(root)
    timing = {"wall_seconds": round(prior["wall_seconds"] + wall, 1),
              "cpu_seconds": round(prior["cpu_seconds"] + cpu, 1)}
    _timing_path(root).write_text(json.dumps(timing))  # kept across restarts, whatever the loop did
    if p.returncode != 0:
        raise UserError(f"arm {s.name_prefix}: zeroloop loop failed (exit status {p.returncode}); see "
                        f"{bench_log}")
    state = json.loads(Path(layout.loop_state(str(root))).read_text())
    if state["nn_evals"] < budget:  # stopped (SIGTERM, Ctrl-C): its matches would judge a half-trained arm
        raise UserError(f"arm {s.name_prefix}: the loop stopped after {state['nn_evals']:,} of {budget:,} NN "
                        f"evaluations; rerun the same command to carry on")
    cycles = [json.loads(x) for x in Path(layout.loop_cycles(str(root))).read_text().splitlines() if x.strip()]
    stats = RunStats(base)
    accepted = stats.accepted_models()
    rows, samples = stats.rows(), stats.samples_trained()
    log(f"arm {s.name_prefix}: {state['nn_evals']:,} NN evals in {timing['wall_seconds']:.0f} s "
        f"({timing['cpu_seconds']:.0f} CPU s), {stats.games():,} games, {rows:,} rows, {samples:,} samples")
    return {
        "settings": changed_settings(s),
        "nn_evals": state["nn_evals"],
        "random_evaluator_evals": state.get("random_evals", 0),
        "budget_share": round(state["nn_evals"] / budget, 4),
        "nn_evals_before_last_cycle": cycles[-1]["total_nn_evals"] - cycles[-1]["nn_evals"] if cycles else 0,
        **timing,
        "nn_evals_per_cpu_second": round(state["nn_evals"] / timing["cpu_seconds"], 1) if timing["cpu_seconds"] else None,
        "cycles": len(cycles), "games": stats.games(), "rows": rows, "samples": samples,
        "samples_per_row": round(samples / rows, 3) if rows else 0.0,
        "last_losses": {k: round(v, 4) for k, v in stats.last_losses().items()},
        "accepted_models": len(accepted),
        "model": accepted[-1].name if accepted else "init (no model accepted)",
        "model_path": accepted[-1].path if accepted else layout.loop_init_model(base.root),
    }


def _timing_path(root: Path) -> Path:
    """The arm's accumulated wall and CPU seconds, beside its loop state."""
    return Path(layout.loop(str(root))) / "bench-timing.json"


def _previous_timing(root: Path) -> dict:
    path = _timing_path(root)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"wall_seconds": 0.0, "cpu_seconds": 0.0}


def _env() -> dict:
    env = dict(os.environ)
    stages = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (stages, env.get("PYTHONPATH", "")) if p)
    return env


def head_to_head_pairs(n: int, baseline: int | None = None) -> list[tuple[int, int]]:
    """The (i, j) arm pairs that play head to head, i < j: every pair, or only those with the baseline."""
    return [(i, j) for i in range(n) for j in range(i + 1, n) if baseline is None or baseline in (i, j)]


def gtp_command(model_path: str, s: S.LoopSettings, visits: int, seed: int) -> str:
    return shlex.join(S.zeroloop("gtp", "--model", model_path, "--visits", str(visits), "--board-size",
                                 str(s.board_size), "--komi", f"{s.run_komi:g}", "--threads", "1", "--device",
                                 "cpu", "--seed", str(seed)))


def play(a: str, b: str, games: int, s: S.LoopSettings, args, sgf_dir: Path, seed: int) -> dict:
    cfg = MatchConfig(a, b, games, s.board_size, s.run_komi, move_timeout=args.move_timeout,
                      sgf_dir=str(sgf_dir), parallel=max(1, min(args.parallel, games)),
                      opening_moves=args.opening_moves, opening_seed=seed)
    os.environ["PYTHONPATH"] = _env()["PYTHONPATH"]  # the engines are children of this process
    return match_record(run_match(cfg).summary())


def check_args(args) -> list[int]:
    for name in ("budget_nn_evals", "visits"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least 1")
    for name in ("head_to_head_games", "gnugo_games"):
        if getattr(args, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} {getattr(args, name)}: must not be negative")
    try:
        levels = [int(x) for x in args.gnugo_levels.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--gnugo-levels {args.gnugo_levels!r}: expected levels like 1,5") from None
    if any(not 0 <= lv <= 10 for lv in levels):
        raise UserError(f"--gnugo-levels {args.gnugo_levels!r}: GNU Go's levels are 0..10")
    if levels and args.gnugo_games and not (shutil.which(args.gnugo) or Path(args.gnugo).is_file()):
        raise UserError(f"--gnugo {args.gnugo}: not found (install gnugo, or give --gnugo-games 0)")
    return levels


def measure(args: argparse.Namespace) -> dict:
    levels = check_args(args)
    if args.seed is None:
        args.seed = 1  # the same seed for every arm, and a rerun repeats the benchmark
    common = parse_assignments(args.set, "--set")
    arms = [arm_from_text(t) for t in args.arm]
    if args.arms:
        file_common, file_arms = arms_from_file(args.arms)
        common = {**file_common, **common}
        arms = file_arms + arms
    resolved = resolve_arms(common, arms, args.seed)
    arm_names = [arm.name for arm, _ in resolved]
    if args.head_to_head_with is not None and args.head_to_head_with not in arm_names:  # before hours of training
        raise UserError(f"--head-to-head-with {args.head_to_head_with!r}: no such arm (arms: {', '.join(arm_names)})")
    if args.train_only is not None and args.train_only not in arm_names:
        raise UserError(f"--train-only {args.train_only!r}: no such arm (arms: {', '.join(arm_names)})")
    s0 = resolved[0][1]
    if args.opening_moves is None:
        args.opening_moves = 2 if s0.board_size < 9 else 4
    root = Path(args.dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731 (stdout: the JSON)
    started = time.monotonic()
    out_arms = {}
    for arm, s in resolved:
        if args.train_only in (None, arm.name):
            out_arms[arm.name] = train_arm(root / arm.name, s, args.budget_nn_evals, log)
    if args.train_only is not None:
        return {"arm": args.train_only, **out_arms[args.train_only]}
    train_seconds = time.monotonic() - started
    engines = {name: gtp_command(a["model_path"], s0, args.visits, args.seed) for name, a in out_arms.items()}
    names = list(out_arms)
    matrix = {a: {b: None for b in names} for a in names}
    for a in out_arms.values():
        a["vs"] = {}

    def result() -> dict:
        return {
            "board_size": s0.board_size, "komi": s0.run_komi, "seed": s0.seed,
            "budget_nn_evals": args.budget_nn_evals, "max_train_per_data": s0.max_train_per_data,
            "match_visits": args.visits, "opening_moves": args.opening_moves,
            "machine": f"{platform.machine()}, {runtime.cpu_count()} usable CPUs, {_cpu_model()}",
            "train_wall_seconds": round(train_seconds, 1),
            "match_wall_seconds": round(time.monotonic() - started - train_seconds, 1),
            "arms": out_arms, "head_to_head": matrix,
        }

    def save() -> None:  # after every match: a long benchmark's results so far survive a stop
        tmp = root / "learning.json.tmp"
        tmp.write_text(json.dumps(result(), indent=1) + "\n")
        os.replace(tmp, root / "learning.json")

    save()
    if args.head_to_head_games:
        for i, j in head_to_head_pairs(len(names), names.index(args.head_to_head_with)
                                       if args.head_to_head_with is not None else None):
            a, b = names[i], names[j]
            r = play(engines[a], engines[b], args.head_to_head_games, s0, args,
                     root / "matches" / f"{a}-vs-{b}", args.seed + 1000 * i + j)
            out_arms[a]["vs"][b], out_arms[b]["vs"][a] = r, flip_record(r)
            matrix[a][b], matrix[b][a] = r["score"], round(1 - r["score"], 4)
            log(f"{a} vs {b}: {r['wins']}-{r['losses']}-{r['draws']}, score {r['score']:.3f} "
                f"(95% {r['score_95'][0]:.3f}..{r['score_95'][1]:.3f})")
            save()
    if args.gnugo_games:
        for level in levels:
            gnugo = f"{shlex.quote(args.gnugo)} --mode gtp --level {level} --chinese-rules --positional-superko"
            for k, name in enumerate(names):
                r = play(engines[name], gnugo, args.gnugo_games, s0, args, root / "matches" / f"{name}-vs-gnugo{level}",
                         args.seed + 100 * level)  # the same openings for every arm
                out_arms[name]["vs"][f"gnugo-l{level}"] = r
                log(f"{name} vs GNU Go level {level}: {r['wins']}-{r['losses']}-{r['draws']}, score {r['score']:.3f}")
                save()
    return result()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
