"""The report's view of every accepted model and gating decision, in memory that does not grow with them.

``zeroloop report`` shows, of the models in ``models/`` and the decision
records in ``gatekeepersgf/``: how many (accepted, rejected after a match,
rejected unplayed), the newest model, the last gating matches, and a plot
of each (samples trained against time; the candidates' scores). Each comes
from a ``zeroloop.digest`` of the directory: the settled entries folded
once into counts, the newest or the last few, and a ``Decimated`` series of
at most ``MAX_POINTS`` points; the recent entries (changed within the last
hour) read at every use. So a report reads two small files, lists the two
directories (streamed), and reads what is new, however long the run.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from zeroloop import decisions, digest, modellist
from zeroloop.decisions import DecisionRecord
from zeroloop.storage import Storage

log = logging.getLogger(__name__)

MAX_POINTS = 800  # per plotted series kept in a digest (the report thins to its own 400)
LAST = 10  # gating matches the report lists


@dataclass(frozen=True)
class ModelPoint:
    """An accepted model as the report shows it."""

    name: str
    mtime: float  # of its directory in models/
    when: float  # when it was accepted (its gating record's time), else mtime
    samples_trained: int


@dataclass(frozen=True)
class ModelHistory:
    count: int
    newest: ModelPoint | None
    points: list[ModelPoint]  # oldest first, every stride-th of the settled, then every recent one


@dataclass(frozen=True)
class DecisionHistory:
    accepted: int
    rejected_played: int
    rejected_unplayed: int
    last_played: list[DecisionRecord]  # the LAST newest with games, oldest first
    scores: dict[str, list[tuple[float, float]]]  # decision -> (time, score) of matches played


# --- gating decisions --------------------------------------------------------------------------


def _read_record(storage: Storage, directory: str) -> DecisionRecord | None:
    """A candidate directory's record; None if it has none (yet) or it is unreadable (logged).
    OSError other than a missing file is raised: the caller tries again later."""
    path = posixpath.join(directory, decisions.RECORD_NAME)
    try:
        return DecisionRecord.from_json(storage.read_bytes(path))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as e:
        log.warning("ignoring unreadable gating record %s: %s", path, e)
        return None


def _empty_decisions() -> dict:
    return {"accepted": 0, "rejected_played": 0, "rejected_unplayed": 0, "last": [],
            "scores": {decisions.ACCEPTED: digest.Decimated.empty(), decisions.REJECTED: digest.Decimated.empty()}}


def _take_record(state: dict, r: DecisionRecord) -> None:
    if r.decision == decisions.ACCEPTED:
        state["accepted"] += 1
    elif r.decision == decisions.REJECTED:
        state["rejected_played" if r.games > 0 else "rejected_unplayed"] += 1
    if r.games > 0:
        if r.decision in state["scores"]:
            digest.Decimated.add(state["scores"][r.decision], [r.time, r.score], MAX_POINTS)
        last = state["last"] + [asdict(r)]
        state["last"] = sorted(last, key=lambda d: (d["time"], d["candidate"]))[-LAST:]


def _check_decisions(state: dict) -> None:
    for key in ("accepted", "rejected_played", "rejected_unplayed"):
        if not isinstance(state[key], int) or state[key] < 0:
            raise ValueError(f"bad count {key}")
    for d in state["last"]:
        DecisionRecord(**d)  # (TypeError: not a record)
    for decision in (decisions.ACCEPTED, decisions.REJECTED):
        digest.Decimated.check(state["scores"][decision], 2)
        for t, score in state["scores"][decision]["points"]:
            float(t), float(score)


def decision_digest(storage: Storage, sgf_root: str, path: str, settle_s: float = digest.SETTLE_S) -> digest.Digest:
    def fold(state: dict, entries: list[digest.Entry]) -> None:
        for _, directory in entries:
            r = _read_record(storage, directory)
            if r is not None:
                _take_record(state, r)

    return digest.Digest(storage, sgf_root, path, "decisions/1", _empty_decisions, fold, _check_decisions, settle_s)


def decision_history(storage: Storage, sgf_root: str, d: digest.Digest) -> DecisionHistory:
    view = d.view()
    state = {**view.state, "last": list(view.state["last"]),
             "scores": {k: {**v, "points": list(v["points"])} for k, v in view.state["scores"].items()}}
    for _, directory in view.recent:  # (the recent records on top of the settled: a copy, the digest unchanged)
        r = _read_record(storage, directory)
        if r is not None:
            _take_record(state, r)
    last = [DecisionRecord(**d) for d in state["last"]]
    scores = {k: [(float(t), float(s)) for t, s in v["points"]] for k, v in state["scores"].items()}
    return DecisionHistory(state["accepted"], state["rejected_played"], state["rejected_unplayed"], last, scores)


# --- accepted models ---------------------------------------------------------------------------

ModelOf = Callable[[str, float], "tuple[str, int] | None"]  # (path, mtime) -> (name, samples trained) or None


def _model_point(storage: Storage, sgf_root: str, model_of: ModelOf, mtime: float, path: str) -> ModelPoint | None:
    model = model_of(path, mtime)
    if model is None:
        return None
    name, samples = model
    r = _read_record(storage, posixpath.join(sgf_root, name))
    when = r.time if r is not None and r.decision == decisions.ACCEPTED else mtime
    return ModelPoint(name, mtime, when, samples)


def _empty_models() -> dict:
    return {"count": 0, "newest": None, "points": digest.Decimated.empty()}


def _check_models(state: dict) -> None:
    if not isinstance(state["count"], int) or state["count"] < 0:
        raise ValueError("bad count")
    newest = state["newest"]
    if newest is not None and not (isinstance(newest, list) and len(newest) == 4):
        raise ValueError("bad newest")
    digest.Decimated.check(state["points"], 4)
    for row in state["points"]["points"] + ([newest] if newest is not None else []):
        _point_of(row)


def _point_of(row: list) -> ModelPoint:
    """A model point from a digest's row (ValueError, TypeError: not one)."""
    name, mtime, when, samples = row
    if not isinstance(name, str):
        raise ValueError("bad model name")
    return ModelPoint(name, float(mtime), float(when), int(samples))


