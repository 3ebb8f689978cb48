"""`zeroloop bench train`: training from shuffled files on disk vs from memory.

Shuffles synthetic rows into real shuffled files, then times the trainer's
own step (device copy, random symmetry, forward, losses, backward, SGD)
fed two ways, alternating step by step so that a noisy neighbour slows both
alike: from host tensors prepared beforehand, and from the production data
path (files read, hash-checked, decompressed and unpacked by the background
reader, which runs throughout as it does in training; its few milliseconds
per batch are negligible next to a step either way). Each memory step and
the disk step right after it form a pair measured under the same outside
load; ``ratio`` is the median over pairs of (memory step time / disk step
time), i.e. disk samples/s over memory samples/s, robust to bursts of load
from other processes on a shared machine. ``ratio_of_means`` (total
samples/s each way) is printed too: a data path that stalled on every k-th
batch would pull it down even where the median hides it. The data path is
good when it hides behind compute (target >= 0.9).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time

import numpy as np
import torch

from zeroloop.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-kind", default="b6c96")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--pos-len", type=int, default=9)
    parser.add_argument("--steps", type=int, default=24, help="steps each way, alternating memory/disk")
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    parser.add_argument("--rows-per-file", type=int, default=2_560)


def measure(args: argparse.Namespace) -> dict:
    from zeroloop import runtime
    from zeroloop.bench import synthetic
    from zeroloop.shuffle import main as shuffle_main
    from zeroloop.storage import BaseDir
    from zeroloop.train import data, files
    from zeroloop.train.loop import Trainer
    from zeroloop.train.options import TrainOptions

    if args.steps < 1:
        raise UserError("--steps must be at least 1")

    threads = runtime.set_threads(getattr(args, "threads", None))
    bs = args.batch_size
    steps_total = args.steps + 1
    rows = steps_total * bs + args.rows_per_file
    tmp = tempfile.mkdtemp(prefix="zeroloop-bench-train-")
    try:
        base = BaseDir.open(tmp)
        synthetic.write_tdata(base, "bench", -(-rows // args.rows_per_file), args.rows_per_file, args.pos_len,
                              np.random.default_rng(0))
        sopts = shuffle_main.ShuffleOptions(min_rows=bs, num_processes=1,
                                            approx_rows_per_out_file=args.rows_per_file, batch_size=bs, seed=0)
        out = shuffle_main.shuffle_once(base, sopts)
        refs = tuple(files.FileRef.of(f) for f in out.summary.files)
        opts = TrainOptions(name="bench", model_kind=args.model_kind, batch_size=bs, device=args.device,
                            optimizer=args.optimizer, lr_warmup_samples=0, seed=0, export_mode="main")
        trainer = Trainer(base, opts, threading.Event())
        trainer._start_fresh(args.pos_len)
        device, pos_len = trainer.device, args.pos_len
        pin = device.type == "cuda"

        def step(hb) -> None:
            trainer.train_step(data.to_device(hb, device, int(trainer.rng.integers(0, 8)), pos_len))

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize()

        epoch = files.Epoch(out.out_dir.rsplit("/", 1)[1], refs)
        memory = [hb.pin() if pin else hb for hb in _take(data.epoch_batches(
            base.storage, out.out_dir, epoch, bs, pos_len), min(args.steps, 4))]
        step(memory[0])  # warm-up: allocator, kernels, optimizer state
        step(memory[-1])
        mem_times, disk_times = [], []
        prefetch = data.Prefetcher(data.epoch_batches(base.storage, out.out_dir, epoch, bs, pos_len, pin))
        batches = iter(prefetch)
        try:
            for i in range(args.steps):
                sync()
                t0 = time.perf_counter()
                step(memory[i % len(memory)])
                sync()
                t1 = time.perf_counter()
                step(next(batches))
                sync()
                t2 = time.perf_counter()
                mem_times.append(t1 - t0)
                disk_times.append(t2 - t1)
        finally:
            prefetch.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    samples = args.steps * bs
    disk, mem = samples / sum(disk_times), samples / sum(mem_times)
    pair_ratios = np.array(mem_times) / np.array(disk_times)
    return {"ratio": float(np.median(pair_ratios)), "ratio_of_means": disk / mem,
            "ratio_of_median_steps": float(np.median(mem_times) / np.median(disk_times)),
            "samples_per_s_disk": disk, "samples_per_s_memory": mem,
            "model_kind": args.model_kind, "batch_size": bs, "pos_len": pos_len, "optimizer": args.optimizer,
            "steps": args.steps, "device": str(device), "threads": threads}


def _take(it, n: int) -> list:
    out = []
    for x in it:
        out.append(x)
        if len(out) == n:
            break
    return out
