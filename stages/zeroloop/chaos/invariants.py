"""What must hold in a BASEDIR however its stages were killed: the checks of the chaos suite.

Each check reads BASEDIR only and returns plain numbers and lists, so the
test suite, ``zeroloop bench chaos`` and a person looking at a damaged run
can use the same code:

- ``check_games``: every game self-play reported finished (a line in an
  ``sgfs`` file, which is published only after the game's rows) has all its
  rows in tdata, and no row (game id, turn) is in tdata twice. Games whose
  rows lie in several files, and games in tdata that no SGF reports (a
  kill between the two writes), are counted but are not faults.
- ``check_files``: every file and directory under its final name reads
  back whole: tdata and their count files, SGFs, shuffles (summary, every
  listed file present with its hash and row count), models and training
  exports (``nn.modelfile`` loads them), checkpoints. Corrupt files that a
  stage moved to quarantine are counted apart.
- ``find_leftovers``: staging entries (``*.tmp``) and shuffle scratch, which
  must be gone after a clean shutdown.
- ``check_training``: no shuffled file in the trainer's no-repeat history
  twice, every (file, batch) of ``metrics_train.jsonl`` once, and the
  sequence of checkpoint states the harness observed never going back
  (``TrainerWatch``).
- ``check_models``: every model in models/ loads, none is also in
  rejectedmodels/, and every gating record agrees with where its model is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
from collections import Counter
from dataclasses import dataclass, field

from zeroloop import decisions, layout, quarantine, rows, shuffled
from zeroloop.errors import UserError
from zeroloop.nn import modelfile
from zeroloop.selfplay.sgfs import parse_game_info
from zeroloop.storage import BaseDir, is_tmp
from zeroloop.train import checkpoint

log = logging.getLogger(__name__)

JSONL = "metrics_train.jsonl"


# --- games ------------------------------------------------------------------------------------


@dataclass
class GameReport:
    reported: int = 0  # games in SGFs
    reported_with_rows: int = 0  # of those, games that recorded training rows
    found: int = 0  # games with rows in tdata
    lost: list[int] = field(default_factory=list)  # reported games with rows missing
    duplicated: list[int] = field(default_factory=list)  # games with a row twice, or reported twice
    split: int = 0  # games whose rows lie in more than one tdata file (not a fault)
    unreported: int = 0  # games in tdata without an SGF line (a kill between the two writes; not a fault)
    rows: int = 0


def _sgf_lines(base: BaseDir) -> list[str]:
    out = []
    for model_dir in base.storage.list_subdirs(base.selfplay):
        model = posixpath.basename(model_dir)
        for path in base.storage.list_files(layout.model_sgfs(base.selfplay, model), layout.SGFS_SUFFIX):
            out.extend(line for line in base.storage.read_bytes(path).decode().splitlines() if line.strip())
    return out


def tdata_files(base: BaseDir) -> list[str]:
    out = []
    for model_dir in base.storage.list_subdirs(base.selfplay):
        model = posixpath.basename(model_dir)
        out.extend(p for p in base.storage.list_files(layout.model_tdata(base.selfplay, model), layout.TDATA_SUFFIX)
                   if rows.is_tdata_name(p))
    return out


def check_games(base: BaseDir) -> GameReport:
    rep = GameReport()
    reported: dict[int, int] = {}
    for line in _sgf_lines(base):
        gid, n = parse_game_info(line)
        if gid in reported:
            rep.duplicated.append(gid)
        reported[gid] = n
    rep.reported = len(reported)
    rep.reported_with_rows = sum(1 for n in reported.values() if n)
    per_game: Counter = Counter()
    files_of: dict[int, set[str]] = {}
    seen_rows: set[tuple[int, int]] = set()
    dup_games: set[int] = set()
    for path in tdata_files(base):
        try:
            a = rows.read(base.storage, path)
        except UserError:
            continue  # counted by check_files
        turns = a["metaNC"][:, rows.META_TURN]
        for gid, turn in zip(a["gameIdN"].tolist(), turns.tolist()):
            key = (gid, turn)
            if key in seen_rows:
                dup_games.add(gid)
            seen_rows.add(key)
            per_game[gid] += 1
            files_of.setdefault(gid, set()).add(path)
        rep.rows += len(turns)
    rep.found = len(per_game)
    rep.split = sum(1 for f in files_of.values() if len(f) > 1)
    rep.unreported = sum(1 for g in per_game if g not in reported)
    for gid, n in reported.items():
        if per_game.get(gid, 0) < n:
            rep.lost.append(gid)
        elif per_game.get(gid, 0) > n:
            dup_games.add(gid)
    rep.duplicated = sorted(set(rep.duplicated) | dup_games)
    return rep


# --- files ------------------------------------------------------------------------------------


@dataclass
class FileReport:
    checked: int = 0
    corrupt: list[str] = field(default_factory=list)  # "path: why"
    quarantined: list[str] = field(default_factory=list)


def _check_shuffle(base: BaseDir, d: str) -> None:
    summary = shuffled.read_summary(base, d)
    for f in summary.files:
        path = posixpath.join(d, f.name)
        data = base.storage.read_bytes(path)
        if hashlib.sha256(data).hexdigest() != f.sha256:
            raise UserError(f"{path}: content does not match its sha256 in {shuffled.SUMMARY_NAME}")
        n = len(rows.from_bytes(data, path, summary.pos_len)["gameIdN"])
        if n != f.num_rows:
            raise UserError(f"{path}: {n} rows, {shuffled.SUMMARY_NAME} says {f.num_rows}")


def _check_tdata(base: BaseDir, path: str) -> None:
    n = len(rows.read(base.storage, path)["gameIdN"])
    count = rows.count_path(path)
    if base.storage.exists(count):
        info = json.loads(base.storage.read_bytes(count))
        if info.get("num_rows") != n:
            raise UserError(f"{count}: says {info.get('num_rows')} rows, the file has {n}")


def check_files(base: BaseDir, shuffles_gone_ok: bool = True) -> FileReport:
    """Read back every final-named file of the run."""
    rep = FileReport()
    st = base.storage
    checks: list[tuple[str, object]] = []
    for path in tdata_files(base):
        checks.append((path, lambda p=path: _check_tdata(base, p)))
    for model_dir in st.list_subdirs(base.selfplay):
        sgfs = layout.model_sgfs(base.selfplay, posixpath.basename(model_dir))
        for path in st.list_files(sgfs, layout.SGFS_SUFFIX):
            checks.append((path, lambda p=path: [parse_game_info(x) for x in st.read_bytes(p).decode().splitlines()
                                                 if x.strip()]))
    for d in shuffled.complete_dirs(base):
        checks.append((d, lambda d=d: _check_shuffle(base, d)))
    for root in (base.models, base.modelstobetested, base.rejectedmodels, base.toexport(False), base.toexport(True)):
        for d in st.list_dirs(root):
            checks.append((d, lambda d=d: modelfile.load_model(st, d, "cpu")))
    for trainer in st.list_subdirs(layout.train_root(base.root)):
        for name in [checkpoint.NAME] + [checkpoint.prev_name(i) for i in range(checkpoint.NUM_PREV)]:
            path = posixpath.join(trainer, name)
            if st.exists(path):
                checks.append((path, lambda p=path: checkpoint.from_bytes(st.read_bytes(p), p)))
    for path, check in checks:
        rep.checked += 1
        try:
            check()  # type: ignore[operator]
        except FileNotFoundError:
            if not (shuffles_gone_ok and path.startswith(base.shuffleddata)):
                rep.corrupt.append(f"{path}: vanished while being read")
        except (UserError, OSError, ValueError, KeyError) as e:
            if path.startswith(base.shuffleddata) and not st.exists(path):
                continue  # removed by cleanup while we read it
            rep.corrupt.append(f"{path}: {e}")
    rep.quarantined = quarantine.list_quarantined(base)
    return rep


def find_leftovers(base: BaseDir) -> list[str]:
    """Staging entries and shuffle scratch anywhere under BASEDIR (none after a clean shutdown)."""
    out = []
    for folder, dirs, names in os.walk(base.root):
        for name in dirs + names:
            if is_tmp(name):
                out.append(os.path.join(folder, name))
    scratch = base.shufflescratch
    if os.path.isdir(scratch):
        out.extend(os.path.join(scratch, n) for n in os.listdir(scratch))
    return sorted(out)


# --- training ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainerPoint:
    """What a checkpoint says about training's progress."""

    samples: int
    data_rows: int  # the bucket's fill point (total data rows seen)
    bucket_credit: float  # bucket level plus every epoch already taken from it: only fills add to it
    epochs: int


