"""Which models a models directory holds, and which is the newest.

A model is a complete directory holding both files of ``zeroloop.layout``'s
model layout (``model.safetensors``, ``model.json``; what they hold is
``zeroloop.nn.modelfile``'s). ``find_latest_model`` picks the newest by the
weights' modification time, as KataGo's findLatestModel does, so self-play
and the gatekeeper agree on "newest"; a model dated in the future ranks
below the others (``list_models``). Imports without torch.
"""

from __future__ import annotations

import logging
import time

from zeroloop import layout
from zeroloop.storage import Storage

CLOCK_SKEW_TOLERANCE_S = 60.0
_warned_future: set[str] = set()
log = logging.getLogger(__name__)


def is_model_dir(storage: Storage, path: str) -> bool:
    """Whether path is a complete directory with both model files (contents unchecked)."""
    return storage.is_complete_dir(path) and all(
        storage.exists(f) for f in (layout.model_weights(path), layout.model_info(path)))


def list_models(storage: Storage, models_dir: str, now: float | None = None) -> list[tuple[float, str]]:
    """(mtime of the weights, path) of every complete model under models_dir, oldest first.

    A model dated in the future (beyond ``CLOCK_SKEW_TOLERANCE_S``: a writer
    whose clock runs ahead, or a copy that kept odd times) counts as older than
    every model dated in the past, with a warning naming it: otherwise it would
    stay "newest" and hide every model exported after it until the clock
    caught up with its date.
    """
    now = time.time() if now is None else now
    found = []
    for path in storage.list_dirs(models_dir):
        if is_model_dir(storage, path):
            try:
                found.append((storage.mtime(layout.model_weights(path)), path))
            except FileNotFoundError:  # removed while we looked
                continue
    future = {p for t, p in found if t > now + CLOCK_SKEW_TOLERANCE_S}
    for t, p in found:
        if p in future and p not in _warned_future:
            _warned_future.add(p)
            log.warning("model %s is dated %.0f s in the future (clock skew?): ranking it below the models "
                        "dated in the past", p, t - now)
    return sorted(found, key=lambda tp: (tp[1] not in future, tp[0], tp[1]))


def find_latest_model(storage: Storage, models_dir: str) -> str | None:
    """The newest complete model directory in models_dir (by weights mtime, then name), or None."""
    models = list_models(storage, models_dir)
    return models[-1][1] if models else None
