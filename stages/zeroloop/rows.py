"""Training rows: the one format self-play writes and shuffle/train read.

A tdata file is an ``.npz`` of arrays with a leading row axis N (names after
KataGo's where the meaning matches); every array is listed in ``SPECS`` with
its dtype and per-row shape for a data board length ``pos_len`` (the net's
board size; smaller boards sit top-left, padded):

- ``binaryInputNCHWPacked`` uint8 (C, ceil(P*P/8)): the spatial input planes
  of ``zeroloop.features``, each bit-packed (``np.packbits``) over P*P.
- ``globalInputNC`` float32 (G,): the global input features.
- ``policyTargetsNCMove`` float32 (2, P*P+1): C0 the search's policy target
  (pruned visit distribution, sums to 1); C1 the opponent's next move
  (one-hot, or with self-play's ``opponent_policy_from_search`` the next
  turn's search distribution, summing to 1; zero after the last move).
  Pass is the last entry.
- ``globalTargetsNC`` float32 (21,): see ``GT_*``: the game result
  win/loss/draw and the final score for the player to move, target weights.
  ``GT_ROW_WEIGHT`` multiplies every loss term of the row: 1, or with
  self-play's reduced visits and surprise weighting any value >= 0 (a
  game's weights then sum to about its row count). Then KataGo's
  short-term (TD) value targets (``zeroloop.selfplay.tdtargets``):
  ``GT_TD_WEIGHT`` (1 where the row has them, 0 masks them), win/loss/draw
  at ``GT_TD_VALUE`` and the score at ``GT_TD_SCORE`` for each of the
  three horizons (long, mid, short).
- ``valueTargetsNCHW`` int8 (1, P, P): final ownership, +1 the mover's.
- ``metaNC`` int32 (7,): see ``META_*``: board size, turn, komi, ..., and
  ``META_MODEL_SWITCH``: flags of a game that changed models mid-game (a
  saved game finished by another process with its newer model), KataGo's
  "earlier net started this game" and "earlier net made this move".
- ``gameIdN`` int64: the game a row comes from (random per game).
- ``modelN`` bytes (S64): the model whose search made the row.

Files are read with ``allow_pickle=False``: nothing from the shared volume is
unpickled. Files written before the model-switch column (format 1, six
metaNC columns) read with that column 0, and files from before the TD
targets (formats 1 and 2, eight globalTargetsNC columns) with TD weight 0
(``upgrade``). A file that
cannot be read raises ``DataFileError``; one whose content is malformed
raises its subclass ``CorruptFileError`` (reading again will not help: the
shuffler quarantines such files). A file's row count and data board length are also written beside it as
``<name>.json`` (``{"num_rows": N, "pos_len": P}``) so the shuffler need not
open every file.
"""

from __future__ import annotations

import io
import json
import posixpath
import zipfile
from dataclasses import dataclass

import numpy as np

from zeroloop.errors import CorruptFileError, DataFileError
from zeroloop.storage import Storage

ROW_FORMAT_VERSION = 3  # 2: metaNC gained META_MODEL_SWITCH; 3: globalTargetsNC gained the TD targets

# globalTargetsNC columns (mover's view).
GT_WIN, GT_LOSS, GT_DRAW, GT_SCORE = 0, 1, 2, 3
GT_POLICY_WEIGHT = 4  # 1 for a recorded full search
GT_OPP_POLICY_WEIGHT = 5  # 0 where there is no next move
GT_ROW_WEIGHT = 6  # >= 0: 1, or reduced-visit and surprise weights (zeroloop.selfplay.weighting)
GT_OWNERSHIP_WEIGHT = 7
GT_TD_WEIGHT = 8  # 1: the row has TD targets; 0 (rows from before them, or without a search's values): masked
TD_HORIZONS = 3  # long, mid, short (KataGo's order)
GT_TD_VALUE = 9  # win, loss, draw of each horizon: columns GT_TD_VALUE + 3*h + (0, 1, 2)
GT_TD_SCORE = GT_TD_VALUE + 3 * TD_HORIZONS  # the score of each horizon: GT_TD_SCORE + h
NUM_GLOBAL_TARGETS = GT_TD_SCORE + TD_HORIZONS
OLD_GLOBAL_TARGETS = 8  # formats 1 and 2

# metaNC columns.
META_BOARD_SIZE, META_TURN, META_KOMI_X2, META_GAME_LENGTH, META_TO_MOVE, META_VERSION, META_MODEL_SWITCH = range(7)
NUM_META = 7
# META_MODEL_SWITCH bits.
SWITCH_IN_GAME = 1  # the game was played by more than one model (an earlier one started it)
SWITCH_EARLIER_MODEL_ROW = 2  # this row's search used an earlier model than the one that finished the game
MODEL_NAME_LEN = 64


@dataclass(frozen=True)
class ArraySpec:
    dtype: np.dtype
    shape: object  # callable (pos_len, feature version = 1) -> per-row shape


