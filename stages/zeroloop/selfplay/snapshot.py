"""Saved games in progress: the file format of one batch of them.

A batch file (``selfplay/<model>/inprogress/*.npz``, see
``zeroloop.selfplay.inprogress`` for the directory protocol) holds games a
self-play process has not finished writing:

- games still being played (``GameState``): rules, komi, board size, move
  limit, the moves so far, the model that started the game and any model
  switches, every recorded full-search move (packed input planes, global
  features, policy target, the model that searched it, its row weight,
  policy surprise, the net's own value and the next turn's search
  distribution), each move's root value and score, and whether the
  search in progress was a full or a cheap one. Nothing else is needed to
  continue: the board is the replay of the moves, and the search's other
  randomness is drawn afresh. The search tree is not saved; a
  resumed game starts a fresh search at its position, which costs one
  search's visits.
- finished games whose rows are not all in tdata yet (``PendingGame``): the
  rows themselves, the SGF line, and the tdata files already named for them,
  so that an adopter can tell which rows a crashed writer had published.

The file is an ``.npz`` read with ``allow_pickle=False``: numeric arrays,
plus a ``header`` member holding UTF-8 JSON (versions, per-game scalars).
Nothing in it is trusted: ``decode`` checks every array's dtype and shape,
every offset and value range, and raises ``SnapshotError`` naming the
problem. A file from another snapshot format, feature, row or rules version
raises ``IncompatibleSnapshot`` and is never half-read; the one exception is
an older row format that ``rows.upgrade`` reads (``READABLE_ROW_FORMATS``). Arrays are deflated
at level 1 (a few times faster than numpy's default for a little more space):
the save at SIGTERM must fit a pod's grace period.
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from dataclasses import dataclass, field

import numpy as np

from zeroloop import features, rows
from zeroloop.errors import ConfigError, DataFileError
from zeroloop.go import board as B
from zeroloop.go.rules import RULES_VERSION, Rules
from zeroloop.selfplay.gamestate import GameState, RecordedMove
from zeroloop.selfplay.writer import PendingGame

FORMAT_VERSION = 1
READABLE_ROW_FORMATS = (2, 3)  # pending rows of format 2 gain the TD columns (masked) on reading
HEADER = "header"
_FILE_NAME = re.compile(r"^[0-9a-f]{16}$")  # storage.unique_name()


class SnapshotError(DataFileError):
    """A saved-games file is unreadable or malformed."""


class IncompatibleSnapshot(SnapshotError):
    """A saved-games file from another format, feature, row or rules version."""


@dataclass
class Snapshot:
    batch: str
    pos_len: int
    playing: list[GameState] = field(default_factory=list)
    pending: list[PendingGame] = field(default_factory=list)
    saved_at: float = 0.0
    process: str = ""
    feature_version: int = features.FEATURE_VERSION  # of the recorded inputs (zeroloop.features)

    @property
    def game_ids(self) -> list[int]:
        return [g.game_id for g in self.playing] + [p.game_id for p in self.pending]


def versions(feature_version: int = features.FEATURE_VERSION) -> dict[str, int]:
    """What a file must match to be read by this code (its inputs: any feature version, its shapes matching)."""
    num_spatial, num_global = features.shape(feature_version)
    return {"format": FORMAT_VERSION, "feature_version": feature_version,
            "row_format_version": rows.ROW_FORMAT_VERSION, "rules_version": RULES_VERSION,
            "num_spatial": num_spatial, "num_global": num_global}


# --- writing --------------------------------------------------------------------


def encode(snap: Snapshot) -> bytes:
    """The file's bytes."""
    p = snap.pos_len
    num_spatial, num_global = features.shape(snap.feature_version)
    models: dict[str, int] = {}
    games, moves, move_off, values, scores = [], [], [0], [], []
    recs: list[RecordedMove] = []
    rec_off = [0]
    for st in snap.playing:
        games.append({"size": st.size, "ko": st.rules.ko_rule, "suicide": st.rules.multi_stone_suicide,
                      "komi": st.komi, "max_moves": st.max_moves, "model": st.model,
                      "switches": [[t, m] for t, m in st.switches], "full_search": st.full_search,
                      "policy_init": st.policy_init_moves, "handicap": st.handicap_stones})
        moves.extend(st.moves)
        move_off.append(len(moves))
        values.extend((st.root_values + [math.nan] * len(st.moves))[:len(st.moves)])
        scores.extend((st.root_scores + [math.nan] * len(st.moves))[:len(st.moves)])
        recs.extend(st.recorded)
        rec_off.append(len(recs))
    arrays = {
        "game_id": np.array([st.game_id for st in snap.playing], dtype=np.int64),
        "moves": np.array(moves, dtype=np.int16),
        "move_off": np.array(move_off, dtype=np.int64),
        "rec_planes": _stack([r.planes for r in recs], np.uint8, (num_spatial, rows.packed_len(p))),
        "rec_glob": _stack([r.glob for r in recs], np.float32, (num_global,)),
        "rec_policy": _stack([r.policy for r in recs], np.float32, (p * p + 1,)),
        "rec_turn": np.array([r.turn for r in recs], dtype=np.int32),
        "rec_to_move": np.array([r.to_move for r in recs], dtype=np.int8),
        "rec_model": np.array([models.setdefault(r.model, len(models)) for r in recs], dtype=np.int32),
        "rec_off": np.array(rec_off, dtype=np.int64),
        "root_values": np.array(values, dtype=np.float32),
        "root_scores": np.array(scores, dtype=np.float32),
        "rec_weight": np.array([r.weight for r in recs], dtype=np.float32),
        "rec_policy_surprise": np.array([r.policy_surprise for r in recs], dtype=np.float32),
        "rec_nn_value": np.array([r.nn_value for r in recs], dtype=np.float32),
        "pending_id": np.array([g.game_id for g in snap.pending], dtype=np.int64),
        "pending_off": np.cumsum([0] + [g.num_rows for g in snap.pending]).astype(np.int64),
    }
    if any(r.next_policy is not None for r in recs):  # (only with opponent_policy_from_search: kept small)
        arrays["rec_next_policy"] = _stack([np.zeros(p * p + 1, np.float32) if r.next_policy is None
                                            else r.next_policy for r in recs], np.float32, (p * p + 1,))
    pend_rows = rows.concat([g.rows for g in snap.pending]) if snap.pending else rows.empty(0, p, snap.feature_version)
    for k in rows.SPECS:
        arrays["pending_" + k] = pend_rows[k]
    header = {
        **versions(snap.feature_version), "batch": snap.batch, "pos_len": p, "saved_at": snap.saved_at, "process": snap.process,
        "models": list(models), "games": games,
        "pending": [{"model_dir": g.model_dir, "sgf": g.sgf, "sgf_file": g.sgf_file,
                     "pieces": [list(x) for x in g.pieces]} for g in snap.pending],
    }
    arrays[HEADER] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, a in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def _stack(items: list[np.ndarray], dtype, tail: tuple[int, ...]) -> np.ndarray:
    return np.stack(items).astype(dtype, copy=False) if items else np.zeros((0, *tail), dtype=dtype)