def model_digest(storage: Storage, models_dir: str, sgf_root: str, path: str, model_of: ModelOf,
                 settle_s: float = digest.SETTLE_S) -> digest.Digest:
    def fold(state: dict, entries: list[digest.Entry]) -> None:
        for mtime, directory in entries:
            p = _model_point(storage, sgf_root, model_of, mtime, directory)
            if p is None:
                continue
            state["count"] += 1
            row = [p.name, p.mtime, p.when, p.samples_trained]
            if state["newest"] is None or (p.mtime, p.name) > (state["newest"][1], state["newest"][0]):
                state["newest"] = row  # (settled: dated in the past, so modellist's order is by mtime, then name)
            digest.Decimated.add(state["points"], row, MAX_POINTS)

    return digest.Digest(storage, models_dir, path, "models/1", _empty_models, fold, _check_models, settle_s)


def model_history(storage: Storage, sgf_root: str, model_of: ModelOf, d: digest.Digest,
                  now: float | None = None) -> ModelHistory:
    now = time.time() if now is None else now
    view = d.view(now)
    state = view.state
    points = [_point_of(row) for row in state["points"]["points"]]
    newest = _point_of(state["newest"]) if state["newest"] is not None else None
    count = state["count"]
    for mtime, path in modellist.ranked(view.recent, now):
        p = _model_point(storage, sgf_root, model_of, mtime, path)
        if p is None:
            continue
        count += 1
        points.append(p)
        if newest is None or modellist.rank_key(p.mtime, p.name, now) > modellist.rank_key(newest.mtime, newest.name,
                                                                                          now):
            newest = p  # (modellist's order: one dated in the future ranks below the rest)
    return ModelHistory(count, newest, points)