def _features():
    """zeroloop.features, imported when a row's shape is first needed: counting rows (the loop, the report)
    does not pay for numba."""
    from zeroloop import features

    return features


def packed_len(pos_len: int) -> int:
    return (pos_len * pos_len + 7) // 8


SPECS: dict[str, ArraySpec] = {
    "binaryInputNCHWPacked": ArraySpec(np.dtype(np.uint8), lambda P, F=1: (_features().shape(F)[0], packed_len(P))),
    "globalInputNC": ArraySpec(np.dtype(np.float32), lambda P, F=1: (_features().shape(F)[1],)),
    "policyTargetsNCMove": ArraySpec(np.dtype(np.float32), lambda P, F=1: (2, P * P + 1)),
    "globalTargetsNC": ArraySpec(np.dtype(np.float32), lambda P, F=1: (NUM_GLOBAL_TARGETS,)),
    "valueTargetsNCHW": ArraySpec(np.dtype(np.int8), lambda P, F=1: (1, P, P)),
    "metaNC": ArraySpec(np.dtype(np.int32), lambda P, F=1: (NUM_META,)),
    "gameIdN": ArraySpec(np.dtype(np.int64), lambda P, F=1: ()),
    "modelN": ArraySpec(np.dtype(f"S{MODEL_NAME_LEN}"), lambda P, F=1: ()),
}


def empty(n: int, pos_len: int, feature_version: int = 1) -> dict[str, np.ndarray]:
    """Zeroed arrays for n rows (inputs of a feature version, ``zeroloop.features``)."""
    return {k: np.zeros((n, *s.shape(pos_len, feature_version)), dtype=s.dtype) for k, s in SPECS.items()}


def feature_version_of(arrays: dict[str, np.ndarray], name: str = "rows") -> int:
    """The feature version of a row set's inputs, from its plane count (12: version 1, 22: version 2)."""
    planes = arrays["binaryInputNCHWPacked"]
    if planes.ndim == 3:
        for version, (num_spatial, _) in _features().SHAPES.items():
            if planes.shape[1] == num_spatial:
                return version
    raise CorruptFileError(f"{name}: binaryInputNCHWPacked has shape {planes.shape}, which no feature version has")


def pack_planes(planes: np.ndarray) -> np.ndarray:
    """(N, C, P, P) binary planes -> (N, C, ceil(P*P/8)) uint8."""
    n, c = planes.shape[:2]
    return np.packbits(planes.reshape(n, c, -1).astype(np.uint8), axis=2)


def unpack_planes(packed: np.ndarray, pos_len: int) -> np.ndarray:
    """Inverse of pack_planes, as float32 (N, C, P, P)."""
    n, c = packed.shape[:2]
    bits = np.unpackbits(packed, axis=2, count=pos_len * pos_len)
    return bits.reshape(n, c, pos_len, pos_len).astype(np.float32)


def pos_len_of(arrays: dict[str, np.ndarray]) -> int:
    """The data board length of a row set (from the ownership targets)."""
    return int(arrays["valueTargetsNCHW"].shape[-1])


def validate(arrays: dict[str, np.ndarray], name: str = "rows", pos_len: int | None = None,
             feature_version: int | None = None) -> int:
    """Check keys, dtypes and shapes; return the row count or raise CorruptFileError.

    feature_version: the inputs the rows must hold (default: whichever version their plane count is).
    """
    missing = [k for k in SPECS if k not in arrays]
    if missing:
        raise CorruptFileError(f"{name}: missing arrays {', '.join(missing)}")
    if pos_len is None:
        v = arrays["valueTargetsNCHW"]
        if v.ndim != 4:
            raise CorruptFileError(f"{name}: valueTargetsNCHW has shape {v.shape}, expected (N, 1, P, P)")
        pos_len = int(v.shape[-1])
    got = feature_version_of(arrays, name)
    if feature_version is not None and got != feature_version:
        raise CorruptFileError(f"{name}: rows of feature version {got}, expected version {feature_version}")
    n = None
    for key, spec in SPECS.items():
        a = arrays[key]
        want = spec.shape(pos_len, got)
        if a.dtype != spec.dtype:
            raise CorruptFileError(f"{name}: {key} has dtype {a.dtype}, expected {spec.dtype}")
        if a.shape[1:] != tuple(want):
            raise CorruptFileError(f"{name}: {key} has shape {a.shape}, expected (N, {', '.join(map(str, want))})")
        if n is None:
            n = a.shape[0]
        elif a.shape[0] != n:
            raise CorruptFileError(f"{name}: {key} has {a.shape[0]} rows, others have {n}")
    return int(n or 0)


def concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    versions = {feature_version_of(p) for p in parts}
    if len(versions) > 1:
        raise CorruptFileError(f"rows of feature versions {sorted(versions)} cannot be mixed")
    return {k: np.concatenate([p[k] for p in parts]) for k in SPECS}


def take(arrays: dict[str, np.ndarray], index) -> dict[str, np.ndarray]:
    return {k: arrays[k][index] for k in SPECS}


