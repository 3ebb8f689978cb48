"""BASEDIR storage on a local directory and on memory://: atomic publishing."""

from __future__ import annotations

import os
import posixpath

import pytest

from zeroloop.errors import UserError
from zeroloop.storage import COMPLETE_MARKER, BaseDir, is_tmp, stamp, unique_name


@pytest.fixture(params=["local", "memory"])
def basedir(request, tmp_path):
    if request.param == "local":
        yield BaseDir.open(str(tmp_path / "base"))
        return
    bd = BaseDir.open(f"memory://zl-test-{unique_name()}")
    yield bd
    bd.storage.remove_tree(bd.root)


class Boom(Exception):
    pass


def test_file_publish_is_atomic(basedir):
    st = basedir.storage
    d = basedir.path("x")
    st.makedirs(d)
    st.write_bytes(posixpath.join(d, "a.npz"), b"complete")
    assert st.read_bytes(posixpath.join(d, "a.npz")) == b"complete"
    with pytest.raises(Boom):
        with st.open_write(posixpath.join(d, "b.npz")) as f:
            f.write(b"half")
            raise Boom
    assert not st.exists(posixpath.join(d, "b.npz"))
    assert st.list_files(d) == [posixpath.join(d, "a.npz")]
    assert not st.exists(posixpath.join(d, "b.npz.tmp"))  # the failed write cleaned up


def test_file_overwrite_replaces_whole(basedir):
    st = basedir.storage
    path = basedir.path("f.json")
    st.write_bytes(path, b"one")
    st.write_bytes(path, b"two")
    assert st.read_bytes(path) == b"two"


def test_publishing_dir_appears_only_when_complete(basedir):
    st = basedir.storage
    parent = basedir.path("shuffleddata")
    st.makedirs(parent)
    final = posixpath.join(parent, stamp())
    with st.publishing_dir(final) as staging:
        st.write_bytes(posixpath.join(staging, "train.json"), b"{}")
        st.makedirs(posixpath.join(staging, "train"))
        st.write_bytes(posixpath.join(staging, "train", "data0.npz"), b"rows")
        assert st.list_dirs(parent) == []  # not visible while being written
    assert st.list_dirs(parent) == [final]
    assert st.read_bytes(posixpath.join(final, "train", "data0.npz")) == b"rows"
    with pytest.raises(FileExistsError):
        with st.publishing_dir(final):
            pass


def test_publishing_dir_failure_leaves_nothing_under_the_final_name(basedir):
    st = basedir.storage
    parent = basedir.path("models")
    st.makedirs(parent)
    final = posixpath.join(parent, "m1")
    with pytest.raises(Boom):
        with st.publishing_dir(final) as staging:
            st.write_bytes(posixpath.join(staging, "model.ckpt"), b"partial")
            raise Boom
    assert st.list_dirs(parent) == []
    assert not st.is_complete_dir(final)
    # A retry under the same name works.
    with st.publishing_dir(final) as staging:
        st.write_bytes(posixpath.join(staging, "model.ckpt"), b"whole")
    assert st.list_dirs(parent) == [final]


def test_killed_writer_leftovers_are_ignored_then_replaced(basedir):
    st = basedir.storage
    parent = basedir.path("models")
    final = posixpath.join(parent, "m2")
    # What a SIGKILLed writer leaves: a staging dir with some files, no commit.
    staging = final + ".tmp" if st.local else final
    st.makedirs(staging)
    st.write_bytes(posixpath.join(staging, "model.ckpt"), b"partial")
    assert st.list_dirs(parent) == []
    with st.publishing_dir(final) as staging:
        st.write_bytes(posixpath.join(staging, "other"), b"new")
    assert st.list_dirs(parent) == [final]
    names = sorted(posixpath.basename(p) for p in st.fs.find(final))
    assert names == (["other"] if st.local else [COMPLETE_MARKER, "other"])


def test_listing_ignores_tmp_and_uncommitted(basedir):
    st = basedir.storage
    d = basedir.tdata("model-a")
    st.makedirs(d)
    for name in ("b.npz", "a.npz", "c.npz.tmp", "d.json"):
        st.fs.pipe_file(posixpath.join(d, name), b"x")
    assert st.list_files(d, ".npz") == [posixpath.join(d, "a.npz"), posixpath.join(d, "b.npz")]
    assert st.list_files(d) == [posixpath.join(d, n) for n in ("a.npz", "b.npz", "d.json")]
    st.makedirs(basedir.path("shuffleddata", "20260101-000000.tmp"))
    assert st.list_dirs(basedir.shuffleddata) == []
    assert st.list_files(basedir.path("no-such-dir")) == []
    assert st.list_dirs(basedir.path("no-such-dir")) == []


def test_move_dir(basedir):
    st = basedir.storage
    src = posixpath.join(basedir.modelstobetested, "cand")
    with st.publishing_dir(src) as staging:
        st.write_bytes(posixpath.join(staging, "model.ckpt"), b"weights")
        st.makedirs(posixpath.join(staging, "sub"))
        st.write_bytes(posixpath.join(staging, "sub", "meta.json"), b"{}")
    st.makedirs(basedir.models)
    dst = posixpath.join(basedir.models, "cand")
    st.move_dir(src, dst)
    assert st.list_dirs(basedir.modelstobetested) == []
    assert st.list_dirs(basedir.models) == [dst]
    assert st.read_bytes(posixpath.join(dst, "sub", "meta.json")) == b"{}"
    with pytest.raises(FileNotFoundError):
        st.move_dir(src, posixpath.join(basedir.models, "again"))
    other = posixpath.join(basedir.modelstobetested, "other")
    with st.publishing_dir(other) as staging:
        st.write_bytes(posixpath.join(staging, "model.ckpt"), b"w")
    with pytest.raises(FileExistsError):
        st.move_dir(other, dst)
    assert st.is_complete_dir(other)  # a refused move leaves the source alone


