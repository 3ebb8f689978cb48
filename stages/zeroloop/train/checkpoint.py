"""Training checkpoints: written atomically, rotated, loaded without unpickling code.

``train/<name>/checkpoint.ckpt`` holds the model, the averaged model, the
optimizer (and fp16 scaler) state as tensors, and the rest of the training
state (bucket, data position, random generator, metrics) as one JSON
string, so loading needs only ``torch.load(weights_only=True)``: nothing
from the shared volume can run code. Before a new checkpoint is written the
old one is copied to ``checkpoint_prev0.ckpt`` and older copies shift up to
``prev3``; each write is atomic (``Storage.write_bytes``), so a kill at any
instant leaves a loadable checkpoint. Loading tries ``checkpoint.ckpt``,
then the prevs, warning about any that cannot be read.
"""

from __future__ import annotations

import io
import logging
import pickle
import posixpath
import zipfile

import torch

from zeroloop.errors import ModelFileError
from zeroloop.storage import Storage

log = logging.getLogger(__name__)

FORMAT = "zeroloop-train-checkpoint"
VERSION = 1
NAME = "checkpoint.ckpt"
NUM_PREV = 4


def prev_name(i: int) -> str:
    return f"checkpoint_prev{i}.ckpt"


def to_bytes(payload: dict) -> bytes:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **payload}, buf)
    return buf.getvalue()


def from_bytes(data: bytes, where: str) -> dict:
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, zipfile.BadZipFile, OSError) as e:
        raise ModelFileError(f"{where}: not a readable checkpoint ({str(e).splitlines()[0] if str(e) else e})") \
            from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{where}: not a zeroloop training checkpoint")
    if payload.get("version") != VERSION:
        raise ModelFileError(f"{where}: checkpoint version {payload.get('version')}, this zeroloop reads {VERSION}")
    return payload


def save(storage: Storage, traindir: str, payload: dict) -> None:
    """Rotate the previous checkpoints, then publish the new one."""
    data = to_bytes(payload)
    current = posixpath.join(traindir, NAME)
    if storage.exists(current):
        for i in range(NUM_PREV - 1, 0, -1):
            older = posixpath.join(traindir, prev_name(i - 1))
            if storage.exists(older):
                storage.fs.mv(older, posixpath.join(traindir, prev_name(i)))
        storage.write_bytes(posixpath.join(traindir, prev_name(0)), storage.read_bytes(current))
    storage.write_bytes(current, data)


def load_latest(storage: Storage, traindir: str) -> tuple[dict, str] | None:
    """The newest readable checkpoint and its path; None if there is none at all."""
    candidates = [posixpath.join(traindir, NAME)] + [posixpath.join(traindir, prev_name(i)) for i in range(NUM_PREV)]
    present = [p for p in candidates if storage.exists(p)]
    for path in present:
        try:
            return from_bytes(storage.read_bytes(path), path), path
        except (ModelFileError, OSError) as e:
            log.warning("cannot use checkpoint %s: %s", path, e)
    if present:
        raise ModelFileError(f"no readable checkpoint in {traindir} (tried {', '.join(present)})")
    return None


def load_file(storage: Storage, path: str) -> dict:
    try:
        data = storage.read_bytes(path)
    except (FileNotFoundError, OSError) as e:
        raise ModelFileError(f"{path}: cannot read ({e})") from None
    return from_bytes(data, path)
