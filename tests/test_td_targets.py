"""Short-term (TD) value targets (issue 12, item 11): computed as KataGo's trainingwrite.cpp does on a
hand-made game, written into rows by self-play, kept through a shuffle beside rows from before them,
read from KataGo's own rows, and trained (masked where rows lack them) by the TD value heads."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from test_train import POS, add_rows, opts, shuffle
from zeroloop import features, layout, rows, shuffled
from zeroloop.go import board as B
from zeroloop.go.rules import Rules
from zeroloop.katago import tdata as kg
from zeroloop.nn.configs import NetConfig, get_config
from zeroloop.nn.model import build_model
from zeroloop.selfplay import gamestate as gs
from zeroloop.selfplay import snapshot, tdtargets
from zeroloop.storage import BaseDir
from zeroloop.train import losses
from zeroloop.train.loop import Trainer


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# A 3-move game on 5x5 (area 25): each search's root value and score (Black's view), and Black wins by 2.5.
VALUES, SCORES, RESULT = [0.2, -0.4, 0.6], [1.0, -2.0, 3.0], 2.5


def turn_vector(v: float, s: float) -> np.ndarray:
    return np.array([(1 + v) / 2, (1 - v) / 2, 0.0, s])


def katago_forward(t: int, f: float) -> np.ndarray:
    """KataGo's fillValueTDTargets: weight f on this turn, f(1-f) on the next, ..., the rest on the result."""
    out, left = np.zeros(4), 1.0
    for i in range(t, len(VALUES)):
        out += left * f * turn_vector(VALUES[i], SCORES[i])
        left *= 1 - f
    return out + left * np.array([1.0, 0.0, 0.0, RESULT])


def game(values=VALUES, scores=SCORES) -> gs.GameState:
    size, p = 5, POS
    state = gs.GameState(7, size, Rules("positional", False, 7.5), 100, "m", [12, 6, 18])
    for turn in range(3):
        policy = np.zeros(p * p + 1, np.float32)
        policy[state.moves[turn]] = 1.0
        state.recorded.append(gs.RecordedMove(turn, B.BLACK if turn % 2 == 0 else B.WHITE,
                                              np.zeros((features.NUM_SPATIAL, rows.packed_len(p)), np.uint8),
                                              np.zeros(features.NUM_GLOBAL, np.float32), policy))
    state.root_values, state.root_scores = list(values), list(scores)
    return state


def test_targets_of_a_hand_made_game():
    assert tdtargets.now_factors(25) == pytest.approx((1 / 5.4, 1 / 2.4, 1 / 1.4))
    targets, known = tdtargets.td_targets(tdtargets.per_turn(VALUES, SCORES), tdtargets.outcome(RESULT), 25)
    assert known.all()
    for t in range(3):
        for h, f in enumerate(tdtargets.now_factors(25)):
            np.testing.assert_allclose(targets[t, h], katago_forward(t, f), rtol=1e-12)
    # by hand: the last turn, short horizon (f = 5/7): win 5/7 * 0.8 + 2/7 * 1 = 6/7, score 5/7 * 3 + 2/7 * 2.5
    np.testing.assert_allclose(targets[2, 2], [6 / 7, 1 / 7, 0.0, 20 / 7], rtol=1e-12)
    # the rows: the mover's view (White's row swaps win and loss and negates the score), weight 1
    out = gs.build_rows(game(), np.zeros((5, 5), np.int8), RESULT, POS)
    g = out["globalTargetsNC"]
    assert list(g[:, rows.GT_TD_WEIGHT]) == [1.0, 1.0, 1.0]
    white = g[1]
    for h, f in enumerate(tdtargets.now_factors(25)):
        black = katago_forward(1, f)
        np.testing.assert_allclose(white[rows.GT_TD_VALUE + 3 * h:rows.GT_TD_VALUE + 3 * h + 3],
                                   [black[1], black[0], black[2]], rtol=1e-6)
        assert white[rows.GT_TD_SCORE + h] == pytest.approx(-black[3], rel=1e-6)
        np.testing.assert_allclose(g[0, rows.GT_TD_VALUE + 3 * h:rows.GT_TD_VALUE + 3 * h + 3],
                                   katago_forward(0, f)[:3], rtol=1e-6)
    assert g[:, rows.GT_TD_VALUE:rows.GT_TD_SCORE].reshape(3, 3, 3).sum(axis=2) == pytest.approx(1.0)


def test_an_unknown_turn_masks_the_rows_before_it():
    out = gs.build_rows(game(values=[0.2, math.nan, 0.6]), np.zeros((5, 5), np.int8), RESULT, POS)
    g = out["globalTargetsNC"]
    assert list(g[:, rows.GT_TD_WEIGHT]) == [0.0, 0.0, 1.0]
    assert not g[:2, rows.GT_TD_VALUE:].any()  # masked rows carry no targets
    # a game saved before root scores were kept: no TD targets at all, the rows still valid
    out = gs.build_rows(game(scores=[]), np.zeros((5, 5), np.int8), RESULT, POS)
    assert not out["globalTargetsNC"][:, rows.GT_TD_WEIGHT].any() and rows.validate(out) == 3


