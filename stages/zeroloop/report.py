"""`zeroloop report BASEDIR [--out DIR]`: plots and a one-page summary of a run.

Everything comes from what the stages left in BASEDIR (``zeroloop.runstats``),
so a report can be made at any time, of a run in progress or finished, by
the loop (after each cycle) or by hand. It writes, in ``BASEDIR/report/``
by default:

- ``losses.png``: each training loss term against samples trained
  (``train/<name>/metrics_train.jsonl``, through its bounded, persisted
  summary ``zeroloop.trainlog``: a report reads only the lines appended
  since the last);
- ``data.png``: self-play games and training rows against hours since the
  run's first file;
- ``models.png``: accepted models (samples trained when exported) and each
  gating decision's candidate score against hours (``zeroloop.runhistory``:
  the settled models and decisions folded once into a digest, so a report
  reads what is new, not every record);
- ``elo.png``: the ladder's Elo of each rated model against hours (when
  it was exported), GNU Go levels as reference lines (only after
  ``zeroloop ladder``);
- ``report.md``: the run's settings, totals, last losses, the last cycles,
  gating decisions and ladder ratings, and the plots; open it in any
  Markdown viewer (or read it as text).

Plots use matplotlib's Agg backend: no display is needed. Each plotted
series keeps at most ``MAX_POINTS`` points (evenly spaced, the first and
last kept), and self-play data comes a point per sealed segment of the
summaries' index (``zeroloop.datasummary``), so a plot costs the same
however long the run.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import posixpath
import time

from zeroloop import cliflags, layout, trainlog
from zeroloop.errors import UserError
from zeroloop.runstats import RunStats
from zeroloop.storage import BaseDir

log = logging.getLogger("zeroloop.report")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("basedir", metavar="BASEDIR", help="the run's directory")
    cliflags.flag(parser, "--out", default=None, help="where to write (default: BASEDIR/report)")
    cliflags.add_common(parser)


# --- reading ------------------------------------------------------------------------


def _read_json(base: BaseDir, path: str) -> dict | None:
    if not base.storage.exists(path):
        return None
    try:
        data = json.loads(base.storage.read_bytes(path))
    except ValueError as e:
        log.warning("ignoring unreadable %s: %s", path, e)
        return None
    return data if isinstance(data, dict) else None


CYCLES_TAIL_BYTES = 64 * 1024  # the end of loop/cycles.jsonl: the last ten cycles (a line: about 0.5 KiB)
LAST_CYCLES = 10  # cycles the report lists


def _cycles(base: BaseDir, last: int = LAST_CYCLES) -> list[dict]:
    """The last cycles of loop/cycles.jsonl, oldest first: its end only (the file grows by a line a cycle),
    parsed from the end until there are enough (memory for those, not for every cycle in the tail)."""
    path = layout.loop_cycles(base.root)
    try:
        with base.storage.fs.open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - CYCLES_TAIL_BYTES))
            data = f.read()
    except FileNotFoundError:
        return []
    first = data.find(b"\n") + 1 if size > CYCLES_TAIL_BYTES else 0  # (the first line may be cut)
    by_cycle: dict[int, dict] = {}
    end = len(data)
    while end > first and len(by_cycle) < last:  # line by line from the end, no list of every line
        start = max(first, data.rfind(b"\n", first, end) + 1)
        try:
            item = json.loads(data[start:end]) if data[start:end].strip() else None
            if item is not None:  # (a cycle logged twice, killed in between: its last line)
                by_cycle.setdefault(int(item["cycle"]), item)
        except (ValueError, KeyError, TypeError):
            pass
        end = start - 1
    return [by_cycle[k] for k in sorted(by_cycle)]


MAX_POINTS = 400  # points a plotted series keeps, however long the run (its first and last always among them)


def thin(items: list, max_points: int = MAX_POINTS) -> list:
    """At most max_points of items, evenly spaced, the first and the last kept (a plot's shape, bounded)."""
    n = len(items)
    if n <= max_points:
        return items
    step = (n - 1) / (max_points - 1)
    return [items[round(i * step)] for i in range(max_points)]


def _cumulative(points) -> tuple[list[float], list[int]]:
    xs, ys, total = [], [], 0
    for p in points:
        total += p.count
        xs.append(p.time)
        ys.append(total)
    kept = thin(list(range(len(xs))))
    return [xs[i] for i in kept], [ys[i] for i in kept]


# --- plots ------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> bool:
    """Write a finished figure as a PNG and free it; True (the plot exists)."""
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _plt().close(fig)
    return True


def plot_losses(series: dict[str, trainlog.Series], path: str) -> bool:
    """Each loss term against samples, one line per training run (downsampled: ``zeroloop.trainlog``)."""
    terms = sorted({t for s in series.values() for t in s.terms()})
    if not terms:
        return False
    plt = _plt()
    fig, axes = plt.subplots(len(terms), 1, figsize=(8, 1.9 * len(terms)), sharex=True, squeeze=False)
    for ax, term in zip(axes[:, 0], terms):
        for name, s in series.items():
            xs, ys = s.curve(term)
            ax.plot(xs, ys, lw=1, label=name)
        ax.set_ylabel(term.replace("_", " "), fontsize=9)
        ax.grid(alpha=0.3)
    if len(series) > 1:
        axes[0, 0].legend(fontsize=8)
    axes[-1, 0].set_xlabel("samples trained")
    axes[0, 0].set_title("training losses (mean per row between reports)")
    return _save(fig, path)


def plot_data(stats: RunStats, t0: float, path: str) -> bool:
    gx, gy = _cumulative(stats.data_points("sgfs"))  # (a point per self-play directory)
    rx, ry = _cumulative(stats.data_points("tdata"))
    if not gx and not rx:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.step([(x - t0) / 3600 for x in gx], gy, where="post", label="games", color="tab:blue")
    ax.set_xlabel("hours since the run started")
    ax.set_ylabel("self-play games", color="tab:blue")
    ax2 = ax.twinx()
    ax2.step([(x - t0) / 3600 for x in rx], ry, where="post", label="rows", color="tab:orange")
    ax2.set_ylabel("training rows", color="tab:orange")
    ax.set_title("self-play data")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_models(stats: RunStats, t0: float, path: str) -> bool:
    models = stats.model_history()
    gating = stats.decision_history()
    if not models.count and not any(gating.scores.values()):
        return False
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    shown = thin(models.points)  # (when accepted, else when exported)
    ax.plot([(m.when - t0) / 3600 for m in shown], [m.samples_trained for m in shown], "o-", ms=4)
    ax.set_ylabel("samples trained")
    ax.set_title(f"accepted models ({models.count})")
    ax.grid(alpha=0.3)
    for decision, colour in (("accepted", "tab:green"), ("rejected", "tab:red")):
        pts = thin(sorted(gating.scores.get(decision, [])))
        ax2.plot([(t - t0) / 3600 for t, _ in pts], [s for _, s in pts], "o", color=colour, label=decision, ms=5)
    ax2.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax2.set_ylim(-0.05, 1.05)
    ax2.set_ylabel("candidate score")
    ax2.set_xlabel("hours since the run started")
    ax2.set_title("gating matches")
    if any(gating.scores.values()):
        ax2.legend(loc="lower right", fontsize=8)
    ax2.grid(alpha=0.3)
    return _save(fig, path)


def plot_elo(ladder: dict, t0: float, path: str) -> bool:
    players = ladder.get("players", {}) if ladder else {}
    models = sorted((((p.get("time") or t0) - t0) / 3600, name, p) for name, p in players.items()
                    if p.get("kind") in ("model", "init") and math.isfinite(p.get("elo", math.nan)))
    if not models:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.errorbar([m[0] for m in models], [m[2]["elo"] for m in models],
                yerr=[min(m[2].get("stderr", 0.0) or 0.0, 1000.0) for m in models], fmt="o-", ms=4, capsize=2,
                label="models")
    for name, p in sorted(players.items()):
        if p.get("kind") == "reference" and math.isfinite(p.get("elo", math.nan)):
            ax.axhline(p["elo"], ls="--", lw=0.9, color="tab:grey")
            ax.annotate(name, (0, p["elo"]), fontsize=8, va="bottom", color="tab:grey")
    ax.set_xlabel("hours since the run started (when each model was exported)")
    ax.set_ylabel(f"Elo ({ladder.get('anchor', 'anchor')} = 0)")
    ax.set_title("ladder")
    ax.grid(alpha=0.3)
    return _save(fig, path)


# --- the summary ---------------------------------------------------------------------------


def _fmt_time(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def summary_markdown(base: BaseDir, stats: RunStats, plots: list[str], t0: float) -> str:
    settings = _read_json(base, layout.loop_settings(base.root))
    cycles = _cycles(base)
    models = stats.model_history()
    decided = stats.decision_history()
    ladder = _read_json(base, layout.ladder_results(base.root))
    losses = stats.last_losses()
    lines = [f"# zeroloop run report: {base.root}", "", f"Made {_fmt_time(time.time())}."]
    if settings:
        keys = ("name_prefix", "model_kind", "board_size", "komi", "visits", "games_per_cycle", "gating")
        lines += ["", "Settings: " + ", ".join(f"{k} {settings.get(k)}" for k in keys if k in settings) + "."]
    hours = (time.time() - t0) / 3600 if t0 < math.inf else 0.0
    lines += ["", "## Totals", "",
              f"- self-play games: {stats.games():,}; training rows: {stats.rows():,}",
              f"- samples trained: {stats.samples_trained():,}",
              f"- accepted models: {models.count}" + (f" (newest {models.newest.name})" if models.newest else ""),
              f"- gating decisions: {decided.accepted} accepted, {decided.rejected_played} rejected after a match, "
              f"{decided.rejected_unplayed} rejected unplayed (older than the accepted model, or unusable)",
              f"- cycles done: {cycles[-1]['cycle'] if cycles else 0}; hours since the first file: {hours:.2f}",
              "- last losses: " + (", ".join(f"{k} {v:.3f}" for k, v in losses.items()) or "none yet")]
    if cycles:
        lines += ["", "## Last cycles", "", "| cycle | minutes | games | rows | samples | model | gating |",
                  "|---|---|---|---|---|---|---|"]
        for c in cycles:
            played = [g for g in c.get("gating", []) if g.get("games")]
            unplayed = len(c.get("gating", [])) - len(played)
            gating = "; ".join(f"{g['decision']} ({g['score']:.2f})" for g in played)
            gating = "; ".join(x for x in (gating, f"{unplayed} rejected unplayed" if unplayed else "") if x) or "-"
            lines.append(f"| {c['cycle']} | {c.get('seconds', 0) / 60:.1f} | {c.get('games', 0):,} | "
                         f"{c.get('rows', 0):,} | {c.get('samples', 0):,} | {c.get('model', '')} | {gating} |")
    if decided.last_played:
        lines += ["", "## Gating matches (last 10)", "",
                  "| time | candidate | vs | decision | W-L-D | score | reason |", "|---|---|---|---|---|---|---|"]
        for r in decided.last_played[-10:]:
            score = f"{r.score:.3f}" if r.score is not None else "-"
            lines.append(f"| {_fmt_time(r.time)} | {r.candidate} | {r.baseline} | {r.decision} | "
                         f"{r.wins}-{r.losses}-{r.draws} | {score} | {r.reason} |")
    if ladder and ladder.get("players"):
        lines += ["", f"## Ladder (Elo, {ladder.get('anchor')} = 0)", "", "| player | Elo | +- | games |",
                  "|---|---|---|---|"]
        ranked = sorted(ladder["players"].items(), key=lambda kv: -kv[1].get("elo", -math.inf))
        for name, p in ranked:
            se = p.get("stderr")
            se_text = f"{se:.0f}" if isinstance(se, (int, float)) and math.isfinite(se) else "-"
            lines.append(f"| {name} | {p.get('elo', math.nan):.0f} | {se_text} | {p.get('games', 0)} |")
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def make_report(base: BaseDir, out_dir: str) -> str:
    """Write the plots and report.md into out_dir; return report.md's path."""
    stats = RunStats(base)
    os.makedirs(out_dir, exist_ok=True)
    firsts = [min((p.oldest for p in stats.data_points(kind)), default=math.inf) for kind in ("sgfs", "tdata")]
    firsts = [t for t in firsts if t < math.inf]
    init = layout.loop_init_model(base.root)
    if base.storage.exists(init):
        firsts.append(base.storage.mtime(init))
    t0 = min(firsts) if firsts else time.time()
    plots = []
    ladder = _read_json(base, layout.ladder_results(base.root))
    for name, make in (("losses.png", lambda p: plot_losses(stats.loss_series(), p)),
                       ("data.png", lambda p: plot_data(stats, t0, p)),
                       ("models.png", lambda p: plot_models(stats, t0, p)),
                       ("elo.png", lambda p: plot_elo(ladder or {}, t0, p))):
        path = posixpath.join(out_dir, name)
        tmp = path + ".tmp.png"
        if make(tmp):
            os.replace(tmp, path)
            plots.append(name)
    text = summary_markdown(base, stats, plots, t0)
    path = posixpath.join(out_dir, posixpath.basename(layout.report_file(base.root)))
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    return path


def run(args: argparse.Namespace) -> int:
    base = BaseDir.open(args.basedir, create=False)
    if not base.storage.local and args.out is None:
        raise UserError("BASEDIR is not a local directory: give --out DIR for the report")
    out = os.path.abspath(args.out) if args.out else layout.report(base.root)
    path = make_report(base, out)
    print(path)
    return 0
