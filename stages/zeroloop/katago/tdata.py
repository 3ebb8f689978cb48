"""KataGo self-play rows (the ``.npz`` of ``cpp/dataio/trainingwrite.cpp``) as zeroloop rows.

KataGo writes, per file of N rows on a data board of P x P (its
``dataBoardLen``; smaller boards top-left):

- ``binaryInputNCHWPacked`` uint8 (N, 22, ceil(P*P/8)): inputs v7, each
  plane bit-packed big-endian, as ``np.packbits``;
- ``globalInputNC`` float32 (N, 19);
- ``policyTargetsNCMove`` int16 (N, 2, P*P+1): this move's and the
  opponent's next move's search weights (roughly visits); an absent target
  is all ones with weight 0;
- ``globalTargetsNC`` float32 (N, 80; 64 in format 2): see ``KG_*``;
- ``scoreDistrN`` int8, ``valueTargetsNCHW`` int8 (N, 5, P, P),
  ``qValueTargetsNCMove`` int16, optionally ``metadataInputNC``.

``convert`` keeps zeroloop's planes and globals (``netexport`` maps them),
normalises the policy targets to distributions (zero where their weight is
0), takes the final win / loss / no-result / score (no-result becomes
zeroloop's draw, as export maps draw to no-result), the row, policy,
opponent-policy and ownership weights and the final ownership, and the
short-term (TD) value targets of the three horizons (channels 4-15, the
same long-mid-short averages zeroloop's self-play writes, KataGo's weight
1 - channel 24). Game ids
are KataGo's 64-bit game hash (channels 41-43). Rows zeroloop cannot
represent are skipped and counted by reason (``SKIP_REASONS``).
"""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from zeroloop import rows
from zeroloop.errors import CorruptFileError
from zeroloop.go import board as B
from zeroloop.katago import netexport

NUM_SPATIAL, NUM_GLOBAL = netexport.NUM_SPATIAL, netexport.NUM_GLOBAL
# globalTargetsNC channels (mover's view).
KG_WIN, KG_LOSS, KG_NO_RESULT, KG_SCORE = 0, 1, 2, 3
KG_ROW_WEIGHT, KG_POLICY_WEIGHT, KG_OWNERSHIP_WEIGHT, KG_OPP_POLICY_WEIGHT = 25, 26, 27, 28
KG_ONE_MINUS_VALUE_WEIGHT = 35
KG_TD = 4  # win, loss, no-result, score of horizon h at KG_TD + 4h (long, mid, short)
KG_ONE_MINUS_TD_WEIGHT = 24
KG_HASH = (41, 42, 43)  # hash0 in 22 + 22 + 20 bits
KG_SELF_KOMI = 47
KG_CHANGED_NETS, KG_NETS_BEHIND = 49, 50
KG_TURN = 51
MIN_GLOBAL_TARGETS = 64
# globalInputNC channels of rules zeroloop does not play.
IN_TERRITORY, IN_TAX, IN_TAX_ALL, IN_ENCORE1, IN_ENCORE2, IN_PDA, IN_BUTTON = 9, 10, 11, 12, 13, 15, 17
REQUIRED = {
    "binaryInputNCHWPacked": np.uint8,
    "globalInputNC": np.float32,
    "policyTargetsNCMove": np.int16,
    "globalTargetsNC": np.float32,
    "valueTargetsNCHW": np.int8,
}
SKIP_REASONS = ("territory scoring", "group tax", "encore", "button", "playout doubling",
                "rectangular board", "board larger than pos_len", "value weight below 1")


@dataclass
class Converted:
    arrays: dict[str, np.ndarray]  # zeroloop rows (rows.SPECS)
    rows_in: int
    skipped: Counter = field(default_factory=Counter)


