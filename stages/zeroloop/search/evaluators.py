"""What evaluates a batch of positions for the search: a net, or no net at all.

An evaluator takes features (B, planes, P, P) of its ``feature_version`` and globals
(B, NUM_GLOBAL) as float32 numpy arrays and returns ``EvalOutput``: move
probabilities (B, P*P+1) (board points row-major, then pass), win / loss /
draw probabilities (B, 3) and the expected score (B,), all from the view of
the player to move, which is what ``zeroloop.nn.evaluator.NetEvaluator``
returns. The search maps symmetries and renormalises over legal moves.

- ``NullEvaluator``: uniform policy, even value, zero score and no work,
  so self-play with it measures the CPU cost of search, rules and features.
- ``RandomEvaluator``: the "random" model self-play uses before any model
  exists (KataGo's ``debugSkipNeuralNet``): policy from Gaussian logits and
  a slightly noisy even value, so bootstrap games are varied.
- ``NetSearchEvaluator``: a loaded model through ``NetEvaluator``.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

RANDOM_MODEL_NAME = "random"


class EvalOutput(NamedTuple):
    policy: np.ndarray  # (B, P*P+1) float32 move probabilities
    value: np.ndarray  # (B, 3) float32 win/loss/draw probabilities
    score: np.ndarray  # (B,) float32 points


class Evaluator(Protocol):
    name: str
    pos_len: int
    feature_version: int  # the inputs it reads (zeroloop.features)

    def evaluate(self, spatial: np.ndarray, glob: np.ndarray) -> EvalOutput: ...


class NullEvaluator:
    """Uniform policy, even value: the search's own cost, no net."""

    def __init__(self, pos_len: int, name: str = "null", max_batch: int = 1024, feature_version: int = 1):
        self.name = name
        self.pos_len = pos_len
        self.feature_version = feature_version
        self._alloc(max_batch)

    def _alloc(self, batch: int) -> None:
        self._policy = np.ones((batch, self.pos_len * self.pos_len + 1), dtype=np.float32)
        self._value = np.full((batch, 3), 1.0 / 3.0, dtype=np.float32)
        self._score = np.zeros(batch, dtype=np.float32)

    def evaluate(self, spatial: np.ndarray, glob: np.ndarray) -> EvalOutput:
        b = spatial.shape[0]
        if b > self._policy.shape[0]:
            self._alloc(2 * b)
        return EvalOutput(self._policy[:b], self._value[:b], self._score[:b])


class RandomEvaluator:
    """Softmax of Gaussian logits (sd 1) for policy and value (sd 0.2): bootstrap play."""

    def __init__(self, pos_len: int, seed: int | None = None, name: str = RANDOM_MODEL_NAME, feature_version: int = 1):
        self.name = name
        self.pos_len = pos_len
        self.feature_version = feature_version
        self._rng = np.random.default_rng(seed)

    def evaluate(self, spatial: np.ndarray, glob: np.ndarray) -> EvalOutput:
        b = spatial.shape[0]
        policy = _softmax(self._rng.standard_normal((b, self.pos_len * self.pos_len + 1), dtype=np.float32))
        value = _softmax(self._rng.standard_normal((b, 3), dtype=np.float32) * np.float32(0.2))
        return EvalOutput(policy, value, np.zeros(b, dtype=np.float32))


class NetSearchEvaluator:
    """A loaded model through the nn package's batched NetEvaluator."""

    def __init__(self, net_evaluator, name: str):
        self.net = net_evaluator
        self.name = name
        self.pos_len = int(net_evaluator.pos_len)
        self.feature_version = int(net_evaluator.feature_version)

    def evaluate(self, spatial: np.ndarray, glob: np.ndarray) -> EvalOutput:
        out = self.net.evaluate(spatial, glob)
        return EvalOutput(out.policy, out.value, out.score)


def net_evaluator(model, name: str, device="cpu", max_batch: int = 256, precision: str = "fp32") -> NetSearchEvaluator:
    """A search evaluator for a torch Net (folded and traced for speed)."""
    from zeroloop.nn.evaluator import NetEvaluator

    return NetSearchEvaluator(NetEvaluator(model, device, max_batch=max_batch, precision=precision), name)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
