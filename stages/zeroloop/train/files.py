"""Which shuffled files each epoch trains on, and where training stands in them.

KataGo's selection: an epoch takes files from a queue (the current
shuffle's files in random order) until it has about
``samples_per_epoch / batch_size`` batches; a file that would overshoot is
left for later with probability equal to the fraction it overshoots by, so
epochs average the right size. ``history`` lists the files trained on, by
content identity (the start of the file's sha256, which the shuffler writes
beside it), not by path: moving or copying BASEDIR, or a shuffle reusing a
file name, changes nothing.

- With ``no_repeat`` a file is never trained on twice: a new shuffle's
  queue leaves out files already in ``history``, and when the queue cannot
  fill an epoch the trainer waits for a new shuffle.
- Without it, an exhausted queue is refilled with all of the shuffle's
  files in a new order that keeps the last third used out of the first
  third, so a file does not recur soon.

``Epoch`` is the data position inside an epoch (file index, batch index),
checkpointed with the rest, so a restart continues with the next batch.
Everything here is pure and JSON-serialisable; randomness comes from the
caller's numpy Generator, whose state is checkpointed too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from zeroloop import shuffled

ID_HEX = 16  # 64 bits of sha256: unique among any run's files
MAX_HISTORY = 200_000


@dataclass(frozen=True)
class FileRef:
    name: str  # relative to the shuffle dir
    id: str  # content identity
    rows: int

    def to_list(self) -> list:
        return [self.name, self.id, self.rows]

    @classmethod
    def from_list(cls, x: list) -> "FileRef":
        return cls(str(x[0]), str(x[1]), int(x[2]))

    @classmethod
    def of(cls, f: shuffled.ShuffledFile) -> "FileRef":
        return cls(f.name, f.sha256[:ID_HEX], f.num_rows)


@dataclass(frozen=True)
class FilePlan:
    shuffle_dir: str | None = None  # stamp name of the shuffle the queue comes from
    shuffle_id: str | None = None
    queue: tuple[FileRef, ...] = ()
    history: tuple[str, ...] = ()  # ids trained on, oldest first (bounded)

    def to_dict(self) -> dict:
        return {"shuffle_dir": self.shuffle_dir, "shuffle_id": self.shuffle_id,
                "queue": [f.to_list() for f in self.queue], "history": list(self.history)}

    @classmethod
    def from_dict(cls, d: dict) -> "FilePlan":
        return cls(d["shuffle_dir"], d["shuffle_id"], tuple(FileRef.from_list(x) for x in d["queue"]),
                   tuple(str(x) for x in d["history"]))


@dataclass(frozen=True)
class Epoch:
    """An epoch in progress: its files and the next batch to train."""

    shuffle_dir: str
    files: tuple[FileRef, ...]
    file_index: int = 0
    batch_index: int = 0
    samples: int = 0  # trained in this epoch so far

    def to_dict(self) -> dict:
        return {"shuffle_dir": self.shuffle_dir, "files": [f.to_list() for f in self.files],
                "file_index": self.file_index, "batch_index": self.batch_index, "samples": self.samples}

    @classmethod
    def from_dict(cls, d: dict) -> "Epoch":
        return cls(str(d["shuffle_dir"]), tuple(FileRef.from_list(x) for x in d["files"]),
                   int(d["file_index"]), int(d["batch_index"]), int(d["samples"]))


def on_new_shuffle(plan: FilePlan, shuffle_dir: str, summary: shuffled.ShuffleSummary,
                   rng: np.random.Generator) -> FilePlan:
    """The plan after switching to a new shuffle: its unused files in random order."""
    seen = set(plan.history)
    fresh = [FileRef.of(f) for f in summary.files if f.sha256[:ID_HEX] not in seen]
    order = rng.permutation(len(fresh))
    return replace(plan, shuffle_dir=shuffle_dir, shuffle_id=summary.shuffle_id,
                   queue=tuple(fresh[i] for i in order))


def spaced_order(files: list[FileRef], recent: list[str], rng: np.random.Generator) -> list[FileRef]:
    """All files in random order, none of the most recent third in the first third."""
    k = len(files) // 3
    recent_ids = set(recent[-k:]) if k else set()
    others = [files[i] for i in rng.permutation(len(files)) if files[i].id not in recent_ids]
    held = [f for f in files if f.id in recent_ids]
    head, tail = others[:k], others[k:] + held
    return head + [tail[i] for i in rng.permutation(len(tail))]


def choose_epoch(plan: FilePlan, dir_files: list[FileRef], target_batches: float, batch_size: int,
                 rng: np.random.Generator, no_repeat: bool) -> tuple[tuple[FileRef, ...], FilePlan] | None:
    """Files for one epoch and the plan after it; None when the data cannot fill it.

    dir_files are all files of the plan's shuffle (for refilling without no_repeat).
    """
    if not any(f.rows >= batch_size for f in dir_files):
        return None
    queue = list(plan.queue)
    chosen: list[FileRef] = []
    batches = 0
    while batches < target_batches:
        if not queue:
            if no_repeat:
                return None
            queue = spaced_order(dir_files, list(plan.history) + [f.id for f in chosen], rng)
        f = queue.pop(0)
        n = f.rows // batch_size
        if n <= 0:
            continue
        if batches > 0 and batches + n > target_batches:
            overshoot = (batches + n - target_batches) / n
            if rng.random() < overshoot:
                queue.insert(0, f)
                break
        chosen.append(f)
        batches += n
    history = (plan.history + tuple(f.id for f in chosen))[-MAX_HISTORY:]
    return tuple(chosen), replace(plan, queue=tuple(queue), history=history)

