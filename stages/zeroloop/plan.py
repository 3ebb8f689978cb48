"""The run plan: from a run's description to what each stage is started with.

One pure function per stage turns a ``RunDescription`` (what the run is:
board, net, search, gating, window, training rate) and a ``Placement``
(where it runs: BASEDIR, config files, devices, ports, threads, seeds,
polling) into that stage's ``zeroloop`` arguments, and into the config
files self-play and the gatekeeper read. The local loop
(``zeroloop.loop.settings.describe``), the operator
(``zeroloop_operator.stageconfig.describe``), the chaos harness, the
benchmarks and the tools all start stages through here, so a run started
on one machine and on a cluster cannot drift apart: a test renders both
and compares them, argument by argument.

As Minigo keeps its flags files, the plan is data in, argument lists out.
It imports nothing beyond the standard library and ``zeroloop.layout``
(no torch, numba or numpy: the operator image has none of them), and the
argument lists start with the stage's command name (``["train", BASEDIR,
...]``); the caller puts its own launcher in front (``python -m zeroloop``
on one machine, the image's entrypoint on a cluster).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from zeroloop import layout

# Stages of the synchronous loop, in the order a cycle runs them, and of the asynchronous set.
SYNC_STAGES = ("gatekeeper", "selfplay", "shuffle", "train", "export")
ASYNC_STAGES = ("selfplay", "shuffle-export-loop", "train", "gatekeeper")
CHECKPOINT_INTERVAL_S = 120  # the trainer's checkpoints: at most two minutes of training lost to a kill
GATING_GAMES_AT_ONCE = 32  # games a gating match plays at once, at most
# train flags that train_args sets from the run and its placement: a run's further flags (train_extra) cannot
TRAIN_FLAGS_SET = frozenset({
    "name", "model-kind", "features", "batch-size", "export-mode", "samples-per-epoch",
    "max-train-bucket-per-new-data", "max-train-bucket-size", "lr-scale", "lr-warmup-samples", "swa-period-samples",
    "initial-checkpoint",
    "no-repeat-files", "print-every-batches", "checkpoint-interval-seconds", "stop-when-train-bucket-limited",
    "quit-if-no-data", "data-poll-seconds", "device", "threads", "seed", "metrics-port", "log-format",
})


@dataclass(frozen=True)
class RunDescription:
    """What a run is, the same wherever it runs. Each field is a knob of the run, not of a machine."""

    name_prefix: str  # models are <name_prefix>-<training name>-s<samples>-d<rows>
    model_kind: str = "b6c96"  # the net (zeroloop.nn.configs); also the training name
    features: str = "zeroloop"  # the net's inputs (zeroloop.features: zeroloop or katago-v7)
    board_sizes: tuple[int, ...] = (19,)
    board_size_weights: tuple[float, ...] | None = None  # None: equal weights
    komi: float = 7.5
    # self-play: a full search (recorded as a row) with probability full_search_prob, else a cheap one
    visits: int = 600
    cheap_visits: int = 100
    full_search_prob: float = 0.25
    games_at_once: int = 256  # the net's batch size
    selfplay_extra: dict = field(default_factory=dict)  # more self-play config keys (zeroloop selfplay --help-config)
    # gating
    gating: bool = True
    gating_games: int = 200  # games per match at most
    gating_visits: int = 150
    gating_win_prop: float = 0.5  # share of points a candidate needs (ties pass)
    sprt: bool = False
    sprt_elo0: float = 0.0
    sprt_elo1: float = 35.0
    sprt_alpha: float = 0.05
    sprt_beta: float = 0.05
    # shuffle (KataGo's window: shuffle.py's flags)
    shuffle_min_rows: int = 250_000
    shuffle_max_rows: int | None = None
    keep_target_rows: int = 1_200_000
    expand_window_per_row: float = 0.4
    taper_window_exponent: float = 0.65
    taper_window_scale: int | None = None
    shuffle_processes: int = 4
    # train
    batch_size: int = 256
    samples_per_epoch: int = 1_000_000  # one export per epoch
    max_train_per_data: float = 4.0  # the train bucket: samples per new data row
    max_train_bucket_size: int = 5_000_000
    lr_scale: float = 1.0
    lr_warmup_samples: int = 10_000  # KataGo's 2M fits runs of hundreds of millions of samples
    train_extra: dict = field(default_factory=dict)  # more train flags: name (no dashes) -> value (True: a switch)
    # export
    katago_export: bool = False  # also write each model in KataGo's format

    @property
    def training_name(self) -> str:
        return self.model_kind

    @property
    def weights(self) -> list[float]:
        return [float(w) for w in (self.board_size_weights or [1.0] * len(self.board_sizes))]

    def replace(self, **changes) -> RunDescription:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Placement:
    """Where and how a run's stages run: nothing here changes what the run learns."""

    basedir: str
    config_dir: str  # where the self-play and gatekeeper config files are
    config_suffix: str = ".toml"  # their format (the stages read TOML or YAML)
    devices: dict = field(default_factory=dict)  # stage -> --device (absent: the stage's default)
    threads: int | None = None  # --threads of every stage
    seed: int | None = None  # the run's seed; each stage gets its own, offset from it
    poll_seconds: float | None = None  # how often stages look for new models and data (None: their defaults)
    initial_checkpoint: str | None = None  # the net training starts from (None: a fresh random one)
    metrics_port: int | None = None
    log_format: str | None = None
    precision: dict = field(default_factory=dict)  # stage -> nn_precision config key (absent: the default)
    stop_search_seconds: float | None = None  # self-play's inprogress_stop_search_seconds

    def config_file(self, stage: str) -> str:
        return f"{self.config_dir}/{stage}{self.config_suffix}"


