"""The BASEDIR layout: every directory and file of a run, as a pure function of BASEDIR.

As Minigo's ``fsdb.py`` does for its runs, this module is the one place that
names a run's paths; nothing else joins them by hand. The directories are
KataGo's (``selfplay/<model>/tdata``, ``shuffleddata/``, ``train/<name>/``,
``torchmodels_toexport/``, ``modelstobetested/``, ``models/``,
``rejectedmodels/``, ``gatekeepersgf/``) plus zeroloop's own:
``quarantine/`` (corrupt inputs, each with a note), ``summaries/`` (what
settled self-play directories hold, so readers need not list them again),
``logs/`` (one log per
stage the local loop starts), ``loop/`` (the local loop's settings, state,
cycle records and first model), ``ladder/``, ``report/`` and ``cache/`` (the
compiled code a run's pods share).

Pure: no I/O and no imports beyond the standard library, so the operator
(which never mounts a run's volume) and the run plan use it too. BASEDIR is
a POSIX path, local or the path part of an fsspec URL
(``storage.open_location`` turns a URL into a filesystem and such a path).
Self-play and the gatekeeper are given their directories rather than
BASEDIR, so the per-model self-play paths are also functions of a
self-play directory (``model_tdata(selfplay_dir, model)`` and friends).
"""

from __future__ import annotations

import posixpath

_join = posixpath.join

# Directory names, as KataGo's pipeline spells them.
SELFPLAY = "selfplay"
TDATA = "tdata"
SGFS = "sgfs"
INPROGRESS = "inprogress"
SHUFFLEDDATA = "shuffleddata"
SHUFFLESCRATCH = "shufflescratch"
TRAIN = "train"
TOEXPORT = "torchmodels_toexport"
TOEXPORT_EXTRA = "torchmodels_toexport_extra"
MODELS = "models"
MODELS_EXTRA = "models_extra"
MODELSTOBETESTED = "modelstobetested"
REJECTEDMODELS = "rejectedmodels"
GATEKEEPERSGF = "gatekeepersgf"
# zeroloop's own.
QUARANTINE = "quarantine"
SUMMARIES = "summaries"
LOGS = "logs"
LOOP = "loop"
LADDER = "ladder"
REPORT = "report"
CACHE = "cache"

# A model directory's two files (zeroloop.nn.modelfile defines what they hold).
MODEL_WEIGHTS = "model.safetensors"
MODEL_INFO = "model.json"
MODEL_KATAGO = "model.bin.gz"  # optional: the net in KataGo's format (zeroloop.katago.netexport)

# File suffixes of self-play's output.
TRAIN_METRICS = "metrics_train.jsonl"
TDATA_SUFFIX = ".npz"
SGFS_SUFFIX = ".sgfs"


# --- self-play ------------------------------------------------------------------------------


def selfplay(base: str) -> str:
    return _join(base, SELFPLAY)


def model_selfplay(selfplay_dir: str, model: str) -> str:
    """selfplay/<model>/: everything played with one model."""
    return _join(selfplay_dir, model)


def model_tdata(selfplay_dir: str, model: str) -> str:
    """selfplay/<model>/tdata/: training rows, whole games per file."""
    return _join(selfplay_dir, model, TDATA)


def model_sgfs(selfplay_dir: str, model: str) -> str:
    """selfplay/<model>/sgfs/: the games as SGF, one per line, published after their rows."""
    return _join(selfplay_dir, model, SGFS)


def model_inprogress(selfplay_dir: str, model: str) -> str:
    """selfplay/<model>/inprogress/: games in progress saved at a stop, adopted by the next process."""
    return _join(selfplay_dir, model, INPROGRESS)


def tdata_file(selfplay_dir: str, model: str, name: str) -> str:
    return _join(model_tdata(selfplay_dir, model), name + TDATA_SUFFIX)


def sgfs_file(selfplay_dir: str, model: str, name: str) -> str:
    return _join(model_sgfs(selfplay_dir, model), name + SGFS_SUFFIX)


def model_data(selfplay_dir: str, model: str, kind: str) -> str:
    """selfplay/<model>/<kind>/ for kind "tdata" or "sgfs"."""
    if kind not in (TDATA, SGFS):
        raise ValueError(f"self-play data is {TDATA} or {SGFS}, not {kind!r}")
    return _join(selfplay_dir, model, kind)


def tdata(base: str, model: str) -> str:
    return model_tdata(selfplay(base), model)


def sgfs(base: str, model: str) -> str:
    return model_sgfs(selfplay(base), model)


def inprogress(base: str, model: str) -> str:
    return model_inprogress(selfplay(base), model)


# --- shuffle, train, export -------------------------------------------------------------------


def shuffleddata(base: str) -> str:
    return _join(base, SHUFFLEDDATA)


def shuffle_dir(base: str, name: str) -> str:
    """shuffleddata/<stamp>/: one published shuffle."""
    return _join(base, SHUFFLEDDATA, name)


def shufflescratch(base: str) -> str:
    return _join(base, SHUFFLESCRATCH)


def train_root(base: str) -> str:
    """train/: one directory per training name."""
    return _join(base, TRAIN)


def train(base: str, name: str) -> str:
    """train/<name>/: the trainer's checkpoints, metrics and marks."""
    return _join(base, TRAIN, name)


