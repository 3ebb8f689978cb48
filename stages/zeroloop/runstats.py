"""What a run has done so far, read from BASEDIR alone.

The loop's progress lines and cycle summaries, the asynchronous mode's
status line and ``zeroloop report`` all ask the same questions, and every
answer is already on disk, written by the stages:

- games: one line per game in ``selfplay/<model>/sgfs/*.sgfs``;
- rows: each tdata file's row count (``<name>.json`` beside it);
- training: the report lines of ``train/<name>/metrics_train.jsonl``;
- models: ``models/`` (accepted, with their model.json);
- gating: the decision records in ``gatekeepersgf/`` (``zeroloop.decisions``).

Files never change once published, so nothing is read twice: self-play
totals come from the settled-directory summaries (``zeroloop.datasummary``)
plus the recent directories, counted files are remembered, training
reports are read from where the last read ended, the accepted models are
listed again only when ``models/`` changes, and gating decisions of a
period are found by their directories' mtimes. A process that asks every
second (the loop's progress bar) pays for what is new, not for the run's
history.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
import time
from dataclasses import dataclass

from zeroloop import datasummary, decisions, layout, modellist
from zeroloop.errors import ModelFileError
from zeroloop.storage import BaseDir, is_tmp

log = logging.getLogger(__name__)

_SAMPLES_IN_NAME = re.compile(r"-s(\d+)-d(\d+)$")  # exported models: <prefix>-<training>-s<samples>-d<rows>


@dataclass(frozen=True)
class DataPoint:
    """One self-play directory: its newest file's time and its count (rows or games)."""

    model: str
    time: float
    count: int
    oldest: float


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
        self._counted: dict[str, dict] = {"tdata": {}, "sgfs": {}}  # kind -> path -> CountedFile
        self._reports: dict[str, tuple[int, list[dict]]] = {}  # jsonl path -> (bytes read, items)
        self._models = modellist.ModelListing(base.storage, base.models)
        self._model_info: dict[str, tuple[int, int] | None] = {}
        self._summaries: dict[str, datasummary.Summaries] = {}
        self._listed: tuple[float, list[tuple[float, str]]] | None = None  # (models/'s mtime, its listing)

    # --- self-play ------------------------------------------------------------------------------

    def _survey(self, kind: datasummary.Kind) -> datasummary.Survey:
        if kind.name not in self._summaries:
            self._summaries[kind.name] = datasummary.Summaries(self.base, kind, cache=self._counted[kind.name])
        return self._summaries[kind.name].survey()

    def data_points(self, kind: str) -> list[DataPoint]:
        """Per self-play directory, oldest first: when its newest file was written, and its rows ("tdata")
        or games ("sgfs")."""
        survey = self._survey(datasummary.TDATA if kind == "tdata" else datasummary.SGFS)
        points = [DataPoint(m, d.newest[0], sum(d.counts.values()), d.oldest if d.oldest is not None else d.newest[0])
                  for m, d in survey.dirs.items() if d.newest is not None]
        return sorted(points, key=lambda p: (p.time, p.model))

    def games(self) -> int:
        return self._survey(datasummary.SGFS).total()

    def rows(self) -> int:
        return self._survey(datasummary.TDATA).total()

    # --- training ---------------------------------------------------------------------------------

    def _read_jsonl(self, path: str) -> list[dict]:
        """The items of an append-only JSONL file, reading only what was appended since the last call."""
        done, items = self._reports.get(path, (0, []))
        try:
            size = self.base.storage.fs.size(path)
        except FileNotFoundError:
            self._reports.pop(path, None)
            return []
        if size < done:  # rewritten (a new run in the same place): start over
            done, items = 0, []
        if size > done:
            with self.base.storage.fs.open(path, "rb") as f:
                f.seek(done)
                data = f.read(size - done)
            end = data.rfind(b"\n") + 1  # a line still being written is read next time
            items = items + [item for item in (_parse(line) for line in data[:end].splitlines()) if item]
            done += end
        self._reports[path] = (done, items)
        return items

    def train_reports(self) -> list[dict]:
        """The report and event lines of every training run's metrics_train.jsonl, in time order."""
        out = []
        for d in self.base.storage.list_subdirs(layout.train_root(self.base.root)):
            name = posixpath.basename(d)
            for item in self._read_jsonl(layout.train_metrics(self.base.root, name)):
                out.append({**item, "training": name})
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

    # --- models and gating ----------------------------------------------------------------------

    def accepted_models(self) -> list[AcceptedModel]:
        """Models in models/, oldest first (samples and rows from an exported model's name, else its model.json).

        Locally from one listing, each model dated by its directory's mtime (when it was published or
        accepted; self-play's exact order by the weights' mtime is ``ModelListing``'s, one stat per model)."""
        out = []
        for mtime, path in self._model_dirs():
            name = posixpath.basename(path)
            if path not in self._model_info:
                self._model_info[path] = self._info(name, path)
            info = self._model_info[path]
            if info is not None:
                out.append(AcceptedModel(name, path, mtime, *info))
        return out

    def _model_dirs(self) -> list[tuple[float, str]]:
        """(mtime, path) of models/'s directories, oldest first; listed again only when models/ changed."""
        storage = self.base.storage
        if not storage.local:
            return self._models.models()
        try:
            changed = storage.mtime(self.base.models)
            if self._listed is not None and self._listed[0] == changed and time.time() - changed >= 2.0:
                return self._listed[1]
            entries = storage.fs.ls(self.base.models, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        listed = modellist.ranked([(float(e["mtime"]), e["name"].rstrip("/")) for e in entries
                                   if e.get("type") == "directory" and not is_tmp(e["name"])])
        self._listed = (changed, listed)
        return listed

    def _info(self, name: str, path: str) -> tuple[int, int] | None:
        m = _SAMPLES_IN_NAME.search(name)
        if m:
            return int(m.group(1)), int(m.group(2))
        try:
            from zeroloop.nn import modelfile  # (torch: only for a model not named by its export)

            info = modelfile.read_info(self.base.storage, path)
        except ModelFileError as e:
            log.debug("skipping %s: %s", path, e)
            return None
        return info.samples_trained, info.data_rows

    def decisions(self) -> list[decisions.DecisionRecord]:
        """Every gating decision, oldest first (records unchanged since the last call come from the cache)."""
        return decisions.read_all_cached(self.base.storage, self.base.gatekeepersgf,
                                         layout.decision_cache(self.base.root))

    def decisions_since(self, since: float) -> list[decisions.DecisionRecord]:
        """The gating decisions taken at or after since (seconds since the epoch), oldest first."""
        return [r for r in decisions.read_since(self.base.storage, self.base.gatekeepersgf, since) if r.time >= since]


def _parse(line: bytes) -> dict | None:
    try:
        item = json.loads(line)
    except ValueError:
        return None  # a line cut short by a kill
    return item if isinstance(item, dict) else None
