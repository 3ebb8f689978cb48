"""`zeroloop bench train`: training from shuffled files on disk vs from memory.

Shuffles synthetic rows into real shuffled files, then times the trainer's
own step (device copy, random symmetry, forward, losses, backward, SGD)
two ways in alternating rounds of the same length: fed by the production
data path (files read, hash-checked, decompressed and unpacked in the
background thread) and fed from host tensors prepared beforehand.
``ratio`` = disk samples/s over memory samples/s over all rounds (and
``ratio_median_round``, the median of the rounds' ratios, which a noisy
neighbour moves less); the data path is good when it hides behind compute
(target >= 0.9). A fresh background reader starts each disk round, so its
start-up is counted and its work never overlaps a memory round.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time

import numpy as np
import torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-kind", default="b6c96")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--pos-len", type=int, default=9)
    parser.add_argument("--steps", type=int, default=3, help="steps per round and way")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds (shared machines are noisy)")
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    parser.add_argument("--rows-per-file", type=int, default=2_560)


def measure(args: argparse.Namespace) -> dict:
    from zeroloop import runtime
    from zeroloop.bench import synthetic
    from zeroloop.shuffle import main as shuffle_main
    from zeroloop.shuffle import window
    from zeroloop.storage import BaseDir
    from zeroloop.train import data, files
    from zeroloop.train.loop import Trainer
    from zeroloop.train.options import TrainOptions

    threads = runtime.set_threads(getattr(args, "threads", None))
    bs = args.batch_size
    steps_total = args.steps * args.rounds + 1
    rows = steps_total * bs + args.rows_per_file
    tmp = tempfile.mkdtemp(prefix="zeroloop-bench-train-")
    try:
        base = BaseDir.open(tmp)
        synthetic.write_tdata(base, "bench", -(-rows // args.rows_per_file), args.rows_per_file, args.pos_len,
                              np.random.default_rng(0))
        sopts = shuffle_main.ShuffleOptions(params=window.WindowParams(min_rows=bs), num_processes=1,
                                            approx_rows_per_out_file=args.rows_per_file, batch_size=bs, seed=0)
        out = shuffle_main.shuffle_once(base, sopts)
        refs = tuple(files.FileRef.of(f) for f in out.summary.files)
        opts = TrainOptions(name="bench", model_kind=args.model_kind, batch_size=bs, device=args.device,
                            optimizer=args.optimizer, warmup_samples=0, seed=0)
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
            base.storage, out.out_dir, epoch, bs, pos_len), args.steps)]
        step(memory[0])  # warm-up: allocator, kernels, optimizer state
        disk_s = mem_s = 0.0
        round_ratios = []
        position = files.Epoch(epoch.shuffle_dir, refs)
        for _ in range(args.rounds):
            sync()
            t0 = time.perf_counter()
            for hb in memory:
                step(hb)
            sync()
            mem_round = time.perf_counter() - t0
            mem_s += mem_round
            t0 = time.perf_counter()
            prefetch = data.Prefetcher(data.epoch_batches(base.storage, out.out_dir, position, bs, pos_len, pin))
            last = None
            for i, hb in enumerate(prefetch):
                step(hb)
                last = hb
                if i + 1 == args.steps:
                    break
            prefetch.close()
            sync()
            disk_round = time.perf_counter() - t0
            disk_s += disk_round
            round_ratios.append(mem_round / disk_round)
            assert last is not None
            position = files.Epoch(epoch.shuffle_dir, refs, last.file_index, last.batch_index + 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    samples = args.steps * args.rounds * bs
    disk, mem = samples / disk_s, samples / mem_s
    return {"ratio": disk / mem, "ratio_median_round": float(np.median(round_ratios)),
            "samples_per_s_disk": disk, "samples_per_s_memory": mem,
            "model_kind": args.model_kind, "batch_size": bs, "pos_len": pos_len, "optimizer": args.optimizer,
            "steps": args.steps * args.rounds, "device": str(device), "threads": threads}


def _take(it, n: int) -> list:
    out = []
    for x in it:
        out.append(x)
        if len(out) == n:
            break
    return out
