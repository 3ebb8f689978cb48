"""KataGo self-play npz -> zeroloop rows (`zeroloop import-katago-data`).

The npz files here are laid out as KataGo's ``trainingwrite.cpp`` writes
them: a zip whose entries are named without ``.npy`` (``ZipFile::writeBuffer``),
each a .npy buffer; inputs v7 bit-packed per plane; int16 policy counts
with all-ones placeholders of weight 0; 80 global-target channels with the
game hash split 22/22/20 bits. Their inputs are zeroloop's features of real
positions placed at KataGo's indices, plus junk in the inputs zeroloop does
not use, so the import must select exactly zeroloop's features.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest

from zeroloop import cli, rows
from zeroloop.errors import CorruptFileError
from zeroloop.go.game import WHITE
from zeroloop.katago import positions, tdata

P = 9


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def katago_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """An npz as trainingwrite.cpp writes it (entries without .npy, deflated)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, a in arrays.items():
            zf.writestr(key, _npy(a))
    return buf.getvalue()


def katago_rows(pos_list: list[dict], p: int = P, seed: int = 0) -> tuple[dict, list]:
    """KataGo-layout rows of the given positions, and each position's (game, zeroloop spatial, glob)."""
    rng = np.random.default_rng(seed)
    n = len(pos_list)
    planes = np.zeros((n, 22, p, p), np.float32)
    glob = np.zeros((n, 19), np.float32)
    policy = np.zeros((n, 2, p * p + 1), np.int16)
    gt = np.zeros((n, 80), np.float32)
    value = np.zeros((n, 5, p, p), np.int8)
    encoded = []
    for i, pos in enumerate(pos_list):
        game, s, g, legal = positions.encode(pos, p)
        ks, kg = positions.katago_inputs(s[None], g[None])
        ks[0, 14:22] = (rng.random((8, p, p)) < 0.3) * s[0]  # ladders, area, encore planes: not zeroloop's
        planes[i], glob[i] = ks[0], kg[0]
        glob[i, 14] = 1.0  # pass would end phase: not zeroloop's either
        moves = np.flatnonzero(legal)
        picked = rng.choice(moves, size=min(5, len(moves)), replace=False)
        policy[i, 0, picked] = rng.integers(1, 300, size=len(picked))
        policy[i, 1] = 1  # absent opponent target: all ones, weight 0
        gt[i, [0, 1, 2, 3]] = [0.0, 1.0, 0.0, -3.5]
        gt[i, 25], gt[i, 26], gt[i, 27], gt[i, 28] = 1.0, 1.0, 1.0, 0.0
        game_hash = (0x1234_5678_9ABC_DEF0 + (i // 2)) & (2**64 - 1)  # two rows per game
        gt[i, 41:44] = [game_hash & 0x3FFFFF, (game_hash >> 22) & 0x3FFFFF, (game_hash >> 44) & 0xFFFFF]
        komi = pos["komi"]
        white = game.to_move == WHITE
        gt[i, 47] = komi if white else -komi
        gt[i, 51] = len(pos["moves"])
        gt[i, 63] = 3.0
        value[i, 0, : game.size, : game.size] = rng.integers(-1, 2, size=(game.size, game.size))
        encoded.append((game, s, g))
    arrays = {
        "binaryInputNCHWPacked": np.packbits(planes.reshape(n, 22, p * p).astype(np.uint8), axis=2),
        "globalInputNC": glob,
        "policyTargetsNCMove": policy,
        "globalTargetsNC": gt,
        "scoreDistrN": np.zeros((n, 2 * (p * p + 60)), np.int8),
        "valueTargetsNCHW": value,
        "qValueTargetsNCMove": np.zeros((n, 3, p * p + 1), np.int16),
    }
    return arrays, encoded


@pytest.fixture(scope="module")
def sample():
    pos = positions.random_positions(11, [5, 7, 9, 9, 7, 5], komis=(7.5, 6.0))
    for p in pos:
        p["komi"] = 7.5 if p["komi"] > 7 else 6.0
    return pos, *katago_rows(pos)


def test_selects_zeroloop_features_and_maps_targets(sample):
    pos, arrays, encoded = sample
    out = tdata.convert(tdata.load_npz(katago_npz(arrays), "x.npz"), "katago-m")
    a = out.arrays
    assert out.rows_in == len(pos) and not out.skipped
    np.testing.assert_array_equal(rows.unpack_planes(a["binaryInputNCHWPacked"], P), np.stack([e[1] for e in encoded]))
    np.testing.assert_array_equal(a["globalInputNC"], np.stack([e[2] for e in encoded]))
    pol = a["policyTargetsNCMove"]
    np.testing.assert_allclose(pol[:, 0].sum(axis=1), 1.0, rtol=1e-6)
    counts = arrays["policyTargetsNCMove"][:, 0]
    np.testing.assert_allclose(pol[:, 0], counts / counts.sum(axis=1, keepdims=True), rtol=1e-6)
    assert (pol[:, 1] == 0).all()  # weight 0: no target, not KataGo's all-ones placeholder
    gt = a["globalTargetsNC"]
    assert (gt[:, rows.GT_LOSS] == 1).all() and (gt[:, rows.GT_SCORE] == -3.5).all()
    assert (gt[:, rows.GT_OPP_POLICY_WEIGHT] == 0).all() and (gt[:, rows.GT_POLICY_WEIGHT] == 1).all()
    np.testing.assert_array_equal(a["valueTargetsNCHW"][:, 0], arrays["valueTargetsNCHW"][:, 0])
    ids = a["gameIdN"]
    assert ids[0] == ids[1] != ids[2] and ids[0] == np.int64(0x1234_5678_9ABC_DEF0)
    meta = a["metaNC"]
    assert list(meta[:, rows.META_BOARD_SIZE]) == [p["size"] for p in pos]
    assert list(meta[:, rows.META_KOMI_X2]) == [round(2 * p["komi"]) for p in pos]
    assert list(meta[:, rows.META_TO_MOVE]) == [e[0].to_move for e in encoded]
    assert meta[0, rows.META_GAME_LENGTH] == max(len(pos[0]["moves"]), len(pos[1]["moves"])) + 1
    assert a["modelN"][0] == b"katago-m"
    assert rows.validate(a, "out", P) == len(pos)


def test_rows_zeroloop_does_not_model_are_skipped_and_counted(sample):
    pos, arrays, _ = sample
    arrays = {k: v.copy() for k, v in arrays.items()}
    glob = arrays["globalInputNC"]
    glob[0, 9] = 1.0  # territory scoring
    glob[1, 17] = 1.0  # button
    glob[2, 10] = 1.0  # seki tax
    glob[3, 15] = 1.0  # playout doubling
    planes = np.unpackbits(arrays["binaryInputNCHWPacked"], axis=2, count=P * P).reshape(len(pos), 22, P, P)
    planes[4, 0] = 0
    planes[4, 0, :5, :7] = 1  # a 7x5 board
    arrays["binaryInputNCHWPacked"] = np.packbits(planes.reshape(len(pos), 22, -1), axis=2)
    out = tdata.convert(tdata.load_npz(katago_npz(arrays), "x.npz"), "m")
    assert dict(out.skipped) == {"territory scoring": 1, "button": 1, "group tax": 1, "playout doubling": 1,
                                 "rectangular board": 1}
    assert len(out.arrays["gameIdN"]) == 1


def test_crops_to_a_smaller_grid_and_skips_larger_boards(sample):
    pos, arrays, encoded = sample
    out = tdata.convert(tdata.load_npz(katago_npz(arrays), "x.npz"), "m", pos_len=7)
    assert out.skipped == {"board larger than pos_len": 2}
    kept = [i for i, p in enumerate(pos) if p["size"] <= 7]
    got = rows.unpack_planes(out.arrays["binaryInputNCHWPacked"], 7)
    want = np.stack([encoded[i][1][:, :7, :7] for i in kept])
    np.testing.assert_array_equal(got, want)
    assert out.arrays["policyTargetsNCMove"].shape == (len(kept), 2, 50)
    np.testing.assert_allclose(out.arrays["policyTargetsNCMove"][:, 0].sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("damage,message", [
    (lambda a: a.pop("globalTargetsNC"), "missing globalTargetsNC"),
    (lambda a: a.__setitem__("policyTargetsNCMove", a["policyTargetsNCMove"].astype(np.float32)), "dtype"),
    (lambda a: a.__setitem__("globalInputNC", a["globalInputNC"][:, :10]), "globalInputNC has shape"),
    (lambda a: a.__setitem__("globalTargetsNC", a["globalTargetsNC"][:-1]), "globalTargetsNC has shape"),
    (lambda a: a["globalTargetsNC"].__setitem__((0, 3), np.nan), "NaN"),
])
def test_malformed_files_get_a_clear_error(sample, damage, message):
    _, arrays, _ = sample
    arrays = {k: v.copy() for k, v in arrays.items()}
    damage(arrays)
    with pytest.raises(CorruptFileError, match=message):
        tdata.load_npz(katago_npz(arrays), "bad.npz")
    with pytest.raises(CorruptFileError, match="not a readable npz"):
        tdata.load_npz(katago_npz(arrays)[:100], "cut.npz")


def test_cli_imports_a_katago_tree_whole_files_only(sample, tmp_path, capsys):
    pos, arrays, _ = sample
    src = tmp_path / "kg" / "selfplay" / "b6c96-s100-d50" / "tdata"
    src.mkdir(parents=True)
    (src / "AAAA.npz").write_bytes(katago_npz(arrays))
    (src / "BBBB.npz.tmp").write_bytes(b"being written")
    bad = {k: v for k, v in arrays.items() if k != "valueTargetsNCHW"}
    (src / "CCCC.npz").write_bytes(katago_npz(bad))
    base = tmp_path / "run"
    assert cli.main(["import-katago-data", str(tmp_path / "kg"), str(base), "--json"]) == 2
    err = capsys.readouterr().err
    assert "CCCC.npz" in err and "missing valueTargetsNCHW" in err
    tdir = base / "selfplay" / "katago-b6c96-s100-d50" / "tdata"
    assert sorted(os.listdir(tdir)) == ["AAAA.json", "AAAA.npz"]  # the good file whole, nothing of the bad
    (src / "CCCC.npz").unlink()
    assert cli.main(["import-katago-data", str(tmp_path / "kg"), str(base), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"files": 0, "files_already_imported": 1, "rows_in": 0,
                                                   "rows_written": 0, "skipped": {}}
    got = rows.read(_storage(), str(tdir / "AAAA.npz"))
    assert len(got["gameIdN"]) == len(pos)
    assert cli.main(["import-katago-data", str(src / "AAAA.npz"), str(base), "--model-name", "kg",
                     "--pos-len", "7"]) == 0
    assert "4 of 6 rows written" in capsys.readouterr().out
    assert rows.file_info(_storage(), str(base / "selfplay" / "kg" / "tdata" / "AAAA.npz")) == (4, 7)
    assert cli.main(["import-katago-data", str(tmp_path / "nothing"), str(base)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["import-katago-data", str(src), str(base), "--pos-len", "99"]) == 2


def _storage():
    import fsspec

    from zeroloop.storage import Storage

    return Storage(fsspec.filesystem("file"))


# A tiny self-play config (keys as in KataGo's cpp/configs/training/selfplay1.cfg; values ours):
# 7x7 and 9x9 (some rectangular), every rules variant, few visits, small files.
SELFPLAY_CONFIG = """\
logSearchInfo = false
logMoves = false
logGamesEvery = 100
logToStdout = false
dataBoardLen = 9
maxDataQueueSize = 100
maxRowsPerTrainFile = 200
firstFileRandMinProp = 1.0
initGamesWithPolicy = true
policyInitAreaProp = 0.04
compensateAfterPolicyInitProb = 0.2
earlyForkGameProb = 0.04
earlyForkGameExpectedMoveProp = 0.025
forkGameProb = 0.01
forkGameMinChoices = 3
earlyForkGameMaxChoices = 12
forkGameMaxChoices = 36
handicapAsymmetricPlayoutProb = 0.0
normalAsymmetricPlayoutProb = 0.0
maxAsymmetricRatio = 2.0
minAsymmetricCompensateKomiProb = 0.4
sidePositionProb = 0.02
cheapSearchProb = 0.5
cheapSearchVisits = 8
cheapSearchTargetWeight = 0.0
reduceVisits = false
reduceVisitsThreshold = 0.9
reduceVisitsThresholdLookback = 3
reducedVisitsMin = 8
reducedVisitsWeight = 0.1
policySurpriseDataWeight = 0.5
valueSurpriseDataWeight = 0.1
estimateLeadProb = 0.0
switchNetsMidGame = false
numGameThreads = 2
maxMovesPerGame = 120
koRules = SIMPLE,POSITIONAL,SITUATIONAL
scoringRules = AREA,TERRITORY
taxRules = NONE,NONE,SEKI
multiStoneSuicideLegals = false,true
hasButtons = false,false,true
bSizes = 7,9
bSizeRelProbs = 1,1
allowRectangleProb = 0.3
komiAuto = false
komiMean = 7.0
komiStdev = 1.0
handicapProb = 0.0
drawRandRadius = 0.5
noResultStdev = 0.166666666
maxVisits = 16
numSearchThreads = 1
nnMaxBatchSize = 4
nnCacheSizePowerOfTwo = 16
nnMutexPoolSizePowerOfTwo = 10
numNNServerThreadsPerModel = 1
nnRandomize = true
chosenMoveTemperatureEarly = 0.75
chosenMoveTemperatureHalflife = 19
chosenMoveTemperature = 0.15
rootNoiseEnabled = true
rootDirichletNoiseTotalConcentration = 10.83
rootDirichletNoiseWeight = 0.25
rootDesiredPerChildVisitsCoeff = 2
"""


@pytest.mark.katago
def test_real_katago_selfplay_output_imports(tmp_path, capsys):
    """KataGo's own self-play (with a zeroloop net exported for it) imports into a run."""
    import subprocess

    from zeroloop.katago import netexport
    from zeroloop.nn.model import random_init_model

    katago = os.environ.get("KATAGO")
    if not katago:
        pytest.skip("set KATAGO to a built katago binary to run this test")
    models = tmp_path / "models" / "zl-b1c16"
    models.mkdir(parents=True)
    (models / "model.bin.gz").write_bytes(netexport.export_bin_gz(random_init_model("b1c16", 9, seed=3), "zl-b1c16"))
    (tmp_path / "selfplay.cfg").write_text(SELFPLAY_CONFIG)
    out = tmp_path / "selfplay"
    subprocess.run([katago, "selfplay", "-output-dir", str(out), "-models-dir", str(tmp_path / "models"),
                    "-config", str(tmp_path / "selfplay.cfg"), "-max-games-total", "12"],
                   check=True, capture_output=True, timeout=600)
    assert list(out.glob("*/tdata/*.npz")), "KataGo wrote no training data"
    assert cli.main(["import-katago-data", str(out), str(tmp_path / "run"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows_written"] > 0 and summary["rows_in"] == summary["rows_written"] + sum(
        summary["skipped"].values())
    checked = 0
    for path in (tmp_path / "run" / "selfplay" / "katago-zl-b1c16" / "tdata").glob("*.npz"):
        got = rows.read(_storage(), str(path))
        assert rows.validate(got, str(path), 9) == len(got["gameIdN"])
        assert np.allclose(got["policyTargetsNCMove"][:, 0].sum(axis=1)[got["globalTargetsNC"][:, 4] > 0], 1.0)
        planes = rows.unpack_planes(got["binaryInputNCHWPacked"], 9)
        for i in range(len(planes)):
            checked += _stone_planes_agree(planes[i], int(got["metaNC"][i, rows.META_BOARD_SIZE]))
    assert checked == summary["rows_written"]
    assert cli.main(["shuffle", str(tmp_path / "run"), "--min-rows", "10", "--keep-target-rows", "all",
                     "--num-processes", "1"]) == 0
    # Round trip: train on KataGo's rows, export for KataGo, and KataGo's engine computes the trained net.
    assert cli.main(["train", str(tmp_path / "run"), "--name", "t", "--model-kind", "b1c16", "--batch-size", "16",
                     "--samples-per-epoch", "64", "--max-epochs-this-instance", "1", "--pos-len", "9",
                     "--export-mode", "main", "--quit-if-no-data"]) == 0
    assert cli.main(["export", str(tmp_path / "run"), "--name-prefix", "kg", "--katago"]) == 0
    from zeroloop.katago import agreement, engine, positions
    from zeroloop.nn import modelfile

    (model_dir,) = (tmp_path / "run" / "models").iterdir()
    net, _ = modelfile.load_model_at(str(model_dir))
    pos = positions.random_positions(9, [9, 7, 9, 5])
    with engine.RawNN(katago, str(model_dir / modelfile.KATAGO_FILE)) as kata:
        theirs = [kata.evaluate(p) for p in pos]
    worst = agreement.worst([agreement.differences(t, o) for t, o in zip(theirs, agreement.zeroloop_views(net, pos))])
    assert not agreement.within_tolerance(worst), worst


def _stone_planes_agree(planes: np.ndarray, size: int) -> bool:
    """KataGo's on-board, stone and liberty planes are what zeroloop's features make of those stones."""
    from zeroloop import features
    from zeroloop.go.game import BLACK, Game

    own = [(int(x), int(y)) for y, x in zip(*np.nonzero(planes[1, :size, :size]))]
    opp = [(int(x), int(y)) for y, x in zip(*np.nonzero(planes[2, :size, :size]))]
    game = Game(size)
    game.setup(own, opp, to_move=BLACK)
    ours, _ = features.encode(game.board, game.hist, 7.0, 9)
    np.testing.assert_array_equal(ours[:6], planes[:6])
    return True
