"""A missing, misplaced, unreadable or full BASEDIR: one-line errors, nothing written is lost.

Each stage is run as a process. A BASEDIR that is missing (for readers), a
file, or unreadable is refused in one line naming it. On a full disk every
stage stops with one line naming the file it could not write and exit 1,
and what it had published before (tdata, shuffles, checkpoints, exports)
is still whole and readable, with no staging file left behind; once space
is back, the same command carries on.

"Unreadable" needs permission checks, which root skips: as root the child
drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its bounding set before
exec. "Full" is a small tmpfs mount when this process may mount one (root
in CI); otherwise RLIMIT_FSIZE makes the child's writes fail with EFBIG.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import hashlib
import os
import resource
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from conftest import run_cli, tiny_selfplay_config
from zeroloop import rows, shuffled
from zeroloop.bench import synthetic
from zeroloop.nn import modelfile
from zeroloop.storage import BaseDir, is_tmp
from zeroloop.train import checkpoint

POS = 5
SELFPLAY = tiny_selfplay_config(max_rows_per_file=8)
TRAIN = ("--name", "t", "--model-kind", "b1c16", "--batch-size", "16", "--export-mode", "main",
         "--samples-per-epoch", "64", "--threads", "1", "--device", "cpu", "--data-poll-seconds", "0.2",
         "--quit-if-no-data", "--lr-warmup-samples", "0")


def _drop_dac() -> None:
    """preexec_fn: as root, give up the capabilities that bypass file permissions."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def as_unprivileged() -> dict:
    return {"preexec_fn": _drop_dac} if os.geteuid() == 0 else {}