def test_saved_games_keep_root_scores_and_older_pending_rows_upgrade():
    state = game()
    state.recorded = state.recorded[:1]
    pending = gs.build_rows(game(), np.zeros((5, 5), np.int8), RESULT, POS)
    old = dict(pending, globalTargetsNC=pending["globalTargetsNC"][:, :rows.OLD_GLOBAL_TARGETS].copy())
    from zeroloop.selfplay.writer import PendingGame

    snap = snapshot.Snapshot("0123456789abcdef", POS, [state], [PendingGame(9, "m", pending, None)], 1.0)
    back = snapshot.decode(snapshot.encode(snap), "s")
    assert back.playing[0].root_scores == SCORES and back.playing[0].root_values == pytest.approx(VALUES)
    np.testing.assert_array_equal(back.pending[0].rows["globalTargetsNC"], pending["globalTargetsNC"])
    # a batch saved by the self-play of before (row format 2: eight target columns) still loads
    old_snap = dataclasses.replace(snap, pending=[PendingGame(9, "m", old, None)])
    orig = snapshot.versions
    snapshot.versions = lambda *a: {**orig(*a), "row_format_version": 2}
    try:
        data = snapshot.encode(old_snap)
    finally:
        snapshot.versions = orig
    back = snapshot.decode(data, "s")
    g = back.pending[0].rows["globalTargetsNC"]
    assert g.shape[1] == rows.NUM_GLOBAL_TARGETS and not g[:, rows.GT_TD_WEIGHT:].any()


def old_format_file(base: BaseDir, arrays: dict[str, np.ndarray], name: str) -> None:
    """A tdata file as the self-play of before wrote it: eight globalTargetsNC columns."""
    import io

    old = dict(arrays, globalTargetsNC=arrays["globalTargetsNC"][:, :rows.OLD_GLOBAL_TARGETS].copy())
    buf = io.BytesIO()
    np.savez_compressed(buf, **old)
    path = layout.tdata_file(base.selfplay, "old", name)
    base.precreate_selfplay("old")
    base.storage.write_bytes(rows.count_path(path), json.dumps({"num_rows": len(old["gameIdN"]),
                                                                  "pos_len": POS}).encode())
    base.storage.write_bytes(path, buf.getvalue())


def test_rows_round_trip_through_a_shuffle_beside_rows_from_before(tmp_path):
    base = BaseDir.open(str(tmp_path))
    nid = add_rows(base, 128, 1, 0)  # new rows (ids 0-127), with TD targets
    from zeroloop.bench import synthetic

    old = synthetic.random_rows(64, POS, np.random.default_rng(2), nid)  # ids 128-191
    old_format_file(base, old, "000000000abc")
    new = rows.concat([rows.read(base.storage, p) for p in sorted(
        str(x) for x in (tmp_path / "selfplay" / "m1" / "tdata").glob("*.npz"))])
    d = shuffle(base, 3)
    summary = shuffled.read_summary(base, d)
    got = rows.concat([rows.read(base.storage, f"{d}/{f.name}") for f in summary.files])
    assert len(got["gameIdN"]) == 192
    by_id = {int(i): g for i, g in zip(got["gameIdN"], got["globalTargetsNC"])}
    for i, g in zip(new["gameIdN"], new["globalTargetsNC"]):
        np.testing.assert_array_equal(by_id[int(i)], g)  # every TD column kept
        assert g[rows.GT_TD_WEIGHT] == 1.0
    for i, g in zip(old["gameIdN"], old["globalTargetsNC"]):
        np.testing.assert_array_equal(by_id[int(i)][:rows.OLD_GLOBAL_TARGETS], g[:rows.OLD_GLOBAL_TARGETS])
        assert not by_id[int(i)][rows.GT_TD_WEIGHT:].any()  # masked


def test_katago_rows_bring_their_td_targets():
    n, p = 2, 5
    gt = np.zeros((n, 80), np.float32)
    gt[:, 0] = 1.0  # a win
    gt[:, 4:16] = np.arange(12, dtype=np.float32) / 10
    gt[1, 24] = 1.0  # KataGo's 1 - TD weight: the second row has none
    gt[:, [25, 26, 27]] = 1.0
    planes = np.zeros((n, kg.NUM_SPATIAL, p, p), np.uint8)
    planes[:, 0] = 1
    arrays = {"binaryInputNCHWPacked": np.packbits(planes.reshape(n, kg.NUM_SPATIAL, -1), axis=2),
              "globalInputNC": np.zeros((n, kg.NUM_GLOBAL), np.float32),
              "policyTargetsNCMove": np.ones((n, 2, p * p + 1), np.int16), "globalTargetsNC": gt,
              "valueTargetsNCHW": np.zeros((n, 5, p, p), np.int8)}
    t = kg.convert(arrays, "kata").arrays["globalTargetsNC"]
    assert list(t[:, rows.GT_TD_WEIGHT]) == [1.0, 0.0]
    np.testing.assert_allclose(t[0, rows.GT_TD_VALUE:rows.GT_TD_SCORE], [0, .1, .2, .4, .5, .6, .8, .9, 1.0])
    np.testing.assert_allclose(t[0, rows.GT_TD_SCORE:], [.3, .7, 1.1])


