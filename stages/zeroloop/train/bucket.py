"""The train bucket: how many samples training may take per new data row.

KataGo's rule, exactly. The bucket starts at one epoch
(``samples_per_epoch``). The first shuffle seen only records its total data
rows (``at_row``). Each later shuffle with more total rows adds
``(total - at_row) * per_new_data``, capped at
``max(max_size, samples_per_epoch)``; fewer rows than before (a reset run)
only moves ``at_row`` back, with a warning. Before each epoch the bucket
must hold more than 0.99 epochs, which the epoch then takes out; otherwise
training stops (``--stop-when-train-bucket-limited``) or waits for data.
With ``per_new_data`` unset there is no bucket: every epoch may run.

Pure: the state is a small dataclass the trainer checkpoints.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BucketRule:
    samples_per_epoch: int
    per_new_data: float | None = None  # --max-train-bucket-per-new-data
    max_size: float = 1e30  # --max-train-bucket-size


@dataclass(frozen=True)
class Bucket:
    level: float
    at_row: int | None = None  # total data rows when the bucket was last filled

    @classmethod
    def initial(cls, rule: BucketRule) -> "Bucket":
        return cls(float(rule.samples_per_epoch), None)

    def to_dict(self) -> dict:
        return {"level": self.level, "at_row": self.at_row}

    @classmethod
    def from_dict(cls, d: dict) -> "Bucket":
        return cls(float(d["level"]), None if d["at_row"] is None else int(d["at_row"]))


def on_new_data(b: Bucket, rule: BucketRule, total_rows: int) -> Bucket:
    """The bucket after seeing a new shuffle whose train.json range ends at total_rows."""
    if b.at_row is None:
        return replace(b, at_row=total_rows)
    if total_rows > b.at_row:
        level = b.level
        if rule.per_new_data is not None:
            level = min(level + (total_rows - b.at_row) * rule.per_new_data,
                        max(rule.max_size, float(rule.samples_per_epoch)))
        return Bucket(level, total_rows)
    if total_rows < b.at_row:
        log.warning("shuffled data has %d total rows, fewer than the %d seen before: restarting the count",
                    total_rows, b.at_row)
        return replace(b, at_row=total_rows)
    return b


def can_take_epoch(b: Bucket, rule: BucketRule) -> bool:
    return rule.per_new_data is None or b.level > 0.99 * rule.samples_per_epoch


def take_epoch(b: Bucket, rule: BucketRule) -> Bucket:
    """The bucket after starting an epoch (call only when can_take_epoch)."""
    if rule.per_new_data is None:
        return b
    return replace(b, level=b.level - rule.samples_per_epoch)
