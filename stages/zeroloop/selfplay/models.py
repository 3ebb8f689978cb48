"""Which model self-play uses: the newest in models/, polled, or "random".

``ModelWatcher`` follows KataGo's findLatestModel: the newest complete
model directory in models-dir by the weights' modification time
(``zeroloop.modellist.find_latest_model``), looked up again every
``poll_seconds``. While there is no model at all, self-play uses the
uniform-random evaluator under the name ``random`` (its data goes to
``selfplay/random/``); once a real model has been used, an empty or
unreadable models-dir keeps the current one. A model that fails to load
or does not fit the configured boards is logged and skipped, never fatal.

``FixedModel`` serves one evaluator forever (benchmarks, tests).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

from zeroloop import modellist
from zeroloop.errors import ModelFileError
from zeroloop.search.evaluators import RANDOM_MODEL_NAME, Evaluator, RandomEvaluator
from zeroloop.storage import Storage

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    name: str
    evaluator: Evaluator
    path: str | None = None  # None for the random model

    @property
    def pos_len(self) -> int:
        return self.evaluator.pos_len

    @property
    def feature_version(self) -> int:
        """The inputs its net reads (zeroloop.features; the random model: the default)."""
        return int(getattr(self.evaluator, "feature_version", 1))


class ModelSource(Protocol):
    def initial(self) -> LoadedModel: ...

    def poll(self) -> LoadedModel | None:
        """A newer model than the last one returned, or None."""


class FixedModel:
    def __init__(self, model: LoadedModel):
        self.model = model

    def initial(self) -> LoadedModel:
        return self.model

    def poll(self) -> LoadedModel | None:
        return None


class ModelWatcher:
    def __init__(self, storage: Storage, models_dir: str, *, device="cpu", max_batch: int = 256, precision="fp32",
                 random_pos_len: int = 9, max_board_size: int = 9, poll_seconds: float = 20.0,
                 seed: int | None = None, feature_version: int = 1):
        self.storage = storage
        self.feature_version = feature_version  # the inputs self-play writes: the random model's, and every model's
        self.models_dir = models_dir
        self.device = device
        self.max_batch = max_batch
        self.precision = precision
        self.random_pos_len = random_pos_len
        self.max_board_size = max_board_size
        self.poll_seconds = poll_seconds
        self.seed = seed
        self._current: str | None = None  # path of the model in use (None: random)
        self._skipped: set[str] = set()
        self._next_poll = 0.0
        self._listing: modellist.ModelListing | None = None  # made on first use

    def initial(self) -> LoadedModel:
        self._next_poll = time.monotonic() + self.poll_seconds
        model = self._load_newest()
        if model is not None:
            return model
        log.info("no model in %s: playing with the random evaluator (selfplay/%s)", self.models_dir,
                 RANDOM_MODEL_NAME)
        return LoadedModel(RANDOM_MODEL_NAME, RandomEvaluator(self.random_pos_len, self.seed,
                                                              feature_version=self.feature_version))

    def poll(self) -> LoadedModel | None:
        now = time.monotonic()
        if now < self._next_poll:
            return None
        self._next_poll = now + self.poll_seconds
        return self._load_newest()

    def _load_newest(self) -> LoadedModel | None:
        from zeroloop.nn import modelfile

        if self._listing is None:
            self._listing = modellist.ModelListing(self.storage, self.models_dir)
        try:
            path = self._listing.latest()
        except OSError as e:
            log.warning("cannot list models in %s: %s", self.models_dir, e)
            return None
        if path is None or path == self._current or path in self._skipped:
            return None
        try:
            net, info = modelfile.load_model(self.storage, path, self.device)
            if info.pos_len < self.max_board_size:
                raise ModelFileError(f"model {path}: pos_len {info.pos_len} is smaller than the largest "
                                     f"configured board size {self.max_board_size}")
            if info.feature_version != self.feature_version:
                raise ModelFileError(f"model {path}: reads feature version {info.feature_version}, this self-play "
                                     f"is configured for version {self.feature_version} (features): its rows "
                                     f"would not fit the run's other data")
            from zeroloop.search.evaluators import net_evaluator

            evaluator = net_evaluator(net, info.name, self.device, self.max_batch, self.precision)
        except ModelFileError as e:
            log.error("skipping model: %s", e)
            self._skipped.add(path)
            return None
        self._current = path
        log.info("loaded model %s from %s (%s, pos_len %d)", info.name, path, info.config.name, info.pos_len)
        return LoadedModel(info.name, evaluator, path)
