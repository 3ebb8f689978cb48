"""Model files: exact round trips (local and memory://), refusal of bad files, newest-model lookup."""

from __future__ import annotations

import json
import os
import posixpath
import uuid

import pytest
import torch

from zeroloop import features, modellist
from zeroloop.errors import ModelFileError, UserError
from zeroloop.nn import modelfile
from zeroloop.nn.modelfile import INFO_FILE, WEIGHTS_FILE, ModelInfo, load_model, save_model
from zeroloop.nn.model import random_init_model
from zeroloop.storage import open_location


def inputs(pos_len: int, board: int, n: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, features.NUM_SPATIAL, pos_len, pos_len, generator=gen) > 0.7).float()
    x[:, 0] = 0
    x[:, 0, :board, :board] = 1
    return x, torch.randn(n, features.NUM_GLOBAL, generator=gen) * 0.3


def saved(location: str, seed: int = 0, name: str = "b1c16-s1000-d200", pos_len: int = 7):
    net = random_init_model("b1c16", pos_len, seed=seed)
    storage, path = open_location(location)
    info = save_model(storage, path, net, ModelInfo.for_model(net, name, samples_trained=1000, data_rows=200,
                                                                extra={"loss": 1.5}))
    return net, info, storage, path


@pytest.fixture
def memory_url():
    url = f"memory://zl-{uuid.uuid4().hex}"
    yield url
    storage, path = open_location(url)
    storage.remove_tree(path)


@pytest.mark.parametrize("where", ["local", "memory"])
def test_round_trip_is_exact(where, tmp_path, memory_url):
    root = str(tmp_path) if where == "local" else memory_url
    net, info, storage, path = saved(root + "/models/m1")
    loaded, got = load_model(storage, path)
    assert not loaded.training
    assert got == info
    assert got.samples_trained == 1000 and got.data_rows == 200 and got.extra == {"loss": 1.5}
    assert got.feature_version == features.FEATURE_VERSION and got.config.name == "b1c16"
    for board in (5, 7):
        x, q = inputs(7, board)
        with torch.no_grad():
            a, b = net(x, q), loaded(x, q)
        for ta, tb in zip(a, b):
            assert torch.equal(ta, tb)
    assert modelfile.load_model_at(root + "/models/m1")[1] == info
    if where == "local":
        assert sorted(os.listdir(tmp_path / "models")) == ["m1"]  # no .tmp left
        assert sorted(os.listdir(tmp_path / "models" / "m1")) == sorted([WEIGHTS_FILE, INFO_FILE])


def test_model_json_is_readable_and_complete(tmp_path):
    _, info, storage, path = saved(str(tmp_path / "m"))
    d = json.loads((tmp_path / "m" / INFO_FILE).read_text())
    for key in ("format_version", "name", "config_name", "config", "pos_len", "feature_version",
                "num_spatial", "num_global", "samples_trained", "data_rows", "created", "created_utc"):
        assert key in d
    assert d["config"]["blocks"] == ["gpool"] and d["num_spatial"] == features.NUM_SPATIAL


def test_save_refuses_to_overwrite(tmp_path):
    net, info, storage, path = saved(str(tmp_path / "m"))
    with pytest.raises(FileExistsError):
        save_model(storage, path, net, info)
    other = random_init_model("b1c16", 9)
    with pytest.raises(ValueError, match="does not describe"):
        save_model(storage, str(tmp_path / "m2"), other, info)
    with pytest.raises(ValueError, match="model name"):
        ModelInfo.for_model(net, "../escape")


def edit_json(path, **changes):
    p = os.path.join(path, INFO_FILE)
    d = json.load(open(p))
    for k, v in changes.items():
        if v is None:
            d.pop(k)
        else:
            d[k] = v
    open(p, "w").write(json.dumps(d))