def _num(x: float | int) -> str:
    return repr(float(x)) if isinstance(x, float) else str(x)


def _placed(stage: str, place: Placement, seed_offset: int = 0, device: bool = True, metrics: bool = True
            ) -> list[str]:
    """The flags every stage takes from its placement."""
    out: list[str] = []
    if device and stage in place.devices:
        out += ["--device", place.devices[stage]]
    if place.threads is not None:
        out += ["--threads", str(place.threads)]
    if place.seed is not None:
        out += ["--seed", str(place.seed + seed_offset)]
    if metrics and place.metrics_port is not None:
        out += ["--metrics-port", str(place.metrics_port)]
    if place.log_format is not None:
        out += ["--log-format", place.log_format]
    return out


# --- config files -------------------------------------------------------------------------------


def selfplay_config(run: RunDescription, place: Placement) -> dict:
    """Self-play's config keys (zeroloop.selfplay.config)."""
    out: dict = {
        "num_games": run.games_at_once, "board_sizes": list(run.board_sizes), "board_size_weights": run.weights,
        # rows are padded to the largest board: the trainer's net size
        "data_board_len": max(run.board_sizes), "komi_mean": float(run.komi),
        "max_visits": run.visits, "cheap_visits": run.cheap_visits, "full_search_prob": float(run.full_search_prob),
    }
    if place.poll_seconds is not None:
        out["model_poll_seconds"] = float(place.poll_seconds)
    if place.stop_search_seconds is not None:
        out["inprogress_stop_search_seconds"] = place.stop_search_seconds
    if "selfplay" in place.precision:
        out["nn_precision"] = place.precision["selfplay"]
    if run.features != "zeroloop":
        out["features"] = run.features
    out.update(run.selfplay_extra)
    return out


def gatekeeper_config(run: RunDescription, place: Placement) -> dict:
    """The gatekeeper's config keys (zeroloop.gatekeeper.config): match size, search, SPRT."""
    out: dict = {
        "board_sizes": list(run.board_sizes), "board_size_weights": run.weights, "komi_mean": float(run.komi),
        "max_visits": run.gating_visits, "num_games_per_gating": run.gating_games,
        "num_games_at_once": min(run.gating_games, GATING_GAMES_AT_ONCE), "sprt": run.sprt,
        "sprt_elo0": float(run.sprt_elo0), "sprt_elo1": float(run.sprt_elo1),
        "sprt_alpha": float(run.sprt_alpha), "sprt_beta": float(run.sprt_beta),
    }
    if place.poll_seconds is not None:
        out["poll_seconds"] = float(place.poll_seconds)
    if "gatekeeper" in place.precision:
        out["nn_precision"] = place.precision["gatekeeper"]
    return out


def config_files(run: RunDescription, place: Placement) -> dict[str, dict]:
    """Path -> keys of every config file the stages read."""
    return {place.config_file("selfplay"): selfplay_config(run, place),
            place.config_file("gatekeeper"): gatekeeper_config(run, place)}


# --- stage arguments ------------------------------------------------------------------------------


def selfplay_args(run: RunDescription, place: Placement, max_games: int | None = None,
                  seed_offset: int = 0) -> list[str]:
    base = place.basedir
    args = ["selfplay", "--output-dir", layout.selfplay(base), "--models-dir", layout.models(base),
            "--config", place.config_file("selfplay")]
    if max_games is not None:
        args += ["--max-games-total", str(max_games)]
    return args + _placed("selfplay", place, seed_offset)


