"""What a run has done so far, read from BASEDIR alone.

The loop's progress lines and cycle summaries, the asynchronous mode's
status line and ``zeroloop report`` all ask the same questions, and every
answer is already on disk, written by the stages:

- games: one line per game in ``selfplay/<model>/sgfs/*.sgfs``;
- rows: each tdata file's row count (``<name>.json`` beside it);
- training: the report lines of ``train/<name>/metrics_train.jsonl``
  (``zeroloop.trainlog``: a bounded summary, persisted; the samples and the
  last losses from a small file of their own, the loss series apart);
- models: ``models/`` (accepted, with their model.json);
- gating: the decision records in ``gatekeepersgf/`` (``zeroloop.decisions``);
- for the report, every model and decision in bounded memory: digests of
  the settled ones (``zeroloop.runhistory``).

Files never change once published, so nothing is read twice: self-play
totals come from the settled-directory summaries (``zeroloop.datasummary``)
plus the recent directories, counted files are remembered, training
reports are read from where the last read ended (in this process or,
through the persisted summary, an earlier one), the accepted models are
listed again only when ``models/`` changes, and gating decisions of a
period are found by their directories' mtimes. A process that asks every
second (the loop's progress bar) pays for what is new, not for the run's
history.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath
import re
import time
from dataclasses import dataclass

from zeroloop import datasummary, decisions, layout, modellist, runhistory, trainlog
from zeroloop.errors import ModelFileError
from zeroloop.storage import BaseDir, is_tmp

log = logging.getLogger(__name__)

_SAMPLES_IN_NAME = re.compile(r"-s(\d+)-d(\d+)$")  # exported models: <prefix>-<training>-s<samples>-d<rows>


@dataclass(frozen=True)
class DataPoint:
    """Self-play directories (one, or a sealed segment's): their newest file's time, count (rows or games)
    and oldest file's time."""

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


@dataclass(frozen=True)
class ModelTally:
    """How many models models/ holds, and the newest (the one self-play uses)."""

    count: int
    newest: AcceptedModel | None


class RunStats:
    def __init__(self, base: BaseDir):
        self.base = base
        self._counted: dict[str, dict] = {"tdata": {}, "sgfs": {}}  # kind -> path -> CountedFile
        self._train_logs_by_name: dict[bool, dict[str, trainlog.TrainLog]] = {False: {}, True: {}}  # series?
        self._series_wanted = False  # once the series were asked for, the scalars come from the same logs
        self._models = modellist.ModelListing(base.storage, base.models)
        self._model_info: dict[str, AcceptedModel | None] = {}  # path -> model (None: unreadable)
        self._accepted: tuple[tuple, tuple[AcceptedModel, ...]] | None = None  # (the listing, its models)
        self._summaries: dict[str, datasummary.Summaries] = {}
        self._listed: tuple[float, tuple[tuple[float, str], ...]] | None = None  # (models/'s mtime, its listing)
        self._tally: tuple[float, ModelTally] | None = None  # (models/'s mtime, its tally)
        self._unnamed: dict[str, AcceptedModel | None] = {}  # models not named by an export, read once
        self._model_digest = None  # (runhistory's digests, made when first asked)
        self._decision_digest = None

    # --- self-play ------------------------------------------------------------------------------

    def _survey(self, kind: datasummary.Kind) -> datasummary.Survey:
        if kind.name not in self._summaries:
            self._summaries[kind.name] = datasummary.Summaries(self.base, kind, cache=self._counted[kind.name])
        return self._summaries[kind.name].survey()

    def data_points(self, kind: str) -> list[DataPoint]:
        """Oldest first: when a self-play directory's newest file was written, and its rows ("tdata") or
        games ("sgfs"); the directories of a sealed segment of the summaries' index as one point (their sum,
        at their newest file), so that the points stay few however long the run."""
        survey = self._survey(datasummary.TDATA if kind == "tdata" else datasummary.SGFS)
        return sorted((DataPoint(*p) for p in survey.points()), key=lambda p: (p.time, p.model))

    def games(self) -> int:
        return self._survey(datasummary.SGFS).total()

    def random_games(self) -> int:
        """Games of the random bootstrap (self-play without a model)."""
        return sum(self._survey(datasummary.SGFS).counts()[1].values())

    def rows(self) -> int:
        return self._survey(datasummary.TDATA).total()

    # --- training ---------------------------------------------------------------------------------

    def _train_logs(self, series: bool = False) -> list[trainlog.TrainLog]:
        """Every training run's metrics_train.jsonl, its summary brought up to date (each read only where it
        grew): the scalars alone (a small file, whatever the run's length), or with the loss series."""
        self._series_wanted = series = series or self._series_wanted  # (new lines are read once, not twice)
        names = self.base.storage.list_names(layout.train_root(self.base.root))
        logs = self._train_logs_by_name[series]
        for name in set(logs) - set(names):
            del logs[name]
        for name in sorted(names):
            if name not in logs:
                logs[name] = trainlog.TrainLog(self.base, name, series=series)
            logs[name].update()
        return [logs[name] for name in sorted(logs)]

    def loss_series(self) -> dict[str, trainlog.Series]:
        """Per training run with reports: its loss terms against samples, downsampled (``zeroloop.trainlog``)."""
        return {t.training: t.summary.series for t in self._train_logs(series=True)
                if t.summary is not None and t.summary.series is not None and t.summary.series.points}

    def last_losses(self) -> dict[str, float]:
        """The loss terms of the last training report (empty before any)."""
        summaries = [t.summary for t in self._train_logs() if t.summary is not None and t.summary.last_losses]
        return dict(max(summaries, key=lambda s: s.last_time).last_losses) if summaries else {}

    def samples_trained(self) -> int:
        return max((t.summary.samples for t in self._train_logs() if t.summary is not None), default=0)

    # --- models and gating ----------------------------------------------------------------------

    def accepted_models(self) -> tuple[AcceptedModel, ...]:
        """Models in models/, oldest first (samples and rows from an exported model's name, else its model.json).

        Locally from one listing, each model dated by its directory's mtime (when it was published or
        accepted; self-play's exact order by the weights' mtime is ``ModelListing``'s, one stat per model).
        The same tuple while models/ is unchanged: asking again allocates nothing."""
        listed = self._model_dirs()
        if self._accepted is not None and self._accepted[0] is listed:
            return self._accepted[1]
        known, out = self._model_info, []
        self._model_info = {}  # (models that left models/ are forgotten)
        for mtime, path in listed:
            model = known[path] if path in known else self._model(path, mtime)
            if model is not None and model.mtime != mtime:
                model = dataclasses.replace(model, mtime=mtime)
            self._model_info[path] = model
            if model is not None:
                out.append(model)
        self._accepted = (listed, tuple(out))
        return self._accepted[1]

    def model_tally(self) -> ModelTally:
        """The count of models in models/ and the newest, from one streamed listing: what the loop's cycle
        summary and status line need, in memory that does not grow with the models (the same object while
        models/ is unchanged)."""
        storage = self.base.storage
        if not storage.local:
            accepted = self.accepted_models()
            return ModelTally(len(accepted), accepted[-1] if accepted else None)
        try:
            changed = storage.mtime(self.base.models)
        except (FileNotFoundError, NotADirectoryError):
            return ModelTally(0, None)
        now = time.time()
        if self._tally is not None and self._tally[0] == changed and now - changed >= 2.0:
            return self._tally[1]
        count, best_key = 0, None
        for path, mtime in storage.scan_subdirs(self.base.models):
            if mtime is None or is_tmp(path):
                continue
            if not _SAMPLES_IN_NAME.search(posixpath.basename(path)) and self._model_once(path, mtime) is None:
                continue  # (neither exported nor readable)
            count += 1
            key = modellist.rank_key(mtime, path, now)
            if best_key is None or key > best_key:
                best_key = key
        best = self._model_once(best_key[2], best_key[1]) if best_key is not None else None
        if best is not None and best.mtime != best_key[1]:
            best = dataclasses.replace(best, mtime=best_key[1])
        self._tally = (changed, ModelTally(count, best))
        return self._tally[1]

    def _model_once(self, path: str, mtime: float) -> AcceptedModel | None:
        """A model from its exported name, else from its model.json (read once per process)."""
        if _SAMPLES_IN_NAME.search(posixpath.basename(path)):
            return self._model(path, mtime)
        if path not in self._unnamed:
            self._unnamed[path] = self._model(path, mtime)
        return self._unnamed[path]

    def _model_dirs(self) -> tuple[tuple[float, str], ...]:
        """(mtime, path) of models/'s directories, oldest first; listed again only when models/ changed
        (the same tuple until then)."""
        storage = self.base.storage
        if not storage.local:
            return self._models.models()
        try:
            changed = storage.mtime(self.base.models)
            if self._listed is not None and self._listed[0] == changed and time.time() - changed >= 2.0:
                return self._listed[1]
        except (FileNotFoundError, NotADirectoryError):
            return ()
        listed = tuple(modellist.ranked([(mtime, path) for path, mtime in storage.scan_subdirs(self.base.models)
                                         if mtime is not None and not is_tmp(path)]))
        self._listed = (changed, listed)
        return listed

    def _model(self, path: str, mtime: float) -> AcceptedModel | None:
        name = posixpath.basename(path)
        m = _SAMPLES_IN_NAME.search(name)
        if m:
            return AcceptedModel(name, path, mtime, int(m.group(1)), int(m.group(2)))
        try:
            from zeroloop.nn import modelfile  # (torch: only for a model not named by its export)

            info = modelfile.read_info(self.base.storage, path)
        except ModelFileError as e:
            log.debug("skipping %s: %s", path, e)
            return None
        return AcceptedModel(name, path, mtime, info.samples_trained, info.data_rows)

    def model_history(self) -> runhistory.ModelHistory:
        """The accepted models as the report shows them: count, newest, a bounded series
        (``zeroloop.runhistory``: the settled ones from a digest, the recent ones read)."""
        if self._model_digest is None:
            self._model_digest = runhistory.model_digest(
                self.base.storage, self.base.models, self.base.gatekeepersgf,
                layout.report_digest(self.base.root, "models"), self._named)
        return runhistory.model_history(self.base.storage, self.base.gatekeepersgf, self._named, self._model_digest)

    def _named(self, path: str, mtime: float) -> tuple[str, int] | None:
        model = self._model_once(path, mtime)
        return (model.name, model.samples_trained) if model is not None else None

    def decision_history(self) -> runhistory.DecisionHistory:
        """Every gating decision as the report shows it: counts, the last matches, bounded score series."""
        if self._decision_digest is None:
            self._decision_digest = runhistory.decision_digest(self.base.storage, self.base.gatekeepersgf,
                                                               layout.report_digest(self.base.root, "decisions"))
        return runhistory.decision_history(self.base.storage, self.base.gatekeepersgf, self._decision_digest)

    def decisions_since(self, since: float) -> list[decisions.DecisionRecord]:
        """The gating decisions taken at or after since (seconds since the epoch), oldest first."""
        return [r for r in decisions.read_since(self.base.storage, self.base.gatekeepersgf, since) if r.time >= since]