def digests(root: str) -> dict[str, str]:
    out = {}
    for p in sorted(glob.glob(os.path.join(root, "**"), recursive=True)):
        if os.path.isfile(p):
            out[os.path.relpath(p, root)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def leftovers(root: str) -> list[str]:
    return [p for p in glob.glob(os.path.join(root, "**"), recursive=True) if is_tmp(p)]


def one_line_error(r: subprocess.CompletedProcess, *words: str) -> str:
    lines = r.stderr.strip().splitlines()
    assert lines and "Traceback" not in r.stderr, r.stderr
    last = lines[-1]
    assert "error:" in last and all(w in last for w in words), r.stderr
    return last


# --- missing, a file, unreadable -----------------------------------------------------------


def test_missing_or_file_basedir_is_named(tmp_path):
    missing, afile = str(tmp_path / "missing"), str(tmp_path / "afile")
    open(afile, "w").write("not a directory")
    for stage in (("shuffle", missing, "--min-rows", "10"), ("export", missing, "--name-prefix", "r")):
        r = run_cli(*stage, timeout=120)
        assert r.returncode == 2
        one_line_error(r, f"BASEDIR {missing} does not exist")
    assert not os.path.exists(missing)  # readers never create it
    for stage in (("shuffle", afile, "--min-rows", "10"), ("export", afile, "--name-prefix", "r"),
                  ("train", afile, *TRAIN)):
        r = run_cli(*stage, timeout=120)
        assert r.returncode == 2
        one_line_error(r, f"BASEDIR {afile} is a file, not a directory")
    (tmp_path / "sp.toml").write_text(SELFPLAY)
    r = run_cli("selfplay", "--output-dir", afile, "--models-dir", str(tmp_path / "m"), "--config",
                str(tmp_path / "sp.toml"), "--max-games-total", "1", timeout=120)
    assert r.returncode == 2
    one_line_error(r, f"--output-dir {afile} is a file")
    assert open(afile).read() == "not a directory"


@pytest.fixture
def open_tmp():
    """A scratch dir every user may traverse (pytest's tmp_path is private to root)."""
    d = tempfile.mkdtemp(prefix="zl-hostile-")
    os.chmod(d, 0o755)
    yield d
    for folder, subdirs, _ in os.walk(d):
        for s in subdirs:
            os.chmod(os.path.join(folder, s), 0o755)
    shutil.rmtree(d)


def test_unreadable_basedir_or_subdir_is_named_and_left_alone(open_tmp):
    base = BaseDir.open(os.path.join(open_tmp, "base"))
    synthetic.write_tdata(base, "m1", 3, 40, POS, np.random.default_rng(1))
    before = digests(base.root)
    os.chmod(base.root, 0o000)
    try:
        for stage in (("shuffle", base.root, "--min-rows", "10"), ("export", base.root, "--name-prefix", "r"),
                      ("train", base.root, *TRAIN)):
            r = run_cli(*stage, timeout=120, **as_unprivileged())
            assert r.returncode == 2, r.stderr
            one_line_error(r, f"BASEDIR {base.root}: permission denied")
        open(os.path.join(open_tmp, "sp.toml"), "w").write(SELFPLAY)
        r = run_cli("selfplay", "--output-dir", os.path.join(open_tmp, "out"), "--models-dir",
                    os.path.join(base.root, "models"), "--config", os.path.join(open_tmp, "sp.toml"),
                    "--max-games-total", "1", timeout=120, **as_unprivileged())
        assert r.returncode == 2, r.stderr  # models/ cannot be seen: not "no model yet, play random"
        one_line_error(r, f"--models-dir {base.models}: permission denied")
    finally:
        os.chmod(base.root, 0o755)
    os.makedirs(base.models)
    os.chmod(base.models, 0o000)
    r = run_cli("selfplay", "--output-dir", base.selfplay, "--models-dir", base.models, "--config",
                os.path.join(open_tmp, "sp.toml"), "--max-games-total", "1", timeout=120, **as_unprivileged())
    assert r.returncode == 2, r.stderr
    one_line_error(r, f"--models-dir {base.models}: permission denied")
    os.chmod(base.models, 0o755)
    os.chmod(base.tdata("m1"), 0o000)  # one model's data locked away: the shuffle names it, publishes nothing
    r = run_cli("shuffle", base.root, "--min-rows", "10", "--num-processes", "1", timeout=120, **as_unprivileged())
    os.chmod(base.tdata("m1"), 0o755)
    assert r.returncode == 1, r.stderr
    one_line_error(r, "Permission denied", base.tdata("m1"))
    assert not os.path.exists(base.shuffleddata) or os.listdir(base.shuffleddata) == []
    assert {k: v for k, v in digests(base.root).items() if k.startswith("selfplay/m1/tdata")} == before


# --- a full disk ------------------------------------------------------------------------------


class SmallDisk:
    """A directory whose writes run out of room on demand: a tmpfs, or else RLIMIT_FSIZE."""

    def __init__(self, path: str):
        self.path = path
        os.makedirs(path)
        self.tmpfs = False
        if not os.environ.get("ZEROLOOP_TEST_NO_TMPFS"):  # (set it to test the fallback)
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", path], capture_output=True)
            self.tmpfs = r.returncode == 0
        self.limit: int | None = None

    def fill(self, leave: int = 0) -> None:
        """From now on, writes fail (tmpfs: the disk is full but for leave bytes)."""
        if self.tmpfs:
            free = shutil.disk_usage(self.path).free
            with open(os.path.join(self.path, "filler"), "wb") as f:
                with contextlib.suppress(OSError):
                    f.write(b"\0" * max(0, free - leave))
        else:
            self.limit = max(leave, 1)

    def free(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(self.path, "filler"))
        self.limit = None

    def run_kwargs(self) -> dict:
        if self.limit is None:
            return {}
        limit = self.limit

        def cap():  # SIGXFSZ is ignored by Python, so an oversized write fails with EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        return {"preexec_fn": cap}

    @property
    def no_space(self) -> str:
        return "No space left on device" if self.tmpfs else "File too large"

    def close(self) -> None:
        if self.tmpfs:
            subprocess.run(["umount", "-l", self.path], capture_output=True)


@pytest.fixture
def disk(tmp_path):
    d = SmallDisk(str(tmp_path / "disk"))
    yield d
    d.close()


def test_selfplay_on_a_full_disk_stops_in_one_line_then_carries_on(disk):
    base = BaseDir.open(os.path.join(disk.path, "base"))
    cfg = os.path.join(disk.path, "sp.toml")
    open(cfg, "w").write(SELFPLAY)
    sp = ("selfplay", "--output-dir", base.selfplay, "--models-dir", base.models, "--config", cfg,
          "--threads", "1", "--seed", "1")
    r = run_cli(*sp, "--max-games-total", "6", timeout=120)
    assert r.returncode == 0, r.stderr
    before = digests(base.root)
    assert any(k.endswith(".npz") for k in before)
    disk.fill(leave=600)
    r = run_cli(*sp, "--max-games-total", "40", timeout=120, **disk.run_kwargs())
    assert r.returncode == 1, r.stderr
    one_line_error(r, disk.no_space, base.selfplay_model("random"))  # tdata, or a save of games in progress
    after = digests(base.root)
    assert {k: after.get(k) for k in before} == before  # what was written is whole
    for k in after:  # and anything new is complete: no count file without its rows
        if k.endswith(".json") and "/tdata/" in k:
            assert k[:-5] + ".npz" in after, k
    for k in after:
        if k.endswith(".npz") and "/tdata/" in k:
            rows.read(base.storage, os.path.join(base.root, k))
    assert leftovers(base.root) == []
    disk.free()
    r = run_cli(*sp, "--max-games-total", "6", timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(digests(base.root)) > len(after)


def _shuffle(base: BaseDir, **kw) -> subprocess.CompletedProcess:
    return run_cli("shuffle", base.root, "--min-rows", "100", "--num-processes", "1", "--batch-size", "16",
                   "--approx-rows-per-out-file", "64", timeout=120, **kw)


def test_shuffle_train_export_on_a_full_disk_keep_what_they_published(disk):
    base = BaseDir.open(os.path.join(disk.path, "base"))
    synthetic.write_tdata(base, "m1", 4, 64, POS, np.random.default_rng(1))
    r = _shuffle(base)
    assert r.returncode == 0, r.stderr
    first = r.stdout.strip()
    r = run_cli("train", base.root, *TRAIN, "--max-epochs-this-instance", "1", timeout=180)
    assert r.returncode == 0, r.stderr
    exported = os.listdir(base.toexport())
    assert len(exported) == 1
    payload, _ = checkpoint.load_latest(base.storage, base.train("t"))
    samples = payload["train_state"]
    before = digests(base.root)
    disk.fill(leave=0 if disk.tmpfs else 200)

    r = _shuffle(base, **disk.run_kwargs())  # a second shuffle cannot be written
    assert r.returncode == 1, r.stderr
    one_line_error(r, disk.no_space)
    assert shuffled.complete_dirs(base) == [first]
    assert not [d for d in os.listdir(base.shuffleddata) if d != os.path.basename(first)]
    assert not os.path.exists(base.shufflescratch) or os.listdir(base.shufflescratch) == []

    r = run_cli("train", base.root, *TRAIN, "--max-epochs-this-instance", "1", "--no-repeat-files",
                timeout=180, **disk.run_kwargs())
    print("train on a full disk:", r.returncode, r.stderr.strip().splitlines()[-1])
    assert r.returncode in (0, 1), r.stderr
    if r.returncode == 1:
        one_line_error(r, disk.no_space, base.root)
    payload, _ = checkpoint.load_latest(base.storage, base.train("t"))
    assert payload["train_state"] == samples or r.returncode == 0  # the last good checkpoint is intact

    r = run_cli("export", base.root, "--name-prefix", "run", timeout=120, **disk.run_kwargs())
    assert r.returncode == 2, r.stderr
    one_line_error(r, "export failed", disk.no_space)
    assert not os.path.exists(base.models) or os.listdir(base.models) == []  # nothing half-published
    src = os.path.join(base.toexport(), exported[0])
    modelfile.load_model(base.storage, src)  # the training export waits, whole, for a retry

    after = digests(base.root)
    changed = {k for k in before if after.get(k) != before[k]}
    # only the trainer's own bookkeeping may change; every published file is as it was
    assert all(k.startswith("train/t/") for k in changed), changed
    assert leftovers(base.root) == []
    disk.free()
    r = run_cli("export", base.root, "--name-prefix", "run", timeout=120)
    assert r.returncode == 0, r.stderr
    modelfile.load_model(base.storage, os.path.join(base.models, f"run-{exported[0]}"))
    assert _shuffle(base).returncode == 0