# --- reading --------------------------------------------------------------------


def read_header(f, name: str) -> dict:
    """The header of a file object (the other members are not read); checks versions."""
    try:
        with zipfile.ZipFile(f) as z, z.open(HEADER + ".npy") as member:
            raw = np.lib.format.read_array(member, allow_pickle=False)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise SnapshotError(f"{name}: unreadable ({e})") from None
    return _header(raw, name)


def decode(data: bytes, name: str) -> Snapshot:
    """A whole file, checked; raises SnapshotError (IncompatibleSnapshot for other versions)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise SnapshotError(f"{name}: unreadable ({e})") from None
    if HEADER not in arrays:
        raise SnapshotError(f"{name}: no header")
    h = _header(arrays[HEADER], name)
    try:
        return _decode(h, arrays, name)
    except ConfigError as e:  # bad rules or komi
        raise SnapshotError(f"{name}: {e}") from None
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise SnapshotError(f"{name}: malformed ({type(e).__name__}: {e})") from None


def game_ids(data: bytes) -> list[int]:
    """The game ids in a file, read leniently (for naming the games of a file being discarded)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            parts = [z[k] for k in ("game_id", "pending_id") if k in z.files]
        return [int(i) for a in parts if a.dtype == np.int64 and a.ndim == 1 for i in a]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return []