def to_bytes(arrays: dict[str, np.ndarray], compress: bool = True, level: int | None = None) -> bytes:
    """The npz bytes; level (1-9) picks the deflate level (None: numpy's default, 6).

    Level 1 is about 5x faster than 6 for ~10% more bytes: the shuffler uses it.
    """
    buf = io.BytesIO()
    if not compress or level is None:
        (np.savez_compressed if compress else np.savez)(buf, **{k: arrays[k] for k in SPECS})
        return buf.getvalue()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        for k in SPECS:
            with zf.open(k + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(arrays[k]), allow_pickle=False)
    return buf.getvalue()


def from_bytes(data: bytes, name: str = "rows", pos_len: int | None = None,
               feature_version: int | None = None) -> dict[str, np.ndarray]:
    """Parse and validate an npz; raise CorruptFileError naming the problem."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k in SPECS}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise CorruptFileError(f"{name}: unreadable npz ({e})") from None
    upgrade(arrays)
    validate(arrays, name, pos_len, feature_version)
    return arrays


def upgrade(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rows of older formats as this one, in place: format 1's metaNC gains META_MODEL_SWITCH (no model
    switch), formats 1-2's globalTargetsNC the TD columns (zero, so GT_TD_WEIGHT 0 masks them)."""
    meta = arrays.get("metaNC")
    if meta is not None and meta.ndim == 2 and meta.shape[1] == NUM_META - 1:
        arrays["metaNC"] = np.concatenate([meta, np.zeros((len(meta), 1), dtype=meta.dtype)], axis=1)
    gt = arrays.get("globalTargetsNC")
    if gt is not None and gt.ndim == 2 and gt.shape[1] == OLD_GLOBAL_TARGETS:
        pad = np.zeros((len(gt), NUM_GLOBAL_TARGETS - OLD_GLOBAL_TARGETS), dtype=gt.dtype)
        arrays["globalTargetsNC"] = np.concatenate([gt, pad], axis=1)
    return arrays


def count_path(npz_path: str) -> str:
    """Where a tdata file's row count lives: <name>.json beside it."""
    return npz_path[: -len(".npz")] + ".json"


def write(storage: Storage, path: str, arrays: dict[str, np.ndarray], compress: bool = True) -> int:
    """Publish rows at path (count file first, then the npz); return rows."""
    n = validate(arrays, path)
    info = {"num_rows": n, "pos_len": pos_len_of(arrays)}
    storage.write_bytes(count_path(path), json.dumps(info).encode())
    try:
        storage.write_bytes(path, to_bytes(arrays, compress))
    except BaseException:
        storage.remove(count_path(path))  # no count file for rows that never appeared (a full disk, a kill)
        raise
    return n


def read(storage: Storage, path: str, pos_len: int | None = None) -> dict[str, np.ndarray]:
    try:
        data = storage.read_bytes(path)
    except (FileNotFoundError, OSError) as e:
        raise DataFileError(f"{path}: cannot read ({e})") from None
    return from_bytes(data, path, pos_len)


def count_rows(storage: Storage, path: str) -> int:
    """Rows in a tdata file: from its count file, else from the npz header."""
    return file_info(storage, path)[0]


def file_info(storage: Storage, path: str) -> tuple[int, int]:
    """(rows, pos_len) of a tdata file: from its count file, else the npz headers."""
    try:
        meta = json.loads(storage.read_bytes(count_path(path)))
        n, p = meta["num_rows"], meta.get("pos_len")
        if isinstance(n, int) and n >= 0 and isinstance(p, int) and p > 0:
            return n, p
    except (FileNotFoundError, OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return _info_from_headers(storage, path)


def _header_shape(z: zipfile.ZipFile, key: str) -> tuple[int, ...]:
    with z.open(key + ".npy") as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, _ = np.lib.format.read_array_header_1_0(member)
        else:
            shape, _, _ = np.lib.format.read_array_header_2_0(member)
    return tuple(shape)


def _info_from_headers(storage: Storage, path: str) -> tuple[int, int]:
    try:
        f = storage.fs.open(path, "rb")
    except OSError as e:
        raise DataFileError(f"{path}: cannot read ({e})") from None
    try:
        with f, zipfile.ZipFile(f) as z:
            rows = _header_shape(z, "gameIdN")[0]
            value_shape = _header_shape(z, "valueTargetsNCHW")
        if len(value_shape) != 4:
            raise ValueError(f"valueTargetsNCHW has shape {value_shape}")
        return int(rows), int(value_shape[-1])
    except OSError as e:
        if e.errno is not None:  # the read failed, not the content
            raise DataFileError(f"{path}: cannot read ({e})") from None
        raise CorruptFileError(f"{path}: unreadable npz header ({e})") from None
    except (ValueError, KeyError, IndexError, zipfile.BadZipFile, EOFError) as e:
        raise CorruptFileError(f"{path}: unreadable npz header ({e})") from None


def is_tdata_name(path: str) -> bool:
    base = posixpath.basename(path)
    return base.endswith(".npz") and ".tmp" not in base