def corrupt_weights(path, how):
    p = os.path.join(path, WEIGHTS_FILE)
    raw = open(p, "rb").read()
    if how == "truncate":
        raw = raw[: len(raw) // 2]
    elif how == "empty":
        raw = b""
    elif how == "header":
        raw = raw[:8] + b"{not json" + raw[17:]
    open(p, "wb").write(raw)


def set_tensor(path, key, value):
    from safetensors.torch import load_file, save_file

    p = os.path.join(path, WEIGHTS_FILE)
    t = load_file(p)
    if value is None:
        del t[key]
    else:
        t[key] = value(t[key])
    save_file(t, p)


BAD_FILES = [
    (lambda p: os.remove(os.path.join(p, INFO_FILE)), INFO_FILE, "missing"),
    (lambda p: os.remove(os.path.join(p, WEIGHTS_FILE)), WEIGHTS_FILE, "missing"),
    (lambda p: open(os.path.join(p, INFO_FILE), "w").write('{"name": '), INFO_FILE, "not valid JSON"),
    (lambda p: open(os.path.join(p, INFO_FILE), "w").write("[1, 2]"), INFO_FILE, "expected a JSON object"),
    (lambda p: edit_json(p, feature_version=features.FEATURE_VERSION + 1), INFO_FILE, "feature version"),
    (lambda p: edit_json(p, num_spatial=22), INFO_FILE, "num_spatial is 22"),
    (lambda p: edit_json(p, format_version=99), INFO_FILE, "format version 99"),
    (lambda p: edit_json(p, pos_len="9"), INFO_FILE, "pos_len must be int"),
    (lambda p: edit_json(p, name="a/b"), INFO_FILE, "model name"),
    (lambda p: edit_json(p, config=None, config_name="b9c9"), INFO_FILE, "unknown net config 'b9c9'"),
    (lambda p: edit_json(p, config={"name": "x"}), INFO_FILE, "missing keys"),
    (lambda p: edit_json(p, config=None, config_name="b2c32"), WEIGHTS_FILE, "does not match config b2c32"),
    (lambda p: corrupt_weights(p, "truncate"), WEIGHTS_FILE, "not a valid safetensors file"),
    (lambda p: corrupt_weights(p, "empty"), WEIGHTS_FILE, "not a valid safetensors file"),
    (lambda p: corrupt_weights(p, "header"), WEIGHTS_FILE, "not a valid safetensors file"),
    (lambda p: set_tensor(p, "conv_spatial.weight", None), WEIGHTS_FILE, "missing tensors conv_spatial.weight"),
    (lambda p: set_tensor(p, "conv_spatial.weight", lambda t: t[:, :-1].contiguous()), WEIGHTS_FILE,
     r"conv_spatial.weight has shape \(16, 11, 3, 3\)"),
    (lambda p: set_tensor(p, "norm_trunk.bias", lambda t: t.double()), WEIGHTS_FILE, "dtype torch.float64"),
    (lambda p: set_tensor(p, "norm_trunk.bias", lambda t: t * float("nan")), WEIGHTS_FILE, "NaN"),
]


@pytest.mark.parametrize("damage,file,reason", BAD_FILES, ids=[f"{i}-{r[:20]}" for i, (_, _, r) in enumerate(BAD_FILES)])
def test_bad_model_files_are_refused(tmp_path, damage, file, reason):
    _, _, storage, path = saved(str(tmp_path / "m"))
    damage(path)
    with pytest.raises(ModelFileError, match=reason) as e:
        load_model(storage, path)
    msg = str(e.value)
    assert os.path.join(path, file) in msg
    assert "\n" not in msg
    assert isinstance(e.value, UserError)


def test_missing_and_incomplete_dirs(tmp_path, memory_url):
    storage, path = open_location(str(tmp_path / "nothing"))
    with pytest.raises(ModelFileError, match="nothing: does not exist"):
        load_model(storage, path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelFileError, match="file: not a directory"):
        modelfile.load_model_at(str(tmp_path / "file"))
    _, _, storage, path = saved(str(tmp_path / "m.tmp"))
    with pytest.raises(ModelFileError, match=r"m\.tmp: incomplete"):
        load_model(storage, path)
    # On object stores a directory without its commit marker is incomplete.
    _, _, storage, path = saved(memory_url + "/m")
    storage.remove(posixpath.join(path, "_COMPLETE"))
    with pytest.raises(ModelFileError, match="incomplete"):
        load_model(storage, path)


def test_find_latest_model_local(tmp_path):
    models = tmp_path / "models"
    storage, root = open_location(str(models))
    assert modellist.find_latest_model(storage, root) is None  # no dir at all
    models.mkdir()
    assert modellist.find_latest_model(storage, root) is None
    for i, name in enumerate(["c", "a", "b"]):
        saved(str(models / name), seed=i)
        os.utime(models / name / WEIGHTS_FILE, (1000 + i, 1000 + i))
    assert modellist.find_latest_model(storage, root) == str(models / "b")
    # Newer but incomplete ones are skipped: a .tmp staging dir, a dir without weights.
    saved(str(models / "d.tmp"))
    (models / "e").mkdir()
    (models / "e" / INFO_FILE).write_text("{}")
    assert modellist.find_latest_model(storage, root) == str(models / "b")
    os.utime(models / "c" / WEIGHTS_FILE, (2000, 2000))
    assert modellist.find_latest_model(storage, root) == str(models / "c")
    assert [p for _, p in modellist.list_models(storage, root)] == [str(models / n) for n in ("a", "b", "c")]


def test_find_latest_model_memory(memory_url):
    storage, root = open_location(memory_url + "/models")
    saved(memory_url + "/models/old")
    saved(memory_url + "/models/new")
    storage.remove(posixpath.join(root, "new", "_COMPLETE"))  # as if its writer died
    assert modellist.find_latest_model(storage, root) == posixpath.join(root, "old")


def test_model_listing_follows_the_directory_and_costs_one_stat_when_nothing_changed(tmp_path):
    """ModelListing answers as list_models does, sees models arrive and leave (renames change the directory's
    mtime), and looks at nothing but the directory while it is unchanged."""
    import shutil

    from zeroloop.bench.latency import LatencyFileSystem
    from zeroloop.storage import Storage

    models = tmp_path / "models"
    models.mkdir()
    fs = LatencyFileSystem(0.0)
    storage = Storage(fs)
    listing = modellist.ModelListing(storage, str(models))
    for i, name in enumerate(["a", "b", "c"]):
        saved(str(models / name), seed=i)
        os.utime(models / name / WEIGHTS_FILE, (1000 + i, 1000 + i))
    old = 1_000_000_000.0
    os.utime(models, (old, old))  # settled long ago (a fresh mtime is listed again at every look)
    assert list(listing.models()) == modellist.list_models(storage, str(models))
    calls = fs.calls
    for _ in range(5):
        assert listing.latest() == str(models / "c")
    assert fs.calls - calls == 5  # one stat of the directory per look
    shutil.rmtree(models / "c")  # rejected, removed: the directory changes
    saved(str(models / "d"), seed=5)
    os.utime(models / "d" / WEIGHTS_FILE, (900, 900))
    assert list(listing.models()) == modellist.list_models(storage, str(models))
    assert [os.path.basename(p) for _, p in listing.models()] == ["d", "a", "b"]
    shutil.rmtree(models)
    assert listing.models() == () and listing.latest() is None
