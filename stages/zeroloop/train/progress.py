"""Training metrics: running loss sums, one JSON line per report, Prometheus.

Every ``print_every_batches`` batches the trainer reports the mean of each
loss term over those batches, the learning rate, samples/s, the bucket
level, samples and data rows so far: one log line, one line appended to
``train/<name>/metrics_train.jsonl`` and the ``zeroloop_train_*`` gauges.
The running sums and the JSON-lines file's length are part of the
checkpoint: a restart truncates the file to that length, dropping lines
about work the restart will redo, and carries on with the same sums, so the
file reads as if the run had never stopped.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field

from zeroloop import layout, metrics
from zeroloop.train.losses import TERMS

log = logging.getLogger(__name__)

JSONL_NAME = layout.TRAIN_METRICS


@dataclass
class RunningSums:
    sums: dict[str, float] = field(default_factory=lambda: {t: 0.0 for t in TERMS})
    rows: int = 0
    batches: int = 0
    jsonl_bytes: int = 0
    exports: int = 0

    def to_dict(self) -> dict:
        return {"sums": dict(self.sums), "rows": self.rows, "batches": self.batches,
                "jsonl_bytes": self.jsonl_bytes, "exports": self.exports}

    @classmethod
    def from_dict(cls, d: dict) -> "RunningSums":
        sums = {t: 0.0 for t in TERMS} | {t: float(v) for t, v in d["sums"].items()}  # optional terms too
        return cls(sums, int(d["rows"]), int(d["batches"]), int(d["jsonl_bytes"]), int(d.get("exports", 0)))


class Reporter:
    """Accumulates per-batch losses and writes reports (local JSON-lines file)."""

    def __init__(self, jsonl_path: str | None, sums: RunningSums, every_batches: int):
        self.path = jsonl_path
        self.sums = sums
        self.every = max(1, every_batches)
        self._t0 = time.monotonic()
        self._rows_since = 0
        if self.path is not None:
            self._truncate_to(sums.jsonl_bytes)

    def _truncate_to(self, size: int) -> None:
        assert self.path is not None
        if os.path.exists(self.path) and os.path.getsize(self.path) > size:
            with open(self.path, "r+b") as f:
                f.truncate(size)
        elif not os.path.exists(self.path):
            self.sums.jsonl_bytes = 0

    def add(self, terms: dict[str, float], rows: int) -> bool:
        """Add one batch; True when a report is due."""
        for k, v in terms.items():
            self.sums.sums[k] = self.sums.sums.get(k, 0.0) + v
        self.sums.rows += rows
        self.sums.batches += 1
        self._rows_since += rows
        return self.sums.batches >= self.every

    def report(self, fields: dict) -> dict:
        """Write one report with the mean losses since the last, then reset the sums."""
        now = time.monotonic()
        rate = self._rows_since / max(now - self._t0, 1e-9)
        rows = max(self.sums.rows, 1)
        line = {"time": round(time.time(), 3), **fields, "samples_per_s": round(rate, 2)}
        line.update({f"loss_{k}": v / rows for k, v in self.sums.sums.items()})
        self._write(line)
        for k, v in self.sums.sums.items():
            metrics.metric("zeroloop_train_loss").labels(term=k).set(v / rows)
        metrics.metric("zeroloop_train_samples_per_second").set(rate)
        log.info("samples %d rows %d epoch %.2f lr %.3g %s %.1f samples/s",
                 fields.get("samples", 0), fields.get("data_rows", 0), fields.get("epoch", 0.0),
                 fields.get("lr", 0.0), " ".join(f"{k} {v / rows:.4f}" for k, v in self.sums.sums.items()), rate)
        self.sums.sums = {t: 0.0 for t in TERMS}
        self.sums.rows = 0
        self.sums.batches = 0
        self._t0, self._rows_since = now, 0
        return line

    def event(self, fields: dict) -> None:
        """A one-off line (epoch end, export) in the JSON-lines file."""
        self._write({"time": round(time.time(), 3), **fields})

    def _write(self, line: dict) -> None:
        if self.path is None:
            return
        data = (json.dumps(line) + "\n").encode()
        try:
            with open(self.path, "ab") as f:
                f.write(data)
        except OSError as e:  # (a failed write names no file; a restart truncates a partial line)
            raise OSError(e.errno, e.strerror, self.path) from None
        self.sums.jsonl_bytes += len(data)
