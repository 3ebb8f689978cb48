"""Process resources: CPU threads from the cgroup quota, and the torch device.

Torch and numba size their thread pools from the host's cores, not the
container's CPU limit; on a pod limited to 2 CPUs of a 64-core node that
oversubscribes 30-fold. ``cpu_count()`` reads the cgroup quota (v2, then v1)
so every stage sizes its pools to what it may use.
"""

from __future__ import annotations

import logging
import math
import os

from zeroloop.errors import UserError

log = logging.getLogger(__name__)


def cgroup_cpu_limit() -> float | None:
    """CPUs allowed by the cgroup quota, or None when unlimited/unknown."""
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int(open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read())
        period = int(open("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def cpu_count() -> int:
    """Usable CPUs: affinity, capped by the cgroup quota (at least 1)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        n = min(n, max(1, math.ceil(limit)))
    return max(1, n)


def set_threads(threads: int | None) -> int:
    """Size torch's and numba's pools; returns the count used."""
    n = threads or cpu_count()
    if n < 1:
        raise UserError(f"--threads {n}: must be at least 1")
    import torch

    try:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except (ImportError, ValueError):
        pass
    # After numba's: starting numba's OpenMP threading layer can reset the OpenMP thread count torch
    # reads (seen in a stage forked from the warm loop: torch on 2 threads with --threads 1, 10x slower).
    torch.set_num_threads(n)
    return n


def resolve_device(name: str = "auto"):
    """A torch.device from auto|cpu|cuda|cuda:N, with a clear error if absent."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise UserError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    return dev


def start_seed(seed: int | None, nonce: int | None = None) -> tuple[int, int]:
    """(the seed this start uses, its nonce): seed mixed with a per-start nonce (fresh from the OS if None).

    A stage restarted with the same --seed (a pod rollout, the asynchronous loop) would otherwise replay
    the same random games and duplicate its training data; logging the nonce lets a start be replayed.
    """
    import numpy as np

    if nonce is None:
        nonce = int.from_bytes(os.urandom(8), "little")
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    mixed = np.random.SeedSequence([seed % 2**64, nonce % 2**64]).generate_state(1, np.uint64)[0]
    return int(mixed) >> 1, nonce


def seed_everything(seed: int | None) -> int:
    """Seed numpy, torch, numba and random; draw a seed from the OS if None."""
    import random

    import numpy as np
    import torch

    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    from zeroloop.go import board

    board.seed(seed % 2**32)
    return seed