def trainer_point(payload: dict, samples_per_epoch: int) -> TrainerPoint:
    st = json.loads(payload["train_state"])
    taken = st["epochs_done"] + (1 if st.get("epoch") else 0)
    at_row = st["bucket"].get("at_row") or 0
    return TrainerPoint(int(st["global_step_samples"]), int(at_row),
                        float(st["bucket"]["level"]) + taken * samples_per_epoch, int(st["epochs_done"]))


class TrainerWatch:
    """Follows train/<name>/checkpoint.ckpt while the run goes on and records any step backwards."""

    def __init__(self, base: BaseDir, name: str, samples_per_epoch: int):
        self.path = posixpath.join(base.train(name), checkpoint.NAME)
        self.storage = base.storage
        self.samples_per_epoch = samples_per_epoch
        self.points: list[TrainerPoint] = []
        self.backwards: list[str] = []
        self._seen: tuple[float, int] | None = None

    def poll(self) -> TrainerPoint | None:
        try:
            st = os.stat(self.path)
            key = (st.st_mtime, st.st_ino)
            if key == self._seen:
                return None
            payload = checkpoint.from_bytes(self.storage.read_bytes(self.path), self.path)
        except (FileNotFoundError, UserError):
            return None  # not yet written, or replaced while we read it: next poll
        self._seen = key
        point = trainer_point(payload, self.samples_per_epoch)
        if self.points:
            last = self.points[-1]
            for what in ("samples", "data_rows", "bucket_credit"):
                if getattr(point, what) < getattr(last, what) - 1e-6:
                    self.backwards.append(f"{what} went from {getattr(last, what)} to {getattr(point, what)}")
        self.points.append(point)
        return point


