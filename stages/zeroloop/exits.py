"""How a stage ends: its exit status, and why it stopped.

Every `zeroloop` command exits with one of the statuses below; the loop,
the benchmarks and the chaos harness compare against these names, never
against numbers of their own.

A stage that stops on its own for a reason its caller acts on (the trainer
out of data or out of train bucket) also writes that reason, as a small
JSON file (``StopRecord``), where the caller reads it back: processes tell
each other things through BASEDIR, not through the wording of their logs.
This module is pure apart from ``write_stop``/``read_stop``, which take a
``Storage`` and a path.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field

OK = 0
ENVIRONMENT = 1  # the machine failed: a full disk, a read-only or unreadable volume
USER_ERROR = 2  # bad flags, config, model or data file (``errors.UserError``)
NOT_ENOUGH_ROWS = 3  # shuffle: fewer usable rows than --min-rows; nothing written
INTERRUPTED = 130  # Ctrl-C reached the command before its own handler did

# Why the trainer stopped on its own, with the words the loop's summary uses for each.
NO_SHUFFLE = "no-shuffle"  # --quit-if-no-data, and no complete shuffle yet
SHUFFLE_USED_UP = "shuffle-used-up"  # --quit-if-no-data, and too few unused rows for an epoch
BUCKET_LIMITED = "bucket-limited"  # --stop-when-train-bucket-limited, and the train bucket is empty
RELOAD_LIMITED = "reload-limited"  # --stop-when-train-bucket-limited, and --max-train-steps-since-last-reload
LIMIT_REACHED = "limit-reached"  # --max-epochs-this-instance or --max-training-samples
SIGNALLED = "signalled"  # SIGTERM or SIGINT

STOP_REASONS: dict[str, str] = {
    NO_SHUFFLE: "no shuffled data yet",
    SHUFFLE_USED_UP: "every row of the shuffle used (--no-repeat-files)",
    BUCKET_LIMITED: "train bucket empty (--max-train-per-data)",
    RELOAD_LIMITED: "trained enough since the last new shuffle (--max-train-steps-since-last-reload)",
    LIMIT_REACHED: "reached its limit for this instance",
    SIGNALLED: "stopped by a signal",
}

STOP_FILE = "stop.json"


@dataclass(frozen=True)
class StopRecord:
    """Why one run of a stage ended: ``reason`` (a key of STOP_REASONS) and the stage's own message."""

    reason: str
    message: str
    time: float = field(default_factory=time.time)
    pid: int = field(default_factory=os.getpid)

    def __post_init__(self) -> None:
        if self.reason not in STOP_REASONS:
            raise ValueError(f"unknown stop reason {self.reason!r}; known: {', '.join(STOP_REASONS)}")

    @property
    def summary(self) -> str:
        """The reason in a few words."""
        return STOP_REASONS[self.reason]

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> StopRecord | None:
        """The record, or None for anything that is not one (a stale or foreign file is no reason)."""
        try:
            d = json.loads(data)
            return cls(reason=str(d["reason"]), message=str(d["message"]), time=float(d["time"]),
                       pid=int(d["pid"]))
        except (ValueError, KeyError, TypeError):
            return None


def write_stop(storage, path: str, record: StopRecord) -> None:
    """Publish the record atomically (a reader sees the old one or the new one, whole)."""
    storage.write_bytes(path, record.to_json())


def read_stop(storage, path: str, since: float = 0.0) -> StopRecord | None:
    """The record at path written at or after ``since`` (a wall-clock time), else None."""
    try:
        record = StopRecord.from_json(storage.read_bytes(path))
    except (FileNotFoundError, OSError):
        return None
    if record is None or record.time < since:
        return None
    return record