def _header(raw: np.ndarray, name: str) -> dict:
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise SnapshotError(f"{name}: header is not JSON bytes")
    try:
        h = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, ValueError) as e:
        raise SnapshotError(f"{name}: header is not JSON ({e})") from None
    if not isinstance(h, dict):
        raise SnapshotError(f"{name}: header is not a JSON object")
    fv = h.get("feature_version")
    if not isinstance(fv, int) or fv not in features.SHAPES:
        raise IncompatibleSnapshot(f"{name}: feature_version {fv!r}, this self-play encodes "
                                   f"{', '.join(map(str, sorted(features.SHAPES)))}")
    for key, want in versions(fv).items():
        if key == "row_format_version" and h.get(key) in READABLE_ROW_FORMATS:
            continue
        if h.get(key) != want:
            why = f" (feature_version {fv} has {want})" if key.startswith("num_") else f", this self-play needs {want}"
            raise IncompatibleSnapshot(f"{name}: {key} {h.get(key)!r}{why}")
    pos_len = h.get("pos_len")
    if not isinstance(pos_len, int) or not B.MIN_SIZE <= pos_len <= B.MAX_SIZE:
        raise SnapshotError(f"{name}: bad pos_len {pos_len!r}")
    if not isinstance(h.get("batch"), str) or not _FILE_NAME.match(h["batch"]):
        raise SnapshotError(f"{name}: bad batch id {h.get('batch')!r}")
    if not isinstance(h.get("games"), list) or not isinstance(h.get("pending"), list):
        raise SnapshotError(f"{name}: header lacks games or pending")
    return h


def _array(arrays: dict, key: str, dtype, tail: tuple[int, ...], n: int | None, name: str) -> np.ndarray:
    a = arrays.get(key)
    if a is None:
        raise SnapshotError(f"{name}: missing array {key}")
    if a.dtype != np.dtype(dtype) or a.shape[1:] != tail or (n is not None and a.shape[0] != n):
        want = (n if n is not None else "N", *tail)
        raise SnapshotError(f"{name}: {key} is {a.dtype}{a.shape}, expected {np.dtype(dtype)}{want}")
    return a


def _recorded_extras(arrays: dict, r: int, area: int, num_moves: int, name: str) -> dict[str, np.ndarray]:
    """Row weights, surprise inputs, next-turn policies and root values: checked, or their defaults in a
    file saved before they were kept."""
    defaults = {"rec_weight": (np.ones(r), (), r), "rec_policy_surprise": (np.zeros(r), (), r),
                "rec_nn_value": (np.full(r, np.nan), (), r), "rec_next_policy": (np.zeros((r, area)), (area,), r),
                "root_values": (np.full(num_moves, np.nan), (), num_moves),
                "root_scores": (np.full(num_moves, np.nan), (), num_moves)}
    out = {}
    for key, (default, tail, n) in defaults.items():
        out[key] = _array(arrays, key, np.float32, tail, n, name) if key in arrays else default.astype(np.float32)
    weight, surprise, nxt = out["rec_weight"], out["rec_policy_surprise"], out["rec_next_policy"]
    values = np.concatenate([out["rec_nn_value"], out["root_values"]])
    if not (np.all((weight >= 0) & (weight <= 1)) and np.all(np.isfinite(surprise) & (surprise >= 0))
            and np.all(np.isnan(values) | (np.abs(values) <= 1 + 1e-4))):
        raise SnapshotError(f"{name}: a recorded row weight, surprise or value is out of range")
    if not np.all(np.isnan(out["root_scores"]) | (np.abs(out["root_scores"]) <= 2 * B.MAX_AREA)):
        raise SnapshotError(f"{name}: a root score is out of range")
    sums = nxt.sum(axis=1) if r else np.zeros(0)
    if not (np.all(np.isfinite(nxt)) and np.all(nxt >= 0) and np.all((sums == 0) | (np.abs(sums - 1) <= 1e-3))):
        raise SnapshotError(f"{name}: a recorded next-turn policy is not a distribution")
    return out