def load_npz(data: bytes, name: str) -> dict[str, np.ndarray]:
    """The arrays of a KataGo npz, checked against trainingwrite.cpp's layout; CorruptFileError if not."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k.removesuffix(".npy"): z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise CorruptFileError(f"{name}: not a readable npz ({e})") from None
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        hint = " (a zeroloop tdata file?)" if "gameIdN" in arrays else ""
        raise CorruptFileError(f"{name}: not KataGo self-play data: missing {', '.join(missing)}{hint}")
    for key, dtype in REQUIRED.items():
        if arrays[key].dtype != dtype:
            raise CorruptFileError(f"{name}: {key} has dtype {arrays[key].dtype}, KataGo writes {np.dtype(dtype)}")
    value = arrays["valueTargetsNCHW"]
    if value.ndim != 4 or value.shape[2] != value.shape[3] or value.shape[1] < 1:
        raise CorruptFileError(f"{name}: valueTargetsNCHW has shape {value.shape}, expected (N, 5, P, P)")
    n, p = value.shape[0], value.shape[3]
    want = {
        "binaryInputNCHWPacked": (n, NUM_SPATIAL, (p * p + 7) // 8),
        "globalInputNC": (n, NUM_GLOBAL),
        "policyTargetsNCMove": (n, 2, p * p + 1),
    }
    for key, shape in want.items():
        if arrays[key].shape != shape:
            raise CorruptFileError(f"{name}: {key} has shape {arrays[key].shape}, expected {shape} "
                                   f"(inputs v7 on a {p}x{p} data board)")
    gt = arrays["globalTargetsNC"]
    if gt.ndim != 2 or gt.shape[0] != n or gt.shape[1] < MIN_GLOBAL_TARGETS:
        raise CorruptFileError(f"{name}: globalTargetsNC has shape {gt.shape}, expected ({n}, 80)")
    for key in ("globalInputNC", "globalTargetsNC"):
        if not np.isfinite(arrays[key]).all():
            raise CorruptFileError(f"{name}: {key} holds NaN or infinite values")
    if (arrays["policyTargetsNCMove"] < 0).any():
        raise CorruptFileError(f"{name}: policyTargetsNCMove holds negative weights")
    return arrays


def board_sizes(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(size, square) per row from the on-board planes (N, P, P): square is False for other shapes."""
    xs = mask.any(axis=1).sum(axis=1)
    ys = mask.any(axis=2).sum(axis=1)
    count = mask.sum(axis=(1, 2))
    square = (xs == ys) & (count == xs * ys) & (xs > 0)
    for i in np.flatnonzero(square):
        square[i] = bool(mask[i, : ys[i], : xs[i]].all())
    return xs, square


def game_ids(gt: np.ndarray) -> np.ndarray:
    """KataGo's 64-bit game hash (hash0), as int64."""
    parts = gt[:, list(KG_HASH)].astype(np.uint64)
    h = parts[:, 0] | (parts[:, 1] << np.uint64(22)) | (parts[:, 2] << np.uint64(44))
    return h.view(np.int64)


def _skip_reasons(glob: np.ndarray, gt: np.ndarray, sizes: np.ndarray, square: np.ndarray,
                  pos_len: int) -> list[tuple[str, np.ndarray]]:
    return [
        ("territory scoring", glob[:, IN_TERRITORY] != 0),
        ("group tax", (glob[:, IN_TAX] != 0) | (glob[:, IN_TAX_ALL] != 0)),
        ("encore", (glob[:, IN_ENCORE1] != 0) | (glob[:, IN_ENCORE2] != 0)),
        ("button", glob[:, IN_BUTTON] != 0),
        ("playout doubling", glob[:, IN_PDA] != 0),
        ("rectangular board", ~square),
        ("board larger than pos_len", sizes > pos_len),
        ("value weight below 1", gt[:, KG_ONE_MINUS_VALUE_WEIGHT] > 0),
    ]


def _normalise(counts: np.ndarray, weight: np.ndarray) -> np.ndarray:
    c = counts.astype(np.float32)
    total = c.sum(axis=-1, keepdims=True)
    ok = (weight > 0)[:, None] & (total > 0)
    return np.where(ok, c / np.where(total > 0, total, 1.0), 0.0).astype(np.float32)


def _crop_points(a: np.ndarray, p: int, q: int) -> np.ndarray:
    """(..., p*p + 1) move vectors -> (..., q*q + 1), keeping the top-left q x q and pass."""
    lead = a.shape[:-1]
    grid = a[..., : p * p].reshape(*lead, p, p)[..., :q, :q].reshape(*lead, q * q)
    return np.concatenate([grid, a[..., -1:]], axis=-1)