@dataclass
class TrainingReport:
    history: int = 0
    repeated_files: list[str] = field(default_factory=list)  # shuffled files trained twice (no-repeat)
    repeated_batches: int = 0  # (file, batch) reported twice in metrics_train.jsonl
    backwards: list[str] = field(default_factory=list)
    samples: int = 0


def check_training(base: BaseDir, name: str, watch: TrainerWatch | None = None) -> TrainingReport:
    rep = TrainingReport()
    found = checkpoint.load_latest(base.storage, base.train(name))
    if found is not None:
        state = json.loads(found[0]["train_state"])
        history = state["plan"]["history"]
        rep.history = len(history)
        rep.repeated_files = sorted(k for k, c in Counter(history).items() if c > 1)
        rep.samples = int(state["global_step_samples"])
    jsonl = posixpath.join(base.train(name), JSONL)
    if os.path.exists(jsonl):
        batches = Counter()
        for line in open(jsonl, "rb").read().decode(errors="replace").splitlines():
            try:
                d = json.loads(line)
            except ValueError:
                continue  # a partial last line of a killed trainer (cut back on its restart)
            if "file" in d and "batch" in d:
                batches[(d["file"], d["batch"])] += 1
        rep.repeated_batches = sum(1 for c in batches.values() if c > 1)
    if watch is not None:
        rep.backwards = list(watch.backwards)
    return rep


# --- models -----------------------------------------------------------------------------------


@dataclass
class ModelReport:
    accepted: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    both: list[str] = field(default_factory=list)  # in models/ and rejectedmodels/
    unloadable: list[str] = field(default_factory=list)
    record_mismatch: list[str] = field(default_factory=list)  # a gating record that disagrees with the dirs


def check_models(base: BaseDir) -> ModelReport:
    st = base.storage
    rep = ModelReport()
    rep.accepted = sorted(posixpath.basename(d) for d in st.list_dirs(base.models))
    rep.rejected = sorted(posixpath.basename(d) for d in st.list_dirs(base.rejectedmodels))
    rep.both = sorted(set(rep.accepted) & set(rep.rejected))
    for d in st.list_dirs(base.models):
        try:
            modelfile.load_model(st, d, "cpu")
        except UserError as e:
            rep.unloadable.append(f"{d}: {e}")
    for r in decisions.read_all(st, base.gatekeepersgf):
        where = rep.accepted if r.decision == decisions.ACCEPTED else rep.rejected
        other = rep.rejected if r.decision == decisions.ACCEPTED else rep.accepted
        if r.candidate in other or (r.candidate not in where and not st.exists(
                posixpath.join(base.modelstobetested, r.candidate))):
            rep.record_mismatch.append(f"{r.candidate}: record says {r.decision}")
    return rep