def gatekeeper_args(run: RunDescription, place: Placement, once: bool = False, seed_offset: int = 0) -> list[str]:
    base = place.basedir
    args = ["gatekeeper", "--test-models-dir", layout.modelstobetested(base),
            "--accepted-models-dir", layout.models(base), "--rejected-models-dir", layout.rejectedmodels(base),
            "--sgf-output-dir", layout.gatekeepersgf(base), "--selfplay-dir", layout.selfplay(base),
            "--config", place.config_file("gatekeeper"),
            "--required-candidate-win-prop", _num(float(run.gating_win_prop))]
    if once:
        args.append("--quit-if-no-nets-to-test")
    return args + _placed("gatekeeper", place, seed_offset)


def shuffle_window_args(run: RunDescription) -> list[str]:
    """KataGo's window and the output files: the same for a one-shot shuffle and the shuffle-export loop."""
    args = ["--min-rows", str(run.shuffle_min_rows)]
    if run.shuffle_max_rows is not None:
        args += ["--max-rows", str(run.shuffle_max_rows)]
    args += ["--keep-target-rows", str(run.keep_target_rows),
             "--expand-window-per-row", _num(float(run.expand_window_per_row)),
             "--taper-window-exponent", _num(float(run.taper_window_exponent))]
    if run.taper_window_scale is not None:
        args += ["--taper-window-scale", str(run.taper_window_scale)]
    # files of at most a quarter epoch, so --no-repeat-files can fill an epoch from a fresh shuffle
    rows_per_file = max(run.batch_size, min(20_000, run.samples_per_epoch // 4))
    return args + ["--batch-size", str(run.batch_size), "--approx-rows-per-out-file", str(rows_per_file),
                   "--num-processes", str(run.shuffle_processes)]


def shuffle_args(run: RunDescription, place: Placement, seed_offset: int = 0) -> list[str]:
    """One shuffle (the synchronous loop): no trainer reads during it, so old shuffles can go after a minute."""
    return (["shuffle", place.basedir, *shuffle_window_args(run), "--cleanup-grace-seconds", "60"]
            + _placed("shuffle", place, seed_offset, device=False))


def shuffle_export_loop_args(run: RunDescription, place: Placement) -> list[str]:
    args = ["shuffle-export-loop", place.basedir, "--name-prefix", run.name_prefix, *shuffle_window_args(run),
            "--min-new-rows", str(max(1, run.shuffle_min_rows // 10))]
    if place.poll_seconds is not None:
        args += ["--shuffle-interval-seconds", _num(float(place.poll_seconds)),
                 "--export-poll-seconds", _num(float(place.poll_seconds))]
    if run.gating:
        args.append("--gating")
    if run.katago_export:
        args.append("--katago")
    return args + _placed("shuffle-export-loop", place, device=False)


def train_args(run: RunDescription, place: Placement, synchronous: bool, seed_offset: int = 0) -> list[str]:
    """The trainer: KataGo's train bucket, warm-up, stochastic weight average and checkpoints."""
    args = ["train", place.basedir, "--name", run.training_name, "--model-kind", run.model_kind,
            "--batch-size", str(run.batch_size), "--export-mode", "main",
            "--samples-per-epoch", str(run.samples_per_epoch),
            "--max-train-bucket-per-new-data", _num(float(run.max_train_per_data)),
            "--max-train-bucket-size", str(run.max_train_bucket_size),
            "--lr-scale", _num(float(run.lr_scale)), "--lr-warmup-samples", str(run.lr_warmup_samples),
            "--swa-period-samples", str(max(run.batch_size, run.samples_per_epoch // 4)),
            "--no-repeat-files",
            "--print-every-batches", str(max(1, run.samples_per_epoch // run.batch_size // 4)),
            "--checkpoint-interval-seconds", str(CHECKPOINT_INTERVAL_S)]
    if run.features != "zeroloop":
        args += ["--features", run.features]
    for name, value in run.train_extra.items():
        args += [f"--{name}"] if value is True else [f"--{name}", str(value)]
    if place.initial_checkpoint is not None:
        args += ["--initial-checkpoint", place.initial_checkpoint]
    if synchronous:
        args += ["--stop-when-train-bucket-limited", "--quit-if-no-data"]
    elif place.poll_seconds is not None:
        args += ["--data-poll-seconds", _num(float(place.poll_seconds))]
    return args + _placed("train", place, seed_offset)


def export_args(run: RunDescription, place: Placement) -> list[str]:
    """One export pass (the synchronous loop)."""
    args = ["export", place.basedir, "--name-prefix", run.name_prefix]
    return args + (["--gating"] if run.gating else []) + (["--katago"] if run.katago_export else [])


def async_stages(run: RunDescription, place: Placement) -> dict[str, list[str]]:
    """Every stage of the asynchronous set (as the operator and `zeroloop loop --async` run them)."""
    out = {"selfplay": selfplay_args(run, place), "shuffle-export-loop": shuffle_export_loop_args(run, place),
           "train": train_args(run, place, synchronous=False)}
    if run.gating:
        out["gatekeeper"] = gatekeeper_args(run, place)
    return out
