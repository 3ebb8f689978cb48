"""Everything a shuffle is told: one typed setting per flag, with KataGo's shuffle.py defaults.

Each field is a ``zeroloop shuffle`` flag (``--keep-target-rows`` is
``keep_target_rows``; ``zeroloop shuffle-export-loop`` takes them too) and a
key of its ``--config`` file, with its doc and range (``zeroloop.config``);
``zeroloop shuffle --help-config`` lists them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from zeroloop import runtime
from zeroloop.config import option
from zeroloop.errors import ConfigError
from zeroloop.shuffle.window import WindowParams


def keep_target(text: str) -> int | None:
    """--keep-target-rows: a row count, or 'all' (None)."""
    if text == "all":
        return None
    try:
        n = int(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a row count or 'all', got {text!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {n}")
    return n


def rows(text: str) -> int:
    """A row count flag: 250000 and 2.5e5 alike."""
    try:
        n = int(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a row count, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {n}")
    return n


# help sections of `zeroloop shuffle --help`
GROUPS = {
    "window (KataGo's shuffle.py)": ("min_rows", "max_rows", "keep_target_rows", "expand_window_per_row",
                                     "taper_window_exponent", "taper_window_scale", "add_to_data_rows", "pos_len"),
    "work and output": ("num_processes", "worker_group_size", "approx_rows_per_bucket", "approx_rows_per_out_file",
                        "batch_size", "scratch_dir", "seed"),
    "cleanup of old shuffles": ("keep_shuffled_dirs", "cleanup_grace_seconds", "in_use_expiry_seconds"),
}


@dataclass(frozen=True, kw_only=True)
class ShuffleOptions:
    # window (KataGo's shuffle.py)
    min_rows: int = option(250_000, "fewest usable rows to shuffle at all; also the window's minimum", above=0,
                           parse=rows)
    max_rows: int | None = option(None, "largest window (default: no limit)", lo=0, parse=rows)
    keep_target_rows: int | None = option(None, "keep about this many rows of the window, sampled uniformly "
                                                "(default, or the flag's 'all': every row)", lo=1,
                                          parse=keep_target, metavar="N|all")
    expand_window_per_row: float = option(1.0, "initial growth of the window per new data row", lo=0.0)
    taper_window_exponent: float = option(1.0, "power-law exponent of window growth (KataGo's runs: 0.65)",
                                          above=0.0)
    taper_window_scale: int | None = option(None, "rows at which the taper starts (default: --min-rows)", lo=0,
                                            parse=rows)
    add_to_data_rows: int = option(0, "pretend this many more data rows exist (window and row range)", lo=0,
                                   parse=rows)
    pos_len: int | None = option(None, "shuffle only rows of this data board length (needed when several exist)",
                                 lo=2)
    # work and output
    num_processes: int | None = option(None, "worker processes (default: usable CPUs, at most 8)", lo=1)
    worker_group_size: int = option(80_000, "rows a worker loads at once in the scatter phase", lo=1, parse=rows)
    approx_rows_per_bucket: int = option(100_000, "rows per bucket: bounds the memory of the gather phase", lo=1,
                                         parse=rows)
    approx_rows_per_out_file: int = option(70_000, "rows per output file", lo=1, parse=rows)
    batch_size: int = option(1, "the trainer's batch size: output files hold whole batches", lo=1)
    scratch_dir: str | None = option(None, "scratch for shards (default: BASEDIR/shufflescratch)")
    seed: int | None = option(None, "random seed (default: from the OS)")
    # cleanup of old shuffles
    keep_shuffled_dirs: int = option(3, "always keep this many newest shuffles", lo=0)
    cleanup_grace_seconds: float = option(7200.0, "never remove a shuffle younger than this", lo=0.0)
    in_use_expiry_seconds: float = option(86400.0, "a trainer's in-use mark older than this no longer protects a "
                                                   "shuffle", lo=0.0)

    def __post_init__(self) -> None:
        if self.max_rows is not None and self.max_rows < self.min_rows:
            raise ConfigError(f"--max-rows {self.max_rows} is below --min-rows {self.min_rows}")

    @property
    def params(self) -> WindowParams:
        return WindowParams(self.min_rows, self.max_rows, self.expand_window_per_row, self.taper_window_exponent,
                            self.taper_window_scale, self.add_to_data_rows)

    @property
    def processes(self) -> int:
        """Worker processes: --num-processes, else the usable CPUs (at most 8)."""
        return self.num_processes if self.num_processes is not None else min(8, runtime.cpu_count())