def convert(arrays: dict[str, np.ndarray], model: str, pos_len: int | None = None) -> Converted:
    """zeroloop rows of a checked KataGo row set (``load_npz``), on a pos_len grid (default: KataGo's)."""
    p = int(arrays["valueTargetsNCHW"].shape[-1])
    q = p if pos_len is None else int(pos_len)
    n = int(arrays["valueTargetsNCHW"].shape[0])
    planes = np.unpackbits(arrays["binaryInputNCHWPacked"], axis=2, count=p * p).reshape(n, NUM_SPATIAL, p, p)
    glob = arrays["globalInputNC"]
    gt = arrays["globalTargetsNC"]
    sizes, square = board_sizes(planes[:, 0].astype(bool))
    keep = np.ones(n, dtype=bool)
    skipped: Counter = Counter()
    for reason, bad in _skip_reasons(glob, gt, sizes, square, q):
        newly = bad & keep
        if newly.any():
            skipped[reason] += int(newly.sum())
        keep &= ~bad
    idx = np.flatnonzero(keep)
    m = len(idx)
    out = rows.empty(m, q)
    if m:
        g = gt[idx]
        kept = planes[idx][:, list(netexport.SPATIAL_TO_KATAGO), :q, :q]
        out["binaryInputNCHWPacked"][:] = rows.pack_planes(kept)
        out["globalInputNC"][:] = glob[idx][:, list(netexport.GLOBAL_TO_KATAGO)]
        policy = _crop_points(arrays["policyTargetsNCMove"][idx], p, q)
        out["policyTargetsNCMove"][:, 0] = _normalise(policy[:, 0], g[:, KG_POLICY_WEIGHT])
        out["policyTargetsNCMove"][:, 1] = _normalise(policy[:, 1], g[:, KG_OPP_POLICY_WEIGHT])
        t = out["globalTargetsNC"]
        t[:, rows.GT_WIN] = g[:, KG_WIN]
        t[:, rows.GT_LOSS] = g[:, KG_LOSS]
        t[:, rows.GT_DRAW] = g[:, KG_NO_RESULT]
        t[:, rows.GT_SCORE] = g[:, KG_SCORE]
        t[:, rows.GT_POLICY_WEIGHT] = g[:, KG_POLICY_WEIGHT]
        t[:, rows.GT_OPP_POLICY_WEIGHT] = g[:, KG_OPP_POLICY_WEIGHT]
        t[:, rows.GT_ROW_WEIGHT] = g[:, KG_ROW_WEIGHT]
        t[:, rows.GT_OWNERSHIP_WEIGHT] = g[:, KG_OWNERSHIP_WEIGHT]
        t[:, rows.GT_TD_WEIGHT] = np.clip(1.0 - g[:, KG_ONE_MINUS_TD_WEIGHT], 0.0, 1.0)
        for h in range(rows.TD_HORIZONS):
            t[:, rows.GT_TD_VALUE + 3 * h:rows.GT_TD_VALUE + 3 * h + 3] = g[:, KG_TD + 4 * h:KG_TD + 4 * h + 3]
            t[:, rows.GT_TD_SCORE + h] = g[:, KG_TD + 4 * h + 3]
        out["valueTargetsNCHW"][:, 0] = arrays["valueTargetsNCHW"][idx][:, 0, :q, :q]
        ids = game_ids(g)
        out["gameIdN"][:] = ids
        out["metaNC"][:] = _meta(g, sizes[idx], ids)
        out["modelN"][:] = model.encode()[: rows.MODEL_NAME_LEN]
    rows.validate(out, "converted rows", q)
    return Converted(out, n, skipped)


def _meta(g: np.ndarray, sizes: np.ndarray, ids: np.ndarray) -> np.ndarray:
    meta = np.zeros((len(g), rows.NUM_META), dtype=np.int32)
    turn = g[:, KG_TURN].astype(np.int64)
    self_komi = g[:, KG_SELF_KOMI]
    # KataGo records the mover's komi, not the mover: White's komi is the positive one in self-play
    # (komi near fair, >= 0); at komi 0 the turn's parity decides, Black having moved first.
    white = np.where(self_komi != 0, self_komi > 0, turn % 2 == 1)
    length = np.zeros(len(g), dtype=np.int64)
    for gid in np.unique(ids):  # the game's length as far as this file shows it
        same = ids == gid
        length[same] = turn[same].max() + 1
    meta[:, rows.META_BOARD_SIZE] = sizes
    meta[:, rows.META_TURN] = turn
    meta[:, rows.META_KOMI_X2] = np.round(2 * np.where(white, self_komi, -self_komi)).astype(np.int32)
    meta[:, rows.META_GAME_LENGTH] = length
    meta[:, rows.META_TO_MOVE] = np.where(white, B.WHITE, B.BLACK)
    meta[:, rows.META_VERSION] = rows.ROW_FORMAT_VERSION
    switch = np.where(g[:, KG_CHANGED_NETS] > 0, rows.SWITCH_IN_GAME, 0)
    switch |= np.where(g[:, KG_NETS_BEHIND] > 0, rows.SWITCH_EARLIER_MODEL_ROW, 0)
    meta[:, rows.META_MODEL_SWITCH] = switch
    return meta
