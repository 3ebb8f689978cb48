"""Batches from shuffled files, prepared in a background thread.

Reading a file, checking its content hash, decompressing it and unpacking
the bit planes all run in a thread ahead of the training step (zlib and
numpy release the GIL), so the step never waits on disk: the bench holds
this to at least 0.9 of training on tensors already in memory. On CUDA the
host tensors are pinned, so the copy to the device overlaps compute too.

Each batch carries its position (file index, batch index) in the epoch:
the trainer records the position of the last batch it trained, never of
the last one read ahead, so a checkpoint resumes at the next batch. A file
that is missing, unreadable, of the wrong shape or whose content no longer
matches its hash is skipped with a warning naming it.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from zeroloop import rows, symmetry
from zeroloop.errors import DataFileError
from zeroloop.storage import Storage
from zeroloop.train.files import ID_HEX, Epoch, FileRef
from zeroloop.train.losses import Targets

log = logging.getLogger(__name__)


@dataclass
class HostBatch:
    """One batch as (possibly pinned) host tensors."""

    file_index: int
    batch_index: int
    planes: torch.Tensor  # (N, C, P, P) uint8 bits
    glob: torch.Tensor  # (N, G) float32
    policy: torch.Tensor  # (N, 2, P*P+1) float32
    globals: torch.Tensor  # (N, NUM_GLOBAL_TARGETS) float32
    ownership: torch.Tensor  # (N, P, P) int8

    def pin(self) -> "HostBatch":
        for k in ("planes", "glob", "policy", "globals", "ownership"):
            setattr(self, k, getattr(self, k).pin_memory())
        return self


@dataclass
class DeviceBatch:
    spatial: torch.Tensor  # (N, C, P, P) float32
    glob: torch.Tensor
    targets: Targets


def read_file(storage: Storage, path: str, ref: FileRef, pos_len: int,
              feature_version: int | None = None) -> dict[str, np.ndarray]:
    """A shuffled file's rows, checked against its content id (and the net's inputs); DataFileError if bad."""
    try:
        data = storage.read_bytes(path)
    except (FileNotFoundError, OSError) as e:
        raise DataFileError(f"{path}: cannot read ({e})") from None
    if hashlib.sha256(data).hexdigest()[:ID_HEX] != ref.id:
        raise DataFileError(f"{path}: content does not match its recorded sha256")
    return rows.from_bytes(data, path, pos_len, feature_version)


def file_batches(arrays: dict[str, np.ndarray], file_index: int, batch_size: int, pos_len: int,
                 start: int = 0) -> Iterator[HostBatch]:
    """Whole batches of a file from batch number start (a last partial batch is dropped)."""
    n = len(arrays["gameIdN"])
    area = pos_len * pos_len
    for b in range(start, n // batch_size):
        sl = slice(b * batch_size, (b + 1) * batch_size)
        packed = arrays["binaryInputNCHWPacked"][sl]
        bits = np.unpackbits(packed, axis=2, count=area).reshape(batch_size, packed.shape[1], pos_len, pos_len)
        yield HostBatch(
            file_index, b,
            torch.from_numpy(bits),
            torch.from_numpy(np.ascontiguousarray(arrays["globalInputNC"][sl])),
            torch.from_numpy(np.ascontiguousarray(arrays["policyTargetsNCMove"][sl])),
            torch.from_numpy(np.ascontiguousarray(arrays["globalTargetsNC"][sl])),
            torch.from_numpy(np.ascontiguousarray(arrays["valueTargetsNCHW"][sl, 0])),
        )


def epoch_batches(storage: Storage, shuffle_dir: str, epoch: Epoch, batch_size: int,
                  pos_len: int, pin: bool = False, feature_version: int | None = None) -> Iterator[HostBatch]:
    """Every batch of the epoch from its recorded position on (bad files skipped)."""
    for i in range(epoch.file_index, len(epoch.files)):
        ref = epoch.files[i]
        path = posixpath.join(shuffle_dir, ref.name)
        try:
            arrays = read_file(storage, path, ref, pos_len, feature_version)
        except DataFileError as e:
            log.warning("skipping shuffled file: %s", e)
            continue
        start = epoch.batch_index if i == epoch.file_index else 0
        for hb in file_batches(arrays, i, batch_size, pos_len, start):
            yield hb.pin() if pin else hb


class Prefetcher:
    """Runs an iterator of host batches in a thread, ``depth`` batches ahead."""

    _END = object()

    def __init__(self, source: Iterator[HostBatch], depth: int = 4):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._fill, args=(source,), name="zeroloop-train-data",
                                        daemon=True)
        self._thread.start()

    def _fill(self, source: Iterator[HostBatch]) -> None:
        try:
            for item in source:
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            self._error = e
        finally:
            while not self._stop.is_set():
                try:
                    self._queue.put(self._END, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def __iter__(self) -> Iterator[HostBatch]:
        while True:
            item = self._queue.get()
            if item is self._END:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def to_device(hb: HostBatch, device: torch.device, sym: int, pos_len: int) -> DeviceBatch:
    """Move a batch to the device and apply one of the 8 symmetries to planes and targets."""
    nb = device.type == "cuda"
    planes = hb.planes.to(device, non_blocking=nb).float()
    ownership = hb.ownership.to(device, non_blocking=nb).float()
    policy = hb.policy.to(device, non_blocking=nb)
    if sym:
        planes = symmetry.apply_planes(planes, sym)
        ownership = symmetry.apply_planes(ownership, sym)
        policy = symmetry.apply_policy(policy, sym, pos_len)
    planes = planes.contiguous()
    targets = Targets(policy.contiguous(), hb.globals.to(device, non_blocking=nb), ownership.contiguous(),
                      planes[:, 0])
    return DeviceBatch(planes, hb.glob.to(device, non_blocking=nb), targets)
