"""What a run has done so far, read from BASEDIR alone.

The loop's progress lines and cycle summaries, the asynchronous mode's
status line and ``zeroloop report`` all ask the same questions, and every
answer is already on disk, written by the stages:

- games: one line per game in ``selfplay/<model>/sgfs/*.sgfs``;
- rows: each tdata file's row count (``<name>.json`` beside it);
- training: the report lines of ``train/<name>/metrics_train.jsonl``;
- models: ``models/`` (accepted, with their model.json);
- gating: the decision records in ``gatekeepersgf/`` (``zeroloop.decisions``).

Files never change once published, so ``RunStats`` remembers what it has
read and a poll every second costs a directory listing.
"""

from __future__ import annotations

import json
import logging
import posixpath
from dataclasses import dataclass

from zeroloop import decisions, layout, modellist, rows
from zeroloop.errors import DataFileError, ModelFileError
from zeroloop.nn import modelfile
from zeroloop.storage import BaseDir
from zeroloop.train.progress import JSONL_NAME

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataFile:
    model: str
    path: str
    count: int  # rows, or games for an .sgfs file
    mtime: float


@dataclass(frozen=True)
class AcceptedModel:
    name: str
    path: str
    mtime: float  # of the weights: the order self-play and the gatekeeper use
    samples_trained: int
    data_rows: int


class RunStats:
    def __init__(self, base: BaseDir):
        self.base = base
        self._counts: dict[str, DataFile] = {}

    def _files(self, where, suffix: str) -> list[DataFile]:
        """The files with suffix in where(selfplay_dir, model) of every model."""
        storage = self.base.storage
        out = []
        for model_dir in storage.list_subdirs(self.base.selfplay):
            model = posixpath.basename(model_dir)
            for path in storage.list_files(where(self.base.selfplay, model), suffix):
                if ".tmp" in posixpath.basename(path):
                    continue
                known = self._counts.get(path)
                if known is None:
                    try:
                        known = DataFile(model, path, self._count(path, suffix), storage.mtime(path))
                    except (OSError, DataFileError) as e:
                        log.debug("skipping %s: %s", path, e)
                        continue
                    self._counts[path] = known
                out.append(known)
        return sorted(out, key=lambda f: (f.mtime, f.path))

    def _count(self, path: str, suffix: str) -> int:
        if suffix == layout.TDATA_SUFFIX:
            return rows.count_rows(self.base.storage, path)
        data = self.base.storage.read_bytes(path)
        return sum(1 for line in data.splitlines() if line.strip())

    def tdata_files(self) -> list[DataFile]:
        """Every published tdata file with its rows, oldest first."""
        return self._files(layout.model_tdata, layout.TDATA_SUFFIX)

    def sgfs_files(self) -> list[DataFile]:
        """Every self-play .sgfs file with its games, oldest first."""
        return self._files(layout.model_sgfs, layout.SGFS_SUFFIX)

    def games(self) -> int:
        return sum(f.count for f in self.sgfs_files())

    def rows(self) -> int:
        return sum(f.count for f in self.tdata_files())

    def train_reports(self) -> list[dict]:
        """The report and event lines of every training run's metrics_train.jsonl, in time order."""
        out = []
        storage = self.base.storage
        for d in storage.list_subdirs(layout.train_root(self.base.root)):
            path = posixpath.join(d, JSONL_NAME)
            if not storage.exists(path):
                continue
            for line in storage.read_bytes(path).splitlines():
                try:
                    item = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a kill
                if isinstance(item, dict):
                    item["training"] = posixpath.basename(d)
                    out.append(item)
        return sorted(out, key=lambda d: d.get("time", 0.0))

    def last_losses(self) -> dict[str, float]:
        """The loss terms of the last training report (empty before any)."""
        for item in reversed(self.train_reports()):
            if "event" not in item and any(k.startswith("loss_") for k in item):
                return {k[len("loss_"):]: float(v) for k, v in item.items() if k.startswith("loss_")}
        return {}

    def samples_trained(self) -> int:
        reports = [r for r in self.train_reports() if "samples" in r]
        return max((int(r["samples"]) for r in reports), default=0)

    def accepted_models(self) -> list[AcceptedModel]:
        """Models in models/, oldest first."""
        out = []
        for mtime, path in modellist.list_models(self.base.storage, self.base.models):
            try:
                info = modelfile.read_info(self.base.storage, path)
            except ModelFileError as e:
                log.debug("skipping %s: %s", path, e)
                continue
            out.append(AcceptedModel(posixpath.basename(path), path, mtime, info.samples_trained, info.data_rows))
        return out

    def decisions(self) -> list[decisions.DecisionRecord]:
        return decisions.read_all(self.base.storage, self.base.gatekeepersgf)
