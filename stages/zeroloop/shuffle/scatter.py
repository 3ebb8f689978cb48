"""An exact uniform shuffle whose memory is one bucket, not the whole window.

Two phases, each a list of independent tasks that worker processes run:

1. scatter: a group of input files (about ``group_rows`` rows) is loaded,
   thinned to the keep probability, and each row is sent to one of B
   buckets chosen uniformly at random, as one shard file per bucket in the
   scratch directory.
2. gather: each bucket's shards are loaded, permuted and cut into output
   files of whole batches; the few rows left over (less than a batch per
   bucket) go to a last "rest" bucket that is gathered the same way at the
   end and keeps every remaining row.

Assigning rows to uniform random buckets and then permuting each bucket
gives every permutation of the kept rows the same probability, so the
result is an exact uniform shuffle, while a process never holds more than
one group or one bucket. Input files that cannot be read or have the wrong
shape are skipped and reported back to the parent, never fatal. Each group
also reports the feature versions of its rows (their input planes): rows of
two versions cannot share a training batch, so the parent refuses such a
window (``MixedFeatureVersions``) before anything is gathered, naming a file
of each version; a group that holds both writes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
from dataclasses import dataclass

import numpy as np

from zeroloop import rows, shuffled
from zeroloop.errors import CorruptFileError, DataFileError, UserError
from zeroloop.storage import Storage, open_fs

log = logging.getLogger(__name__)

# Fast deflate for output files: compression was most of a shuffle's time at numpy's level 6.
OUTPUT_DEFLATE_LEVEL = 1


@dataclass(frozen=True)
class Place:
    """A storage location that can be re-opened in a worker process."""

    url: str  # fsspec URL or local path

    def open(self) -> tuple[Storage, str]:
        fs, root = open_fs(self.url, "--scratch-dir")
        return Storage(fs), root


@dataclass(frozen=True)
class ScatterTask:
    scratch: Place  # this run's scratch directory
    group: int
    paths: tuple[str, ...]
    inputs: Place  # where the paths live (the BASEDIR's filesystem)
    pos_len: int
    keep_prob: float
    num_buckets: int
    seed: tuple[int, ...]


@dataclass(frozen=True)
class ScatterResult:
    group: int
    rows_read: int
    rows_kept: int
    skipped: tuple[tuple[str, str], ...]  # (path, why)
    corrupt: tuple[tuple[str, str], ...] = ()  # the skipped ones whose content is malformed
    versions: tuple[tuple[int, int, str], ...] = ()  # (feature version, rows, a file of them) of the rows read


class MixedFeatureVersions(UserError):
    """The window holds rows of several feature versions (different input planes)."""

    def __init__(self, versions: dict[int, tuple[int, str]]):
        listing = ", ".join(f"version {v}: {n} rows (such as {path})" for v, (n, path) in sorted(versions.items()))
        super().__init__(f"the shuffle window holds self-play rows of several feature versions ({listing}); rows "
                         "of different inputs cannot be trained on together, so nothing was shuffled. A run keeps "
                         "one feature version: move the other version's selfplay/<model> directories out of BASEDIR")


def feature_versions(results) -> dict[int, tuple[int, str]]:
    """Feature version -> (rows, a file of them) over scatter results."""
    out: dict[int, tuple[int, str]] = {}
    for res in results:
        for version, n, path in res.versions:
            rows_before, first = out.get(version, (0, path))
            out[version] = (rows_before + n, first)
    return out


@dataclass(frozen=True)
class GatherTask:
    scratch: Place
    bucket: int
    output: Place  # the shuffle's staging directory
    pos_len: int
    rows_per_file: int
    batch_size: int
    final: bool  # the rest bucket: keep every row, nothing left over
    seed: tuple[int, ...]


@dataclass(frozen=True)
class GatherResult:
    bucket: int
    files: tuple[shuffled.ShuffledFile, ...]
    rest_rows: int


def plan_groups(sizes: list[int], group_rows: int) -> list[list[int]]:
    """Indices of consecutive files grouped to at least group_rows rows each."""
    groups: list[list[int]] = []
    current: list[int] = []
    acc = 0
    for i, n in enumerate(sizes):
        current.append(i)
        acc += n
        if acc >= group_rows:
            groups.append(current)
            current, acc = [], 0
    if current:
        groups.append(current)
    return groups


def split_sizes(n: int, rows_per_file: int, batch_size: int) -> tuple[list[int], int]:
    """Output file sizes of whole batches near rows_per_file, and the rows left over."""
    batches = n // batch_size
    if batches == 0:
        return [], n
    files = max(1, round(batches * batch_size / rows_per_file))
    per, extra = divmod(batches, files)
    sizes = [(per + (1 if i < extra else 0)) * batch_size for i in range(files)]
    return sizes, n - batches * batch_size


def shard_path(scratch_root: str, bucket: int, group: int) -> str:
    return posixpath.join(scratch_root, f"b{bucket}", f"g{group}.npz")


def rest_path(scratch_root: str, bucket: int) -> str:
    return posixpath.join(scratch_root, "rest", f"b{bucket}.npz")


def _write_raw(storage: Storage, path: str, arrays: dict[str, np.ndarray]) -> None:
    # Scratch needs no atomic publish: an interrupted run's scratch is discarded.
    storage.fs.makedirs(posixpath.dirname(path), exist_ok=True)
    with storage.fs.open(path, "wb") as f:
        f.write(rows.to_bytes(arrays, compress=False))


def scatter(task: ScatterTask) -> ScatterResult:
    """Phase 1 for one group of input files."""
    in_storage, _ = task.inputs.open()
    scratch, scratch_root = task.scratch.open()
    parts, skipped, corrupt, found = [], [], [], {}
    for path in task.paths:
        try:
            parts.append(rows.read(in_storage, path, task.pos_len))
        except DataFileError as e:
            skipped.append((path, str(e)))
            if isinstance(e, CorruptFileError):
                corrupt.append((path, str(e)))
            continue
        version = rows.feature_version_of(parts[-1], path)
        n, first = found.get(version, (0, path))
        found[version] = (n + len(parts[-1]["gameIdN"]), first)
    versions = tuple((v, n, first) for v, (n, first) in sorted(found.items()))
    if len(versions) != 1:  # none read, or several versions: the parent refuses those, nothing to write
        return ScatterResult(task.group, 0, 0, tuple(skipped), tuple(corrupt), versions)
    data = rows.concat(parts)
    del parts
    n = len(data["gameIdN"])
    rng = np.random.default_rng(np.random.SeedSequence(task.seed))
    keep = int(round(n * task.keep_prob))
    chosen = rng.permutation(n)[:keep]
    bucket_of = rng.integers(0, task.num_buckets, size=keep)
    order = np.argsort(bucket_of, kind="stable")
    counts = np.bincount(bucket_of, minlength=task.num_buckets)
    start = 0
    for b, c in enumerate(counts):
        if c:
            _write_raw(scratch, shard_path(scratch_root, b, task.group), rows.take(data, chosen[order[start:start + c]]))
        start += c
    return ScatterResult(task.group, n, keep, tuple(skipped), tuple(corrupt), versions)


def _load_all(storage: Storage, paths: list[str], pos_len: int) -> dict[str, np.ndarray] | None:
    parts = [rows.read(storage, p, pos_len) for p in paths]
    return rows.concat(parts) if parts else None


def gather(task: GatherTask) -> GatherResult:
    """Phase 2 for one bucket: permute and write whole-batch output files."""
    scratch, scratch_root = task.scratch.open()
    out, out_root = task.output.open()
    if task.final:
        paths = scratch.list_files(posixpath.join(scratch_root, "rest"), ".npz")
    else:
        paths = scratch.list_files(posixpath.join(scratch_root, f"b{task.bucket}"), ".npz")
    data = _load_all(scratch, paths, task.pos_len)
    if data is None:
        return GatherResult(task.bucket, (), 0)
    n = len(data["gameIdN"])
    rng = np.random.default_rng(np.random.SeedSequence(task.seed))
    data = rows.take(data, rng.permutation(n))
    sizes, rest = split_sizes(n, task.rows_per_file, task.batch_size)
    if task.final and rest:
        sizes = sizes[:-1] + [sizes[-1] + rest] if sizes else [rest]
        rest = 0
    files = []
    start = 0
    for j, size in enumerate(sizes):
        name = f"{shuffled.FILES_SUBDIR}/data{task.bucket}_{j}.npz"
        part = rows.take(data, slice(start, start + size))
        payload = rows.to_bytes(part, compress=True, level=OUTPUT_DEFLATE_LEVEL)
        digest = hashlib.sha256(payload).hexdigest()
        path = posixpath.join(out_root, name)
        out.write_bytes(rows.count_path(path), shuffled.file_json(size, task.pos_len, digest))
        out.write_bytes(path, payload)
        files.append(shuffled.ShuffledFile(name, size, digest))
        start += size
    if rest:
        _write_raw(scratch, rest_path(scratch_root, task.bucket), rows.take(data, slice(start, n)))
    for p in paths:
        scratch.remove(p)
    return GatherResult(task.bucket, tuple(files), rest)
