"""The loop's settings, and the run they describe.

``describe`` turns the loop's few knobs (board size, net, visits, games per
cycle, training rate ...) into a ``plan.RunDescription`` and ``placement``
says where the stages run; ``zeroloop.plan`` makes both into the stages'
flags and config files, for the synchronous loop (``sync``), the
asynchronous one (``asyncmode``) and the Kubernetes operator alike. The defaults are tuned for a 2-core CPU machine
(docs/learning.md has the measurements behind them).

Settings persist in ``BASEDIR/loop/settings.json``: a rerun without flags
carries on with the run's settings, a flag given again changes that
setting from then on, and the settings that fix the shape of the run
(name prefix, board size, net) cannot change.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import tomllib
from dataclasses import dataclass

from zeroloop import cliflags, config, layout, modelnames, plan, runtime
from zeroloop.config import option
from zeroloop.errors import UserError
from zeroloop.go import board as B
from zeroloop.nn.configs import CONFIGS
from zeroloop.storage import BaseDir

# Komi that makes perfect play a draw or a half-point game where it is known
# (5x5: Black takes the whole board; 6x6: Black by 4; 7x7: Black by 9 under
# area scoring); 7 elsewhere, as KataGo's default for 9x9 and larger.
FAIR_KOMI = {5: 24.5, 6: 4.5, 7: 9.0}
TRAINING_NAME_MAX = 24


def fair_komi(size: int) -> float:
    return FAIR_KOMI.get(size, 7.0)


@dataclass(frozen=True)
class LoopSettings:
    """The loop's settings: each field's doc and range make its flag, its help and its check."""

    name_prefix: str = dataclasses.field(metadata={"doc": "the run's name: models are NAME-<net>-s<samples>-d<rows>"})
    model_kind: str = option("b2c32", "net size (zeroloop.nn.configs)", choices=tuple(sorted(CONFIGS)))
    features: str = option("zeroloop", "the net's inputs: zeroloop (12 planes) or katago-v7 (KataGo's inputs v7, "
                                       "with ladder and area planes; docs/learning.md)",
                           choices=("zeroloop", "katago-v7"))
    board_size: int = option(7, "board size of every game", lo=B.MIN_SIZE, hi=B.MAX_SIZE)
    komi: float | None = option(None, "komi (default: the fair komi where known: 9 on 7x7, else 7)",
                                lo=-150.0, hi=150.0)
    # self-play
    visits: int = option(32, "visits of a full self-play search (a training row)", lo=1)
    cheap_visits: int | None = option(None, "visits of a cheap self-play search (default visits/4)", lo=1)
    full_search_prob: float = option(0.25, "share of self-play moves that get a full search", above=0.0, hi=1.0)
    games_at_once: int = option(64, "self-play games at once (the net's batch size)", lo=1)
    games_per_cycle: int = option(500, "self-play games per cycle", lo=1)
    # gating
    gating: bool = option(True, "test each new model against the accepted one before self-play uses it")
    gating_games: int = option(40, "games per gating match at most", lo=1)
    gating_visits: int | None = option(None, "visits per move in gating games (default: --visits)", lo=1)
    gating_win_prop: float = option(0.5, "share of gating points a candidate needs (ties pass)", lo=0.0, hi=1.0)
    sprt: bool = option(False, "decide gating by SPRT instead of the fixed-length rule")
    # export
    katago_export: bool = option(False, "also write every model in KataGo's format (model.bin.gz beside it; "
                                        "docs/katago.md)")
    # shuffle
    shuffle_min_rows: int = option(10_000, "rows needed before the first shuffle", lo=1)
    keep_target_rows: int = option(60_000, "rows of the window each shuffle keeps", lo=1)
    taper_window_scale: int = option(20_000, "rows at which the shuffle window starts to taper", lo=1)
    # train
    batch_size: int = option(128, "training batch size", lo=1)
    samples_per_epoch: int = option(5_000, "training samples per epoch (one export per epoch)", lo=1)
    max_train_per_data: float = option(4.0, "training samples allowed per new data row (the train bucket)",
                                       above=0.0)
    max_train_samples_per_cycle: int = option(100_000, "training samples per cycle at most (the bucket's size)",
                                              lo=1)
    lr_scale: float = option(1.0, "multiplies KataGo's learning rate", above=0.0)
    lr_warmup_samples: int = option(10_000, "learning-rate warm-up (KataGo: 2M samples; far too long here)", lo=0)
    # process
    poll_seconds: float = option(10.0, "how often stages look for new models or data (asynchronous mode waits "
                                       "on it)", above=0.0)
    device: str = option("auto", "auto, cpu, cuda or cuda:N (self-play, training, gating)")
    threads: int | None = option(None, "CPU threads per stage (default: from the cgroup CPU quota)", lo=1)
    seed: int | None = option(None, "random seed of the run (each stage gets its own, derived from it)")
    # methods switched on by key (the learning benchmark's arms): passed through to the stages
    selfplay_keys: dict = option(None, "self-play config keys over the loop's own: --selfplay-key KEY=VALUE "
                                       "(repeat the flag; given, the list replaces the run's; see `zeroloop "
                                       "selfplay --help-config`), in a file a table", factory=dict)
    train_flags: dict = option(None, "`zeroloop train` flags: --train-flag NAME=VALUE without the dashes "
                                     "(NAME=true for a switch; repeat the flag; given, the list replaces the "
                                     "run's), in a file a table", factory=dict)

    # fixed once a run has started
    SHAPE = ("name_prefix", "model_kind", "features", "board_size")

    @property
    def run_komi(self) -> float:
        return self.komi if self.komi is not None else fair_komi(self.board_size)

    @property
    def run_cheap_visits(self) -> int:
        return self.cheap_visits if self.cheap_visits is not None else max(1, self.visits // 4)

    @property
    def run_gating_visits(self) -> int:
        return self.gating_visits if self.gating_visits is not None else self.visits

    @property
    def training_name(self) -> str:
        return self.model_kind

    def check(self) -> None:
        problems = []
        probe = modelnames.check_model_name(f"{self.name_prefix}-{self.training_name}-s0-d0")
        if probe:
            problems.append(f"--name-prefix {self.name_prefix!r}: {probe}")
        problems += [p for f in dataclasses.fields(self) if (p := config.range_problem(f, getattr(self, f.name)))]
        if self.samples_per_epoch < self.batch_size:
            problems.append(f"--samples-per-epoch {self.samples_per_epoch} is less than one batch (--batch-size "
                            f"{self.batch_size})")
        if self.komi is not None and self.komi * 2 != int(self.komi * 2):
            problems.append(f"--komi {self.komi}: must be a multiple of 0.5")
        try:
            runtime.resolve_device(self.device)  # refused here, before settings.json keeps it
        except UserError as e:
            problems.append(str(e))
        problems += check_selfplay_keys(self) + check_train_flags(self.train_flags)
        if not problems:
            problems += training_can_start(self)
        if problems:
            raise UserError("; ".join(problems))

    def to_json(self) -> bytes:
        return (json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n").encode()


# --- flags and config file ------------------------------------------------------------------

PASS_THROUGH = {"selfplay_keys": "--selfplay-key", "train_flags": "--train-flag"}


def key_value(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE read as TOML (1, 0.5, true, [1, 2], "x"), else as a plain string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


# Self-play config keys the run plan sets from the loop's own flags (named in a problem across keys).
SELFPLAY_KEYS_FROM_FLAGS = {
    "num_games": "--games-at-once", "board_sizes": "--board-size", "data_board_len": "--board-size",
    "komi_mean": "--komi", "max_visits": "--visits", "cheap_visits": "--cheap-visits",
    "full_search_prob": "--full-search-prob", "features": "--features",
}


def check_selfplay_keys(s: "LoopSettings") -> list[str]:
    """Why self-play would refuse --selfplay-key: each bad key, else the whole file they make (with the flags)."""
    if not s.selfplay_keys:
        return []
    from zeroloop.selfplay.config import SelfplayConfig

    where, known = "--selfplay-key", "`zeroloop selfplay --help-config`"
    problems = config.problems(SelfplayConfig, s.selfplay_keys, where, known, across=False)
    if problems:
        return problems
    problems = config.problems(SelfplayConfig, selfplay_config(s), where, known)
    return [_with_flags(p) for p in problems]


def _with_flags(problem: str) -> str:
    """problem, saying which flag sets each plan key it names (max_visits is --visits)."""
    named = [f"{key} is {flag}" for key, flag in SELFPLAY_KEYS_FROM_FLAGS.items() if re.search(rf"\b{key}\b", problem)]
    return f"{problem} ({'; '.join(named)})" if named else problem


def training_can_start(s: "LoopSettings") -> list[str]:
    """Why training could never start with these settings (empty: it can).

    The trainer runs with --no-repeat-files, so an epoch must fit in one
    shuffle. Until the first net exists, self-play plays random games, and
    random rows count toward the shuffle window for at most
    ``shuffle_min_rows``: the window stays at that size, and whole tdata
    files are taken until it is covered, so a shuffle of random rows holds
    fewer than ``shuffle_min_rows`` + one file's rows, and at most about
    ``keep_target_rows``. If an epoch does not fit in that, no net is ever
    trained and the loop plays random games for ever (which a
    ``--max-nn-evals`` budget, counting net evaluations only, never ends).
    """
    from zeroloop import config
    from zeroloop.selfplay.config import SelfplayConfig

    cfg = config.from_dict(SelfplayConfig, selfplay_config(s), "loop/selfplay.toml")
    file_rows = max(cfg.max_rows_per_file, cfg.max_moves(s.board_size))  # a file holds whole games
    problems = []
    if s.keep_target_rows < s.samples_per_epoch:
        problems.append(f"--keep-target-rows {s.keep_target_rows} is below --samples-per-epoch "
                        f"{s.samples_per_epoch}: a shuffle never holds an epoch, so training never starts")
    elif s.shuffle_min_rows + file_rows - 1 < s.samples_per_epoch:
        problems.append(f"--shuffle-min-rows {s.shuffle_min_rows} with self-play files of at most {file_rows} rows "
                        f"(selfplay max_rows_per_file) is too small for --samples-per-epoch {s.samples_per_epoch}: "
                        f"until the first net exists a shuffle holds random games' rows, at most "
                        f"{s.shuffle_min_rows + file_rows - 1}, an epoch never fits (--no-repeat-files) and the "
                        f"loop would play random games for ever; raise --shuffle-min-rows to at least "
                        f"{s.samples_per_epoch} or lower --samples-per-epoch")
    return problems


def check_train_flags(flags: dict) -> list[str]:
    if not flags:
        return []
    from zeroloop.train.options import extra_flag_problems

    return extra_flag_problems(flags, "--train-flag ", "the loop")


SETTINGS_GROUP = "run settings (kept in BASEDIR/loop/settings.json; a flag or --config changes them)"


def add_flags(parser: argparse.ArgumentParser) -> None:
    """A flag per setting; one not given is absent from args (the file's, the run's or the built-in value
    applies)."""
    names = tuple(f.name for f in dataclasses.fields(LoopSettings))
    config.add_flags(parser, LoopSettings, {SETTINGS_GROUP: names}, skip=("name_prefix", *PASS_THROUGH))
    g = next(g for g in parser._action_groups if g.title == SETTINGS_GROUP)
    for name, flag in PASS_THROUGH.items():
        field = LoopSettings.__dataclass_fields__[name]
        cliflags.flag(g, flag, dest=name, action="append", type=key_value, default=argparse.SUPPRESS,
                      metavar="KEY=VALUE", help=field.metadata["doc"])


def read_config(path: str) -> dict:
    """The settings a --config file gives (TOML or YAML keys of LoopSettings), each checked and named."""
    return config.checked(LoopSettings, config.read_file(path), path)


def resolve(args: argparse.Namespace, stored: dict | None, from_file: dict | None = None) -> LoopSettings:
    """Settings: built-in defaults, then the stored run's, then the --config file's, then the flags given."""
    given = {k: (dict(v) if k in PASS_THROUGH else v) for k, v in config.given(LoopSettings, args).items()
             if v is not None}
    given = {**(from_file or {}), **given}
    if "name_prefix" not in given:
        raise UserError("--name-prefix is required (or name_prefix in the --config file)")
    values = dataclasses.asdict(LoopSettings(given["name_prefix"]))
    names = set(values)
    if stored:
        values.update({k: v for k, v in stored.items() if k in names})
        for k in LoopSettings.SHAPE:
            if k in given and given[k] != values[k]:  # (a key the stored run predates: its default)
                raise UserError(f"this BASEDIR's run has --{k.replace('_', '-')} {values[k]}; it cannot change "
                                f"to {given[k]} (start a new BASEDIR)")
    values.update(given)
    if values["komi"] is None:  # fixed when the run starts
        values["komi"] = fair_komi(values["board_size"])
    settings = LoopSettings(**values)
    settings.check()
    return settings


def load_stored(base: BaseDir) -> dict | None:
    path = layout.loop_settings(base.root)
    if not base.storage.exists(path):
        return None
    try:
        data = json.loads(base.storage.read_bytes(path))
    except ValueError as e:
        raise UserError(f"{path} is not valid JSON ({e}); fix or remove it") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} should hold a JSON object")
    return data


def save(base: BaseDir, settings: LoopSettings) -> None:
    base.storage.makedirs(layout.loop(base.root))
    base.storage.write_bytes(layout.loop_settings(base.root), settings.to_json())


# --- stage configs and commands ---------------------------------------------------------------


def _toml(values: dict) -> str:
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    return "".join(f"{k} = {value(v)}\n" for k, v in values.items())


def describe(s: LoopSettings) -> plan.RunDescription:
    """The run these settings describe (``zeroloop.plan``): what the stages are started with."""
    return plan.RunDescription(
        name_prefix=s.name_prefix, model_kind=s.model_kind, features=s.features, board_sizes=(s.board_size,),
        komi=s.run_komi,
        visits=s.visits, cheap_visits=s.run_cheap_visits, full_search_prob=s.full_search_prob,
        games_at_once=s.games_at_once, selfplay_extra={**LOCAL_SELFPLAY, **s.selfplay_keys},
        gating=s.gating, gating_games=s.gating_games, gating_visits=s.run_gating_visits,
        gating_win_prop=s.gating_win_prop, sprt=s.sprt,
        shuffle_min_rows=s.shuffle_min_rows, keep_target_rows=s.keep_target_rows,
        taper_window_scale=s.taper_window_scale, shuffle_processes=1,
        batch_size=s.batch_size, samples_per_epoch=s.samples_per_epoch, max_train_per_data=s.max_train_per_data,
        max_train_bucket_size=s.max_train_samples_per_cycle, lr_scale=s.lr_scale,
        lr_warmup_samples=s.lr_warmup_samples, train_extra=dict(s.train_flags), katago_export=s.katago_export)


# Self-play on one machine: a fixed komi spread, one ko rule, small files and a log line every 30 s.
LOCAL_SELFPLAY = {"komi_stdev": 1.0, "komi_big_stdev_prob": 0.0, "ko_rules": ["positional"],
                  "multi_stone_suicide_prob": 0.0, "max_rows_per_file": 1000, "log_every_seconds": 30.0}


def placement(base: BaseDir | None, s: LoopSettings) -> plan.Placement:
    """Where the loop runs its stages: BASEDIR, loop/*.toml, this machine's device and threads."""
    root = base.root if base is not None else ""
    return plan.Placement(basedir=root, config_dir=layout.loop(root), config_suffix=".toml",
                          devices={stage: s.device for stage in ("selfplay", "train", "gatekeeper")},
                          threads=s.threads, seed=s.seed, poll_seconds=s.poll_seconds,
                          initial_checkpoint=layout.loop_init_model(root))


def selfplay_config(s: LoopSettings) -> dict:
    """The self-play config keys the loop writes to loop/selfplay.toml."""
    return plan.selfplay_config(describe(s), placement(None, s))


def write_stage_configs(base: BaseDir, s: LoopSettings) -> tuple[str, str]:
    """loop/selfplay.toml and loop/gatekeeper.toml; returns their paths."""
    place = placement(base, s)
    paths = []
    for path, values in plan.config_files(describe(s), place).items():
        what = "self-play" if path == place.config_file("selfplay") else "gatekeeper"
        text = f"# {what} config written by `zeroloop loop` from loop/settings.json (rewritten each start)\n"
        base.storage.write_bytes(path, (text + _toml(values)).encode())
        paths.append(path)
    return paths[0], paths[1]


def zeroloop(*args: str) -> list[str]:
    """argv of a zeroloop command run by this interpreter (so a checkout without install works too)."""
    return [sys.executable, "-m", "zeroloop", *args]


def gatekeeper_argv(base: BaseDir, s: LoopSettings, once: bool, seed_offset: int = 0) -> list[str]:
    return zeroloop(*plan.gatekeeper_args(describe(s), placement(base, s), once, seed_offset))


def selfplay_argv(base: BaseDir, s: LoopSettings, max_games: int | None, seed_offset: int = 0) -> list[str]:
    return zeroloop(*plan.selfplay_args(describe(s), placement(base, s), max_games, seed_offset))


def shuffle_argv(base: BaseDir, s: LoopSettings, seed_offset: int = 0) -> list[str]:
    return zeroloop(*plan.shuffle_args(describe(s), placement(base, s), seed_offset))


def shuffle_export_loop_argv(base: BaseDir, s: LoopSettings) -> list[str]:
    return zeroloop(*plan.shuffle_export_loop_args(describe(s), placement(base, s)))


def train_argv(base: BaseDir, s: LoopSettings, synchronous: bool, seed_offset: int = 0) -> list[str]:
    return zeroloop(*plan.train_args(describe(s), placement(base, s), synchronous, seed_offset))


def export_argv(base: BaseDir, s: LoopSettings) -> list[str]:
    return zeroloop(*plan.export_args(describe(s), placement(base, s)))


def report_argv(base: BaseDir) -> list[str]:
    return zeroloop("report", base.root)

