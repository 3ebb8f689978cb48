"""Gatekeeper decision records: one small JSON file per candidate.

Each decision the gatekeeper takes leaves ``gatekeepersgf/<candidate>/result.json``
next to the SGFs of the candidate's games: which model was tested against
which, the decision (``accepted`` or ``rejected``) and why (``match`` or
``older than the accepted model``), the tally, the rule that decided
(``fixed`` or ``sprt`` with its log-likelihood ratio), and when. It is
written before the candidate is moved, so every model in ``models/`` or
``rejectedmodels/`` that was gated has one; a candidate that is tested
again after a crash gets its record rewritten. The loop's cycle summary and
``zeroloop report`` read these records; nothing else keeps state about
gating.
"""

from __future__ import annotations

import json
import logging
import posixpath
from dataclasses import asdict, dataclass, field

from zeroloop.storage import Storage

log = logging.getLogger(__name__)

RECORD_NAME = "result.json"
ACCEPTED, REJECTED = "accepted", "rejected"


@dataclass(frozen=True)
class DecisionRecord:
    candidate: str
    baseline: str  # the accepted model it played, or "random"
    decision: str  # accepted | rejected
    reason: str  # match | older than the accepted model | unusable: ...
    wins: int = 0
    losses: int = 0
    draws: int = 0
    required: float = 0.5
    method: str = "fixed"  # fixed | sprt
    llr: float | None = None
    max_games: int = 0
    seconds: float = 0.0
    time: float = 0.0  # seconds since the epoch
    samples_trained: int = 0
    data_rows: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def games(self) -> int:
        return self.wins + self.losses + self.draws

    @property
    def score(self) -> float | None:
        """Candidate points per game (None without games)."""
        return (self.wins + 0.5 * self.draws) / self.games if self.games else None

    def to_json(self) -> bytes:
        d = asdict(self)
        d["games"] = self.games
        d["score"] = self.score
        return (json.dumps(d, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> "DecisionRecord":
        d = json.loads(data)
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


def record_path(sgf_root: str, candidate: str) -> str:
    return posixpath.join(sgf_root, candidate, RECORD_NAME)


def write(storage: Storage, sgf_root: str, record: DecisionRecord) -> str:
    path = record_path(sgf_root, record.candidate)
    storage.makedirs(posixpath.dirname(path))
    storage.write_bytes(path, record.to_json())
    return path


def read_all(storage: Storage, sgf_root: str) -> list[DecisionRecord]:
    """Every readable record under sgf_root, oldest decision first (unreadable ones are logged)."""
    out = []
    for d in storage.list_subdirs(sgf_root):
        path = posixpath.join(d, RECORD_NAME)
        if not storage.exists(path):
            continue
        try:
            out.append(DecisionRecord.from_json(storage.read_bytes(path)))
        except (OSError, ValueError, TypeError) as e:
            log.warning("ignoring unreadable gating record %s: %s", path, e)
    return sorted(out, key=lambda r: (r.time, r.candidate))


def read_since(storage: Storage, sgf_root: str, since: float) -> list[DecisionRecord]:
    """The readable records written at or after since, oldest decision first.

    A record is written (renamed) into its candidate's directory, which sets
    that directory's mtime, so one listing with mtimes finds the directories
    to read: the cost follows the decisions of the period, not all of them.
    """
    out = []
    for d, mtime in storage.scan_subdirs(sgf_root):  # (streamed: memory follows the period, not the history)
        if mtime is not None and mtime < since - 1.0:
            continue
        path = posixpath.join(d, RECORD_NAME)
        try:
            out.append(DecisionRecord.from_json(storage.read_bytes(path)))
        except FileNotFoundError:
            continue
        except (OSError, ValueError, TypeError) as e:
            log.warning("ignoring unreadable gating record %s: %s", path, e)
    return sorted(out, key=lambda r: (r.time, r.candidate))