def train_metrics(base: str, name: str) -> str:
    """train/<name>/metrics_train.jsonl: one line per training report (the trainer appends)."""
    return _join(base, TRAIN, name, TRAIN_METRICS)


def train_stop(base: str, name: str) -> str:
    """Why the trainer last stopped on its own (``exits.StopRecord``)."""
    return _join(base, TRAIN, name, "stop.json")


def toexport(base: str, extra: bool = False) -> str:
    return _join(base, TOEXPORT_EXTRA if extra else TOEXPORT)


# --- models and gating ----------------------------------------------------------------------


def models(base: str) -> str:
    return _join(base, MODELS)


def models_extra(base: str) -> str:
    return _join(base, MODELS_EXTRA)


def modelstobetested(base: str) -> str:
    return _join(base, MODELSTOBETESTED)


def rejectedmodels(base: str) -> str:
    return _join(base, REJECTEDMODELS)


def gatekeepersgf(base: str) -> str:
    return _join(base, GATEKEEPERSGF)


def model_weights(model_dir: str) -> str:
    return _join(model_dir, MODEL_WEIGHTS)


def model_info(model_dir: str) -> str:
    return _join(model_dir, MODEL_INFO)


def model_katago(model_dir: str) -> str:
    return _join(model_dir, MODEL_KATAGO)


# --- zeroloop's own -----------------------------------------------------------------------------


def summaries(base: str, kind: str) -> str:
    """summaries/<kind>/: per-model summaries of settled self-play data (``zeroloop.datasummary``)."""
    return _join(base, SUMMARIES, kind)


def summary_index(base: str, kind: str) -> str:
    """summaries/<kind>.json: the index of settled directories (sealed segments' totals, the open segment)."""
    return _join(base, SUMMARIES, f"{kind}.json")


def summary_segments(base: str, kind: str) -> str:
    """summaries/<kind>.segments/: sealed segments of the index, each named by its content's SHA-256."""
    return _join(base, SUMMARIES, f"{kind}.segments")


def train_summary(base: str, name: str) -> str:
    """summaries/train/<name>.json: the scalars read so far of a training run's metrics (``zeroloop.trainlog``)."""
    return _join(base, SUMMARIES, TRAIN, f"{name}.json")


def train_series(base: str, name: str) -> str:
    """summaries/train/<name>.series.json: the downsampled loss series of a training run (``zeroloop.trainlog``)."""
    return _join(base, SUMMARIES, TRAIN, f"{name}.series.json")


def report_digest(base: str, name: str) -> str:
    """summaries/report/<name>.json: the digest of settled models or gating records (``zeroloop.runhistory``)."""
    return _join(base, SUMMARIES, "report", f"{name}.json")


def quarantine(base: str) -> str:
    """quarantine/: corrupt inputs moved aside, each with a ``.why`` note."""
    return _join(base, QUARANTINE)


def logs(base: str) -> str:
    return _join(base, LOGS)


def log(base: str, stage: str) -> str:
    """logs/<stage>.log: the output of each stage the local loop starts."""
    return _join(base, LOGS, f"{stage}.log")


def loop(base: str) -> str:
    return _join(base, LOOP)


def loop_settings(base: str) -> str:
    """loop/settings.json: the run's settings, kept across reruns."""
    return _join(base, LOOP, "settings.json")


def loop_state(base: str) -> str:
    """loop/state.json: the cycle and step in progress."""
    return _join(base, LOOP, "state.json")


def loop_lock(base: str) -> str:
    """loop/lock: held by the one loop running on this BASEDIR."""
    return _join(base, LOOP, "lock")


def loop_running(base: str) -> str:
    """loop/running.json: the stage process the loop is running."""
    return _join(base, LOOP, "running.json")


def loop_cycles(base: str) -> str:
    """loop/cycles.jsonl: one summary per finished cycle."""
    return _join(base, LOOP, "cycles.jsonl")


def loop_init_model(base: str) -> str:
    """loop/init-model: the random-weight net training starts from, the run's first model."""
    return _join(base, LOOP, "init-model")


def loop_stage_config(base: str, stage: str) -> str:
    """loop/<stage>.toml: the config file the loop writes for self-play or the gatekeeper."""
    return _join(base, LOOP, f"{stage}.toml")


def ladder(base: str) -> str:
    return _join(base, LADDER)


def ladder_results(base: str) -> str:
    """ladder/ladder.json: every game result the ladder has played."""
    return _join(base, LADDER, "ladder.json")


def ladder_sgf(base: str, pairing: str) -> str:
    """ladder/sgf/<pairing>/: the games of one ladder pairing."""
    return _join(base, LADDER, "sgf", pairing)


def report(base: str) -> str:
    return _join(base, REPORT)


def report_file(base: str) -> str:
    """report/report.md, with its plots beside it."""
    return _join(base, REPORT, "report.md")


def numba_cache(base: str) -> str:
    """cache/numba/: numba's compiled functions, shared by a run's pods (NUMBA_CACHE_DIR).

    On the run's volume, not a pod's scratch: a new pod (a rollout, a preempted node) then loads
    the search instead of compiling it again (about a minute of CPU). numba keys each entry by
    Python version, source stamp and CPU, and writes every file by atomic rename, so pods on
    different nodes share the directory safely.
    """
    return _join(base, CACHE, "numba")


def measure(base: str) -> str:
    """measure/: tools/measure_learning.py's matches and result."""
    return _join(base, "measure")