def _offsets(a: np.ndarray, total: int, key: str, name: str) -> list[int]:
    if a[0] != 0 or a[-1] != total or np.any(np.diff(a) < 0):
        raise SnapshotError(f"{name}: {key} is not a valid offset table")
    return a.tolist()


def _model_name(x, what: str, name: str) -> str:
    if not isinstance(x, str) or len(x.encode()) > rows.MODEL_NAME_LEN:
        raise SnapshotError(f"{name}: {what} {x!r} is not a model name")
    return x


def _decode(h: dict, arrays: dict, name: str) -> Snapshot:
    p = h["pos_len"]
    area = p * p + 1
    games, pend = h["games"], h["pending"]
    n, m = len(games), len(pend)
    models = [_model_name(x, "model", name) for x in h.get("models", [])]
    ids = _array(arrays, "game_id", np.int64, (), n, name)
    moves = _array(arrays, "moves", np.int16, (), None, name)
    move_off = _offsets(_array(arrays, "move_off", np.int64, (), n + 1, name), len(moves), "move_off", name)
    turns = _array(arrays, "rec_turn", np.int32, (), None, name)
    r = len(turns)
    fv = h["feature_version"]
    num_spatial, num_global = features.shape(fv)
    planes = _array(arrays, "rec_planes", np.uint8, (num_spatial, rows.packed_len(p)), r, name)
    glob = _array(arrays, "rec_glob", np.float32, (num_global,), r, name)
    policy = _array(arrays, "rec_policy", np.float32, (area,), r, name)
    to_move = _array(arrays, "rec_to_move", np.int8, (), r, name)
    rec_model = _array(arrays, "rec_model", np.int32, (), r, name)
    rec_off = _offsets(_array(arrays, "rec_off", np.int64, (), n + 1, name), r, "rec_off", name)
    if r and (np.any(rec_model < 0) or np.any(rec_model >= len(models))):
        raise SnapshotError(f"{name}: rec_model indexes past the model table")
    if not (np.all(np.isfinite(glob)) and np.all(np.isfinite(policy)) and np.all(policy >= 0)):
        raise SnapshotError(f"{name}: recorded inputs or policy targets are not finite and non-negative")
    if r and np.any(np.abs(policy.sum(axis=1) - 1) > 1e-3):
        raise SnapshotError(f"{name}: a recorded policy target does not sum to 1")
    extra = _recorded_extras(arrays, r, area, len(moves), name)
    playing = []
    for i, g in enumerate(games):
        size, max_moves = g["size"], g["max_moves"]
        if not (isinstance(size, int) and B.MIN_SIZE <= size <= p and isinstance(max_moves, int) and max_moves >= 1):
            raise SnapshotError(f"{name}: game {i} has size {size!r} (pos_len {p}), max_moves {max_moves!r}")
        rules = Rules(g["ko"], bool(g["suicide"]), float(g["komi"]))
        mv = moves[move_off[i]:move_off[i + 1]].astype(np.int64)
        if np.any(mv < 0) or np.any(mv > size * size) or len(mv) >= max_moves:
            raise SnapshotError(f"{name}: game {i} has a move off its {size}x{size} board or past its limit")
        st = GameState(int(ids[i]), size, rules, max_moves, _model_name(g["model"], "model", name), mv.tolist())
        st.root_values = extra["root_values"][move_off[i]:move_off[i + 1]].astype(float).tolist()
        st.root_scores = extra["root_scores"][move_off[i]:move_off[i + 1]].astype(float).tolist()
        st.full_search = g.get("full_search")
        st.policy_init_moves = g.get("policy_init", 0)
        st.handicap_stones = g.get("handicap", 0)
        if not (isinstance(st.policy_init_moves, int) and isinstance(st.handicap_stones, int)
                and 0 <= 2 * st.handicap_stones <= st.policy_init_moves <= max_moves):
            raise SnapshotError(f"{name}: game {i} has policy_init {st.policy_init_moves!r}, handicap "
                                f"{st.handicap_stones!r}")
        if not (st.full_search is None or isinstance(st.full_search, bool)):
            raise SnapshotError(f"{name}: game {i} has full_search {st.full_search!r}")
        last = 0
        for t, model in g["switches"]:
            if not (isinstance(t, int) and last <= t <= len(mv)):
                raise SnapshotError(f"{name}: game {i} has a model switch at turn {t!r}")
            st.switches.append((t, _model_name(model, "switch model", name)))
            last = t
        prev = -1
        for j in range(rec_off[i], rec_off[i + 1]):
            t = int(turns[j])
            colour = B.BLACK if t % 2 == 0 else B.WHITE
            if not prev < t < len(mv) or int(to_move[j]) != colour:
                raise SnapshotError(f"{name}: game {i} has a recorded move at turn {t} out of order")
            prev = t
            nxt = extra["rec_next_policy"][j]
            st.recorded.append(RecordedMove(t, colour, planes[j], glob[j], policy[j], models[int(rec_model[j])],
                                            float(extra["rec_weight"][j]), float(extra["rec_policy_surprise"][j]),
                                            float(extra["rec_nn_value"][j]), nxt if nxt.any() else None))
        playing.append(st)
    pending_id = _array(arrays, "pending_id", np.int64, (), m, name)
    prow = {k: arrays.get("pending_" + k) for k in rows.SPECS}
    if any(v is None for v in prow.values()):
        raise SnapshotError(f"{name}: missing pending rows")
    rows.upgrade(prow)
    total = rows.validate(prow, name + " pending rows", p, fv)
    poff = _offsets(_array(arrays, "pending_off", np.int64, (), m + 1, name), total, "pending_off", name)
    pending = []
    for i, g in enumerate(pend):
        model_dir = _model_name(g["model_dir"], "model_dir", name)
        if model_dir in ("", ".", "..") or "/" in model_dir or ".tmp" in model_dir:
            raise SnapshotError(f"{name}: pending game {i} has model_dir {model_dir!r}")
        count = poff[i + 1] - poff[i]
        pieces = []
        for piece in g["pieces"]:
            fname, a, b = piece
            if not (isinstance(fname, str) and _FILE_NAME.match(fname) and isinstance(a, int)
                    and isinstance(b, int) and 0 <= a <= b <= count):
                raise SnapshotError(f"{name}: pending game {i} has a bad planned file {piece!r}")
            pieces.append((fname, a, b))
        sgf, sgf_file = g["sgf"], g["sgf_file"]
        if not (sgf is None or isinstance(sgf, str)) or not (sgf_file is None or _FILE_NAME.match(str(sgf_file))):
            raise SnapshotError(f"{name}: pending game {i} has a bad SGF entry")
        pending.append(PendingGame(int(pending_id[i]), model_dir, rows.take(prow, slice(poff[i], poff[i + 1])),
                                   sgf, h["batch"], pieces, sgf_file))
    all_ids = [g.game_id for g in playing] + [g.game_id for g in pending]
    if len(set(all_ids)) != len(all_ids):
        raise SnapshotError(f"{name}: a game appears twice")
    saved_at = h.get("saved_at")
    if not isinstance(saved_at, (int, float)) or not math.isfinite(saved_at):
        raise SnapshotError(f"{name}: bad saved_at {saved_at!r}")
    return Snapshot(str(h["batch"]), p, playing, pending, float(saved_at), str(h.get("process", "")), fv)
