"""Batched net evaluation for search: numpy features in, numpy predictions out.

Search gathers leaves from many games and calls ``NetEvaluator.evaluate``
once per batch. The evaluator holds the net in its fastest measured form
for the device and returns what search uses, already post-processed in the
same torch call (softmax policy and value, tanh ownership), so the Python
side does no per-position math.

CPU: the default is the folded net (``zeroloop.nn.fold``) in channels_last,
traced with ``torch.jit.trace`` and frozen, run 64 positions at a time,
without per-layer masking when every position fills the grid. On this
machine's CPU (2 cores of an AMD EPYC with AVX-512 and AVX512_BF16, newer
than the Zen 3 that reference/performance.md describes) ``zeroloop bench
nn`` measured for b6c96 on 9x9: channels_last and folding each about +5-10%
over the eager NCHW model, 64-position chunks +50% at batch 256 (where the
unchunked net falls out of cache), the frozen trace a few percent more.
``precision="bf16"`` is about 1.6-1.7x faster again here (native bf16 dot products) at a cost of ~0.005 in value and
~2% relative in policy; it is an option, not the default, and is slower on
CPUs without AVX512_BF16. ``torch.compile`` costs seconds per batch shape
and is not offered.

CUDA: host inputs are staged in pinned buffers and copied non-blocking;
``precision="fp16"`` or ``"bf16"`` runs the folded net in that dtype
(outputs are always float32); the whole batch is one chunk. Results are
copied back before returning.

``measure_throughput`` is the one definition of "raw batched inference
throughput": ``zeroloop bench nn`` and ``zeroloop bench selfplay`` both
call it, so raw and in-self-play figures use the same code path.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from zeroloop import features
from zeroloop.nn.fold import fold as fold_net
from zeroloop.nn.model import MASK_PLANE, Net, NetOutputs, check_inputs, random_init_model

__all__ = ["Evaluation", "NetEvaluator", "Throughput", "measure_throughput", "random_init_model",
           "random_inputs", "board_policy"]

log = logging.getLogger(__name__)

CPU_CHUNK = 64  # positions per forward pass on CPU (bench nn: 32-64 beat 256 by about a fifth)
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class Evaluation(NamedTuple):
    """Predictions for a batch of B positions (float32 numpy, mover's view)."""

    policy: np.ndarray  # (B, P*P+1) move probabilities, row-major points then pass; 0 off board
    value: np.ndarray  # (B, 3) probabilities of win, loss, draw
    score: np.ndarray  # (B,) expected final score in points
    ownership: np.ndarray  # (B, P, P) expected ownership in [-1, 1], +1 the mover's; 0 off board


class _Predict(torch.nn.Module):
    """Net outputs -> what search uses, inside the same (traceable) call."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, spatial: torch.Tensor, glob: torch.Tensor):
        out: NetOutputs = self.net(spatial, glob)
        policy = torch.softmax(out[0][:, 0].float(), dim=1)
        return policy, torch.softmax(out[1].float(), dim=1), out[2].float(), torch.tanh(out[3].float())


class NetEvaluator:
    """Evaluate batches of encoded positions with one net on one device.

    fold, channels_last, jit and chunk default to the fastest combination
    measured here; turn them off to compare (``zeroloop bench nn`` does).
    ``max_batch`` is the most positions one call may bring without being
    split (the size of the CUDA staging buffers); ``chunk`` is how many go
    through the net at once: on CPU a batch of 256 runs faster as four
    chunks of 64, whose activations stay in cache. Batches in which every
    position fills the whole grid skip the per-layer masking (exact there).
    Not thread-safe: one evaluator per thread, or a lock around evaluate.
    """

    def __init__(self, model: Net, device: str | torch.device = "cpu", max_batch: int = 256, *,
                 fold: bool = True, channels_last: bool = True, jit: bool = True, precision: str = "fp32",
                 chunk: int | None = None):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        self.device = torch.device(device)
        self.pos_len = model.pos_len
        self.config = model.config
        self.feature_version = model.config.features
        self.max_batch = max_batch
        default_chunk = CPU_CHUNK if self.device.type == "cpu" else max_batch
        self.chunk = max(1, min(max_batch, chunk or default_chunk))
        self.settings = {"fold": fold, "channels_last": channels_last, "jit": jit, "precision": precision,
                         "chunk": self.chunk}
        self._dtype = PRECISIONS[precision]
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if self.device.type == "cuda":
            # Pinned staging buffers: host-to-device copies that overlap and skip a bounce copy.
            num_spatial, num_global = features.shape(self.feature_version)
            shape = (self.chunk, num_spatial, self.pos_len, self.pos_len)
            self._host_spatial = torch.empty(shape, dtype=torch.float32, pin_memory=True)
            self._host_glob = torch.empty((self.chunk, num_global), dtype=torch.float32, pin_memory=True)
        self._predict = self._prepare(fold_net(model) if fold else _eval_copy(model), jit)
        # The unmasked form, for batches that fill the grid; only folded nets have one.
        self._predict_full = self._prepare(fold_net(model, masked=False), jit) if fold else self._predict

    def _prepare(self, net: torch.nn.Module, jit: bool) -> torch.nn.Module:
        net = net.to(self.device, self._dtype).to(memory_format=self._memory_format)
        predict = _Predict(net).eval()
        if not jit:
            return predict
        spatial, glob = self._to_device(*random_inputs(min(self.chunk, 8), self.pos_len, seed=0,
                                                       feature_version=self.feature_version))
        # torch 2.13 marks jit deprecated; it still works and is a little faster here (bench nn),
        # and should a later torch drop it, the eager module serves instead.
        try:
            with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                traced = torch.jit.trace(predict, (spatial, glob), check_trace=False)
                return torch.jit.freeze(traced.eval())
        except Exception as e:  # noqa: BLE001 - any tracing failure: fall back, never fail
            log.warning("torch.jit tracing failed (%s); evaluating the net eagerly", e)
            return predict

    def _to_device(self, spatial: np.ndarray, glob: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        n = spatial.shape[0]
        if self.device.type == "cuda":
            hs, hg = self._host_spatial[:n], self._host_glob[:n]
            hs.numpy()[...] = spatial
            hg.numpy()[...] = glob
            s = hs.to(self.device, non_blocking=True)
            g = hg.to(self.device, non_blocking=True)
        else:
            s = torch.from_numpy(np.ascontiguousarray(spatial, dtype=np.float32))
            g = torch.from_numpy(np.ascontiguousarray(glob, dtype=np.float32))
        s = s.to(self._dtype).contiguous(memory_format=self._memory_format)
        return s, g.to(self._dtype)

    def evaluate(self, spatial: np.ndarray, glob: np.ndarray) -> Evaluation:
        """Predictions for spatial (B, planes, P, P) and glob (B, globals) float32 arrays of the net's feature version."""
        check_inputs(spatial, glob, self.pos_len, self.feature_version)
        n, c = spatial.shape[0], self.chunk
        if n <= c:
            return self._evaluate_chunk(spatial, glob)
        parts = [self._evaluate_chunk(spatial[i : i + c], glob[i : i + c]) for i in range(0, n, c)]
        return Evaluation(*(np.concatenate(arrays) for arrays in zip(*parts)))

    def _evaluate_chunk(self, spatial: np.ndarray, glob: np.ndarray) -> Evaluation:
        full = bool(spatial[:, MASK_PLANE].all())
        with torch.inference_mode():
            outputs = (self._predict_full if full else self._predict)(*self._to_device(spatial, glob))
            if self.device.type == "cpu":
                return Evaluation(*(t.numpy() for t in outputs))
            host = [t.to("cpu", non_blocking=True) for t in outputs]
            torch.cuda.current_stream(self.device).synchronize()
            return Evaluation(*(t.numpy() for t in host))


def _eval_copy(model: Net) -> Net:
    """An eval-mode copy of model (the caller's net keeps its mode and device)."""
    copy = Net(model.config, model.pos_len)
    copy.load_state_dict(model.state_dict())
    return copy.eval()


def random_inputs(batch: int, pos_len: int, board_size: int | None = None, seed: int = 0,
                  feature_version: int = features.FEATURE_VERSION) -> tuple[np.ndarray, np.ndarray]:
    """Plausible encoded positions (binary planes, a board_size mask, small globals) for tests and benchmarks."""
    n = board_size or pos_len
    rng = np.random.default_rng(seed)
    num_spatial, num_global = features.shape(feature_version)
    spatial = (rng.random((batch, num_spatial, pos_len, pos_len)) < 0.2).astype(np.float32)
    spatial[:, 0] = 0.0
    spatial[:, 0, :n, :n] = 1.0
    spatial *= spatial[:, :1]
    glob = (rng.standard_normal((batch, num_global)) * 0.3).astype(np.float32)
    return spatial, glob


def board_policy(policy: np.ndarray, board_size: int, pos_len: int) -> np.ndarray:
    """(..., pos_len*pos_len+1) net policy -> (..., n*n+1) in the board's index order (y*n+x, pass last)."""
    lead = policy.shape[:-1]
    grid = policy[..., : pos_len * pos_len].reshape(*lead, pos_len, pos_len)[..., :board_size, :board_size]
    return np.concatenate([grid.reshape(*lead, board_size * board_size), policy[..., -1:]], axis=-1)


@dataclass(frozen=True)
class Throughput:
    positions_per_s: float
    batch_size: int
    batches: int
    seconds: float


def measure_throughput(evaluator: NetEvaluator, batch_size: int, board_size: int | None = None,
                       seconds: float = 3.0, warmup: int = 3, seed: int = 0,
                       clock: Callable[[], float] = time.perf_counter) -> Throughput:
    """Raw batched inference speed: evaluate() on fixed random inputs, warm-up batches excluded.

    Runs whole batches until ``seconds`` have passed on ``clock`` (wall time
    by default; ``time.thread_time`` with one torch thread gives CPU time,
    steadier on a shared machine) and reports positions per second.
    """
    spatial, glob = random_inputs(batch_size, evaluator.pos_len, board_size, seed, evaluator.feature_version)
    for _ in range(max(0, warmup)):
        evaluator.evaluate(spatial, glob)
    batches = 0
    start = clock()
    while True:
        evaluator.evaluate(spatial, glob)
        batches += 1
        elapsed = clock() - start
        if elapsed >= seconds and batches >= 2:
            break
    return Throughput(batches * batch_size / elapsed, batch_size, batches, elapsed)
