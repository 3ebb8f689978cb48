"""KataGo model export: the file KataGo's engine read computes what zeroloop's net computes.

tests/fixtures/katago_raw_nn.json holds what KataGo 1.17's ``kata-raw-nn``
reported for a zeroloop net on 60 positions of sizes 5-19
(tools/katago_fixture.py wrote it). Here the same net is exported again,
read back with ``modelformat`` (written from KataGo's desc.cpp), run through
``reference`` (KataGo's layers and post-processing, sharing no code with
zeroloop's net) and compared with those figures; zeroloop's own evaluator
is compared with them too. The ``katago`` test runs the real engine where
KATAGO names one.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from zeroloop.errors import ModelFileError
from zeroloop.go.game import WHITE
from zeroloop.katago import agreement, modelformat, netexport, positions, reference
from zeroloop.nn.model import random_init_model

FIXTURE = Path(__file__).parent / "fixtures" / "katago_raw_nn.json"


@pytest.fixture(scope="module")
def fixture() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def exported(fixture) -> tuple:
    m = fixture["model"]
    net = random_init_model(m["config"], m["pos_len"], seed=m["seed"])
    return net, netexport.export_bin_gz(net, m["name"])


def _katago(entry: dict) -> dict:
    k = dict(entry["katago"])
    k["policy"] = np.array([[np.nan if v is None else v for v in row] for row in k["policy"]])
    k["whiteOwnership"] = np.array(k["whiteOwnership"])
    return k


def test_fixture_covers_sizes_rules_and_enough_positions(fixture):
    pos = fixture["positions"]
    assert len(pos) >= 50
    assert {p["size"] for p in pos} >= {5, 7, 9, 13, 19}
    assert {p["ko_rule"] for p in pos} == {"simple", "positional", "situational"}
    assert fixture["katago_version"].startswith("1.17")


def test_exported_file_is_the_one_katago_evaluated(fixture, exported):
    _, data = exported
    assert hashlib.sha256(gzip.decompress(data)).hexdigest() == fixture["model"]["bin_sha256"], (
        "the exported file differs from the one KataGo evaluated (the exporter or random_init_model "
        "changed): rerun tools/katago_fixture.py with KATAGO=<engine>")


def test_file_read_back_computes_katagos_figures(fixture, exported):
    net, data = exported
    model = modelformat.read_bytes(data, "exported")
    assert model.version == netexport.VERSION and (model.num_spatial, model.num_global) == (22, 19)
    diffs = []
    encoded = [positions.encode(entry, net.pos_len) for entry in fixture["positions"]]
    raw = reference.forward(model, *positions.katago_inputs(np.stack([e[1] for e in encoded]),
                                                            np.stack([e[2] for e in encoded])))
    for i, (entry, (game, _, _, legal)) in enumerate(zip(fixture["positions"], encoded)):
        ref = reference.postprocess(model, raw, i, legal, game.size, entry["ko_rule"] == "simple",
                                    game.to_move == WHITE)
        kata = _katago(entry)
        assert np.array_equal(np.isnan(kata["policy"]), ~legal[:-1].reshape(net.pos_len, -1)[:game.size, :game.size])
        for key in ("varTimeLeft", "shorttermWinlossError", "shorttermScoreError"):
            assert ref[key] == pytest.approx(kata[key], abs=2e-3)
        diffs.append(agreement.differences(kata, ref))
    worst = agreement.worst(diffs)
    assert not agreement.within_tolerance(worst), worst


def test_zeroloop_evaluator_gives_katagos_figures(fixture, exported):
    net, _ = exported
    ours = agreement.zeroloop_views(net, fixture["positions"])
    worst = agreement.worst([agreement.differences(_katago(e), o) for e, o in zip(fixture["positions"], ours)])
    assert not agreement.within_tolerance(worst), worst
    # The figures are informative: values and policies vary across positions.
    wins = [e["katago"]["whiteWin"] for e in fixture["positions"]]
    assert max(wins) - min(wins) > 0.1


def test_inputs_zeroloop_lacks_do_not_change_the_outputs(exported):
    net, data = exported
    model = modelformat.read_bytes(data)
    pos = positions.random_positions(5, [9, 13])
    enc = [positions.encode(p, net.pos_len) for p in pos]
    ks, kg = positions.katago_inputs(np.stack([e[1] for e in enc]), np.stack([e[2] for e in enc]))
    base = reference.forward(model, ks, kg)
    rng = np.random.default_rng(0)
    unused_s = [i for i in range(22) if i not in netexport.SPATIAL_TO_KATAGO]
    unused_g = [i for i in range(19) if i not in netexport.GLOBAL_TO_KATAGO]
    ks[:, unused_s] = (rng.random(ks[:, unused_s].shape) < 0.4) * ks[:, :1]
    kg[:, unused_g] = rng.standard_normal((len(pos), len(unused_g)))
    junk = reference.forward(model, ks, kg)
    for key in base:
        np.testing.assert_array_equal(base[key], junk[key])


def test_serialize_round_trips_and_is_deterministic(exported):
    net, data = exported
    model = modelformat.read_bytes(data)
    assert modelformat.to_bin_gz(model) == data
    assert netexport.export_bin_gz(net, model.name) == data
    assert len(model.trunk.blocks) == net.config.num_blocks
    assert [type(b).__name__ for b in model.trunk.blocks] == ["OrdinaryBlock", "GPoolBlock"]


@pytest.mark.parametrize("cut,message", [
    (lambda d: d[: len(d) // 2], "truncated"),
    (lambda d: d.replace(b"\n15\n", b"\n99\n", 1), "model version 99"),
    (lambda d: d.replace(b"ACTIVATION_RELU", b"ACTIVATION_XYZW", 1), "unknown activation"),
    (lambda d: d.replace(b"ordinary_block", b"nested_bottleneck", 1), "block kind"),
    (lambda d: b"bad/name" + d[d.index(b"\n"):], "model name"),
    (lambda d: d.replace(b"@BIN@", b"1.0 2.0", 1), "no binary float block"),
])
def test_malformed_files_are_refused_with_a_reason(exported, cut, message):
    _, data = exported
    raw = gzip.decompress(data)
    with pytest.raises(ModelFileError, match=message):
        modelformat.read_bytes(cut(raw), "x.bin")


def test_names_are_made_katago_safe():
    assert netexport.katago_name("run1-b6c96-s1000-d20.x+y=z") == "run1-b6c96-s1000-d20_x_y_z"
    assert len(netexport.katago_name("a" * 200)) == 96


@pytest.mark.katago
def test_real_engine_agrees_with_zeroloop(tmp_path):
    from zeroloop.katago import engine

    katago = os.environ.get("KATAGO")
    if not katago:
        pytest.skip("set KATAGO to a built katago binary to run this test")
    net = random_init_model("b1c16", 13, seed=7)
    path = tmp_path / "model.bin.gz"
    path.write_bytes(netexport.export_bin_gz(net, "zeroloop-test"))
    pos = positions.random_positions(77, [5, 9, 13, 7, 9, 13])
    ours = agreement.zeroloop_views(net, pos)
    with engine.RawNN(katago, str(path)) as kata:
        theirs = [kata.evaluate(p) for p in pos]
    worst = agreement.worst([agreement.differences(t, o) for t, o in zip(theirs, ours)])
    assert not agreement.within_tolerance(worst), worst


def _reference_outputs(data: bytes, net) -> dict:
    model = modelformat.read_bytes(data)
    pos = positions.random_positions(3, [net.pos_len])
    _, spatial, glob, _ = positions.encode(pos[0], net.pos_len)
    return reference.forward(model, *positions.katago_inputs(spatial[None], glob[None]))


def test_export_stage_writes_katago_file_inside_each_published_model(tmp_path):
    from zeroloop import export
    from zeroloop.nn import modelfile
    from zeroloop.storage import BaseDir

    base = BaseDir.open(str(tmp_path))
    net = random_init_model("b1c16", 7, seed=2)
    base.storage.makedirs(base.toexport())
    src = os.path.join(base.toexport(), "t-s1-d1")
    modelfile.save_model(base.storage, src, net, modelfile.ModelInfo.for_model(net, "t-s1-d1"))
    written = export.export_pending(base, "run1", gating=True, katago=True)
    assert written == [os.path.join(base.modelstobetested, "run1-t-s1-d1")]
    data = Path(written[0], modelfile.KATAGO_FILE).read_bytes()
    assert modelformat.read_bytes(data).name == "run1-t-s1-d1"
    assert data == netexport.export_bin_gz(net, "run1-t-s1-d1")
    loaded, _ = modelfile.load_model(base.storage, written[0])  # the extra file does not disturb loading
    assert loaded.config == net.config


def test_export_katago_model_cli(tmp_path, capsys):
    from zeroloop import cli
    from zeroloop.nn import modelfile
    from zeroloop.storage import Storage

    import fsspec

    net = random_init_model("b1c16", 7, seed=4)
    model_dir = str(tmp_path / "m1")
    modelfile.save_model(Storage(fsspec.filesystem("file")), model_dir, net, modelfile.ModelInfo.for_model(net, "m1"))
    assert cli.main(["export-katago-model", model_dir, str(tmp_path / "out.bin.gz")]) == 0
    data = (tmp_path / "out.bin.gz").read_bytes()
    assert data == netexport.export_bin_gz(net, "m1")
    assert _reference_outputs(data, net)["value"].shape == (1, 3)
    assert cli.main(["export-katago-model", model_dir]) == 0  # default: beside the weights
    assert (tmp_path / "m1" / modelfile.KATAGO_FILE).read_bytes() == data
    capsys.readouterr()
    assert cli.main(["export-katago-model", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["export-katago-model", model_dir, str(tmp_path / "out.txt")]) == 2
    assert ".bin.gz" in capsys.readouterr().err


def test_loop_setting_passes_katago_to_the_exporters(tmp_path):
    from zeroloop import cliflags
    from zeroloop import export as export_stage
    from zeroloop import shuffle_export_loop
    from zeroloop.loop import settings as S
    from zeroloop.storage import BaseDir

    base = BaseDir.open(str(tmp_path))
    on, off = S.LoopSettings("run", katago_export=True), S.LoopSettings("run")
    for build, module in ((S.export_argv, export_stage), (S.shuffle_export_loop_argv, shuffle_export_loop)):
        argv = build(base, on)
        parser = cliflags.ArgumentParser()
        module.add_arguments(parser)
        assert parser.parse_args(argv[argv.index(base.root):]).katago is True
        assert "--katago" not in build(base, off)


def test_operator_field_katago_export_reaches_the_shuffle_export_loop():
    import crd_rules
    from zeroloop import cliflags, shuffle_export_loop
    from zeroloop_operator import podtemplates, spec

    def stage_args(**shuffler) -> list[str]:
        obj = {"apiVersion": "zeroloop.io/v1alpha1", "kind": "TrainingRun", "metadata": {"name": "demo"},
               "spec": {"image": "registry.example/zeroloop:1", "storage": {"storageClassName": "rwx"},
                        "shuffler": shuffler}}
        defaulted, errors = crd_rules.admit(obj)
        assert not errors, errors
        return podtemplates.stage_args("shuffler", "demo", spec.parse(defaulted["spec"], "demo"))

    assert "--katago" not in stage_args()
    args = stage_args(katagoExport=True)
    parser = cliflags.ArgumentParser()
    shuffle_export_loop.add_arguments(parser)
    assert parser.parse_args(args[1:]).katago is True
    _, errors = crd_rules.admit({"apiVersion": "zeroloop.io/v1alpha1", "kind": "TrainingRun",
                                 "metadata": {"name": "demo"},
                                 "spec": {"image": "i:1", "storage": {"storageClassName": "rwx"},
                                          "shuffler": {"katagoExport": "yes"}}})
    assert errors


def test_export_publishes_without_the_katago_file_where_the_net_has_no_katago_form(tmp_path, monkeypatch, caplog):
    from zeroloop import export
    from zeroloop.nn import modelfile
    from zeroloop.storage import BaseDir

    base = BaseDir.open(str(tmp_path))
    net = random_init_model("b1c16", 5, seed=1)
    base.storage.makedirs(base.toexport())
    modelfile.save_model(base.storage, os.path.join(base.toexport(), "t-s1-d1"), net,
                         modelfile.ModelInfo.for_model(net, "t-s1-d1"))
    monkeypatch.setattr(netexport, "INPUT_MAPS", {})  # as if zeroloop's features had moved on
    (written,) = export.export_pending(base, "run1", gating=False, katago=True)
    assert not os.path.exists(os.path.join(written, modelfile.KATAGO_FILE))
    assert "cannot write run1-t-s1-d1 in KataGo's format" in caplog.text
    assert modelfile.load_model(base.storage, written)[1].name == "run1-t-s1-d1"