def test_a_net_without_td_heads_is_the_net_of_before():
    config = get_config("b1c16")
    assert "td_value" not in config.to_dict() and NetConfig.from_dict(config.to_dict()) == config
    torch.manual_seed(4)
    plain = build_model(config, POS)
    torch.manual_seed(4)
    td = build_model(dataclasses.replace(config, td_value=True), POS)
    assert NetConfig.from_dict(td.config.to_dict()).td_value is True
    s = td.state_dict()
    for k, v in plain.state_dict().items():
        torch.testing.assert_close(s[k], v)
    x, g = torch.rand(2, features.NUM_SPATIAL, POS, POS), torch.rand(2, features.NUM_GLOBAL)
    x[:, 0] = 1.0
    out = td.eval().forward_train(x, g)
    assert out.td_value.shape == (2, 3, 3) and out.td_score.shape == (2, 3) and out.soft_policy is None
    torch.testing.assert_close(out.outputs.value, td(x, g).value)
    assert plain.forward_train(x, g).td_value is None


def test_td_losses_fall_on_a_tiny_overfit_set_and_masked_rows_do_not_count():
    from zeroloop.bench import synthetic

    torch.manual_seed(0)
    a = synthetic.random_rows(32, POS, np.random.default_rng(5))
    g = torch.from_numpy(a["globalTargetsNC"])
    g[16:, rows.GT_TD_WEIGHT] = 0.0  # rows without TD targets
    spatial = torch.from_numpy(rows.unpack_planes(a["binaryInputNCHWPacked"], POS))
    glob = torch.from_numpy(a["globalInputNC"])
    t = losses.Targets(torch.from_numpy(a["policyTargetsNCMove"]), g,
                       torch.from_numpy(a["valueTargetsNCHW"][:, 0].astype(np.float32)), spatial[:, 0])
    net = build_model(dataclasses.replace(get_config("b1c16"), td_value=True), POS)
    w = losses.LossWeights.for_options(td_value_weight=0.6)
    assert (w.td_value_long, w.td_score) == (pytest.approx(0.72), 0.0004)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def td_loss() -> torch.Tensor:
        out = net.forward_train(spatial, glob)
        terms = losses.loss_terms(out.outputs, t, w, td_value=out.td_value, td_score=out.td_score)
        return sum(w.__getattribute__(k) * terms[k] for k in (*losses.TD_VALUE_TERMS, "td_score"))

    with torch.no_grad():
        first = float(td_loss())
    for _ in range(150):
        opt.zero_grad()
        td_loss().backward()
        opt.step()
    with torch.no_grad():
        last = float(td_loss())
        assert last < 0.3 * first, (first, last)
        # changing a masked row's targets changes nothing
        g[20:, rows.GT_TD_VALUE:] = 0.5
        assert float(td_loss()) == pytest.approx(last, rel=1e-5)


def test_training_on_mixed_old_and_new_rows_with_td_heads(tmp_path):
    """Today's net trains on new rows, then the flag is set and training resumes on a shuffle of new and old
    rows: the net gains TD heads, every loss stays finite, the TD terms are logged and the export has them."""
    base = BaseDir.open(str(tmp_path))
    nid = add_rows(base, 320, 1, 0)
    shuffle(base, 1)
    assert Trainer(base, opts(max_epochs_this_instance=1)).run() == 0
    from zeroloop.bench import synthetic

    old_format_file(base, synthetic.random_rows(320, POS, np.random.default_rng(2), nid), "000000000abc")
    shuffle(base, 2)
    t = Trainer(base, opts(max_epochs_this_instance=2, td_value_weight=0.6))
    assert t.run() == 0 and t.model.config.td_value and t.state.global_step_samples == 384
    lines = [json.loads(x) for x in open(base.path("train", "t", "metrics_train.jsonl"))]
    last = [x for x in lines if "loss_td_value_short" in x][-1]
    assert all(math.isfinite(last[f"loss_{k}"]) and last[f"loss_{k}"] >= 0
               for k in ("td_value_long", "td_value_mid", "td_value_short", "td_score", "value", "policy"))
    from zeroloop import modellist
    from zeroloop.nn import modelfile

    newest = sorted(modellist.list_models(base.storage, base.toexport()))[-1][1]
    net, info = modelfile.load_model(base.storage, newest)
    assert info.config.td_value and net.td_value_head is not None


def test_katago_export_of_a_net_with_td_heads_is_that_of_the_net_without():
    """KataGo's model format has no TD heads (its own exporter leaves them out too): the export is unchanged."""
    from zeroloop.katago import netexport

    config = get_config("b1c16")
    torch.manual_seed(6)
    plain = build_model(config, POS).eval()
    torch.manual_seed(6)
    td = build_model(dataclasses.replace(config, td_value=True), POS).eval()
    assert netexport.export_bin_gz(td, "m") == netexport.export_bin_gz(plain, "m")