def test_mtime_orders_writes(basedir):
    st = basedir.storage
    a, b = basedir.path("a"), basedir.path("b")
    st.write_bytes(a, b"1")
    st.write_bytes(b, b"2")
    if st.local:
        os.utime(a, (1000, 1000))
        os.utime(b, (2000, 2000))
    assert st.mtime(a) <= st.mtime(b)
    assert st.mtime(b) > 0


def test_basedir_layout(basedir):
    r = basedir.root
    assert basedir.selfplay == f"{r}/selfplay"
    assert basedir.tdata("m") == f"{r}/selfplay/m/tdata"
    assert basedir.sgfs("m") == f"{r}/selfplay/m/sgfs"
    assert basedir.train("t") == f"{r}/train/t"
    assert basedir.toexport() == f"{r}/torchmodels_toexport"
    assert basedir.toexport(extra=True) == f"{r}/torchmodels_toexport_extra"
    for name in ("models", "modelstobetested", "rejectedmodels", "gatekeepersgf", "shuffleddata", "logs"):
        assert getattr(basedir, name) == f"{r}/{name}"
    basedir.precreate_selfplay("m")
    assert basedir.storage.fs.isdir(basedir.tdata("m")) and basedir.storage.fs.isdir(basedir.sgfs("m"))


def test_basedir_open_missing_without_create(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        BaseDir.open(str(tmp_path / "nope"), create=False)
    assert BaseDir.open(str(tmp_path / "rel"), create=True).root == str(tmp_path / "rel")


def test_unique_names_and_stamps():
    names = {unique_name() for _ in range(10000)}
    assert len(names) == 10000
    assert all(len(n) == 16 and int(n, 16) >= 0 for n in list(names)[:100])
    assert stamp(0) < stamp(1.5) < stamp(86400)
    assert is_tmp("x.npz.tmp") and is_tmp("/a/b.tmp/") and is_tmp("d.tmp-ab12") and not is_tmp("tmpfile.npz")


_WRITER = """
import os, sys, time
from zeroloop.storage import Storage
from fsspec.implementations.local import LocalFileSystem
st = Storage(LocalFileSystem())
kind, path = sys.argv[1], sys.argv[2]
if kind == "file":
    with st.open_write(path) as f:
        f.write(b"half")
        print("ready", flush=True)
        time.sleep(600)
else:
    with st.publishing_dir(path) as staging:
        st.write_bytes(os.path.join(staging, "a"), b"half")
        print("ready", flush=True)
        time.sleep(600)
"""


def _start_writer(kind: str, path: str):
    import subprocess
    import sys

    from conftest import cli_env

    proc = subprocess.Popen([sys.executable, "-c", _WRITER, kind, path], env=cli_env(), stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_sweep_removes_only_what_dead_writers_left(tmp_path, kind):
    base = BaseDir.open(str(tmp_path / "base"))
    st = base.storage
    parent = base.path("d")
    st.makedirs(parent)
    dead = _start_writer(kind, posixpath.join(parent, "dead"))
    live = _start_writer(kind, posixpath.join(parent, "live"))
    try:
        dead.kill()
        dead.wait()
        leftovers = sorted(n for n in os.listdir(parent) if is_tmp(n))
        assert len(leftovers) == 2 and leftovers[0].startswith("dead.") and leftovers[1].startswith("live.")
        assert st.list_files(parent) == [] and st.list_dirs(parent) == []  # readers see neither
        removed = st.sweep_tmp(parent, min_age_s=0)
        assert [posixpath.basename(p) for p in removed] == [leftovers[0]]  # the live writer's is kept
        assert sorted(os.listdir(parent)) == [leftovers[1]]
    finally:
        live.kill()
        live.wait()
    assert st.sweep_tmp(parent, min_age_s=0) == [posixpath.join(parent, leftovers[1])]
    assert os.listdir(parent) == []


def test_two_writers_of_one_name_never_mix(tmp_path):
    st = BaseDir.open(str(tmp_path)).storage
    final = str(tmp_path / "m")
    slow = st.publishing_dir(final)
    first = slow.__enter__()
    st.write_bytes(posixpath.join(first, "w"), b"first")
    with st.publishing_dir(final) as second:  # another writer of the same name, finishing first
        assert second != first
        st.write_bytes(posixpath.join(second, "w"), b"second")
    with pytest.raises(FileExistsError, match="another writer"):
        slow.__exit__(None, None, None)
    assert st.read_bytes(posixpath.join(final, "w")) == b"second"
    assert os.listdir(tmp_path) == ["m"]  # the loser's staging dir is gone


@pytest.mark.parametrize("url", ["s3://bucket/run", "gs://bucket/run", "gcs://b/r", "abfs://c/run", "http://host/run"])
def test_object_store_urls_are_refused_with_the_reason(url, tmp_path):
    """Object stores cannot publish, claim or lock atomically: a BASEDIR (or model path, or scratch) there is
    refused before anything is written, with what to use instead."""
    from zeroloop.storage import open_location

    with pytest.raises(UserError, match=r"not supported.*network filesystem"):
        BaseDir.open(url)
    with pytest.raises(UserError, match="not supported"):
        open_location(url + "/models/m")
    assert BaseDir.open(f"file://{tmp_path}/run").storage.local  # file:// is a local path
