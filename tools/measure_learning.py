#!/usr/bin/env python3
"""Reproduce the README's learning result: train from zero, then measure against two fixed opponents.

    .venv/bin/python tools/measure_learning.py [BASEDIR] [--hours 2] [--games 100] [--seed 1] [LOOP FLAGS]

1. ``zeroloop loop BASEDIR --name-prefix learn --max-hours H`` with the CPU
   defaults (a rerun on an existing BASEDIR trains H more hours; give
   ``--hours 0`` to measure only);
2. the newest accepted model (``models/``, by the weights' time, as
   self-play picks it) plays the run's first model, ``loop/init-model``
   (the random-weight net training started from), ``--games`` games with
   colours alternating;
3. the same model plays GNU Go level 1 (``--chinese-rules
   --positional-superko``) ``--gnugo-games`` games.

Both matches go through ``zeroloop match`` (zeroloop's GTP referee, each
model as ``zeroloop gtp --model PATH --visits V``), independent of the
gatekeeper and ladder code the loop itself uses. The board size and komi
are the run's. Results (score rate with its Wilson 95% interval and Elo)
are printed and written to ``BASEDIR/measure/learning.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "stages"))  # also without `pip install -e .`

from zeroloop import layout, runtime  # noqa: E402
from zeroloop.match import wilson_interval  # noqa: E402


def zeroloop(*args: str) -> list[str]:
    return [sys.executable, "-m", "zeroloop", *args]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(REPO / "stages"), str(REPO / "operator"), e.get("PYTHONPATH", "")])
    return e


def match(black: str, white: str, games: int, size: int, komi: float, sgf_dir: Path, parallel: int) -> dict:
    argv = zeroloop("match", "--black", black, "--white", white, "--games", str(games), "--board-size", str(size),
                    "--komi", f"{komi:g}", "--sgf-dir", str(sgf_dir), "--json", "--move-timeout", "300",
                    "--parallel", str(parallel))
    p = subprocess.run(argv, env=env(), capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"match failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _elo(x: float | None, side: float) -> str:
    """An Elo bound as text; the match reports an infinite one as null."""
    if x is None:
        return "+inf" if side >= 0.5 else "-inf"
    return f"{x:+.0f}"


def summarise(label: str, s: dict) -> dict:
    a = s["engines"]["A"]
    n = a["wins"] + a["losses"] + a["draws"]
    lo, hi = wilson_interval(a["points"], n)
    out = {"opponent": label, "games": n, "wins": a["wins"], "losses": a["losses"], "draws": a["draws"],
           "score": a["points"] / n, "score_95": [lo, hi], "elo": s["elo_a_minus_b"],
           "elo_95": [s["elo_95_low"], s["elo_95_high"]], "by_colour": a["by_colour"]}
    bc, wc = a["by_colour"]["black"], a["by_colour"]["white"]
    print(f"newest model vs {label}: {a['wins']}-{a['losses']}-{a['draws']} of {n} (as black {bc[0]}-{bc[1]}-{bc[2]}, "
          f"as white {wc[0]}-{wc[1]}-{wc[2]}), score {out['score']:.3f} (95% {lo:.3f}..{hi:.3f}), "
          f"Elo {_elo(s['elo_a_minus_b'], out['score'])} (95% {_elo(s['elo_95_low'], 0)}.."
          f"{_elo(s['elo_95_high'], 1)})", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("basedir", nargs="?", default="runs/learning")
    ap.add_argument("--hours", type=float, default=2.0, help="training time (0: measure an existing run)")
    ap.add_argument("--games", type=int, default=100, help="games against the first model")
    ap.add_argument("--gnugo-games", type=int, default=100, help="games against GNU Go level 1")
    ap.add_argument("--visits", type=int, default=64, help="visits per move of both models in the matches")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--parallel", type=int, default=runtime.cpu_count(),
                    help="games at once in each match (each engine uses one thread; default: the usable CPUs)")
    ap.add_argument("--gnugo", default=shutil.which("gnugo") or "/usr/games/gnugo")
    args, loop_flags = ap.parse_known_args()  # anything else goes to `zeroloop loop` (e.g. --board-size 9)
    base = Path(args.basedir).resolve()
    started = time.time()
    if args.hours > 0:
        extra = [f for f in loop_flags if f != "--"]
        argv = zeroloop("loop", str(base), "--name-prefix", "learn", "--max-hours", str(args.hours),
                        "--seed", str(args.seed), *extra)
        print("training:", shlex.join(argv), flush=True)
        if subprocess.run(argv, env=env()).returncode != 0:
            sys.exit("the loop failed")
    train_seconds = time.time() - started
    settings = json.loads(Path(layout.loop_settings(str(base))).read_text())
    size, komi = int(settings["board_size"]), float(settings["komi"])
    models_dir = Path(layout.models(str(base)))
    weights = {p: Path(layout.model_weights(str(p))) for p in models_dir.iterdir()}
    models = sorted((p for p, w in weights.items() if w.exists()), key=lambda p: (weights[p].stat().st_mtime, p.name))
    if not models:
        sys.exit(f"no accepted model in {models_dir}")
    newest, init = models[-1], Path(layout.loop_init_model(str(base)))
    info = json.loads(Path(layout.model_info(str(newest))).read_text())
    print(f"newest accepted model: {newest.name} ({info['samples_trained']:,} samples, "
          f"{info['data_rows']:,} rows); first model: {init}", flush=True)

    def gtp(model: Path) -> str:
        return shlex.join(zeroloop("gtp", "--model", str(model), "--visits", str(args.visits), "--board-size",
                                   str(size), "--komi", f"{komi:g}", "--threads", "1", "--device", "cpu",
                                   "--seed", str(args.seed)))

    out_dir = Path(layout.measure(str(base)))
    results = {"basedir": str(base), "model": newest.name, "samples_trained": info["samples_trained"],
               "data_rows": info["data_rows"], "board_size": size, "komi": komi, "visits": args.visits,
               "train_hours_this_invocation": round(train_seconds / 3600, 3)}
    s = match(gtp(newest), gtp(init), args.games, size, komi, out_dir / "vs-init", args.parallel)
    results["vs_init"] = summarise("the first (random-weight) model", s)
    gnugo = f"{shlex.quote(args.gnugo)} --mode gtp --level 1 --chinese-rules --positional-superko"
    s = match(gtp(newest), gnugo, args.gnugo_games, size, komi, out_dir / "vs-gnugo-l1", args.parallel)
    results["vs_gnugo_l1"] = summarise("GNU Go level 1", s)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "learning.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"written {out_dir / 'learning.json'}")
    return 0 if results["vs_init"]["score"] >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
