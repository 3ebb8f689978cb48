"""What evaluates a batch of positions for the search: a net, or no net at all.

An evaluator takes features (B, NUM_SPATIAL, P, P) and globals
(B, NUM_GLOBAL) as float32 numpy arrays and returns ``EvalOutput``:
policy logits (B, C, P*P+1) whose channel 0 is the move to play, win /
loss / draw logits (B, 3) and the expected score (B,), all from the view of
the player to move. The search maps symmetries and legality itself.

- ``NullEvaluator``: uniform policy, even value, zero score and no work,
  so self-play with it measures the CPU cost of search, rules and features.
- ``RandomEvaluator``: the "random" model self-play uses before any model
  exists (KataGo's ``debugSkipNeuralNet``): Gaussian policy logits and
  small Gaussian value noise, so bootstrap games are varied.
- ``NetSearchEvaluator``: a trained net through ``zeroloop.nn.evaluator``.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

RANDOM_MODEL_NAME = "random"


class EvalOutput(NamedTuple):
    policy: np.ndarray  # (B, C, P*P+1) float32 logits, channel 0 = move
    value: np.ndarray  # (B, 3) float32 win/loss/draw logits
    score: np.ndarray  # (B,) float32 points


class Evaluator(Protocol):
    name: str
    pos_len: int

    def evaluate(self, spatial: np.ndarray, glob: np.ndarray) -> EvalOutput: ...


class NullEvaluator:
    """Uniform policy, even value: the search's own cost, no net."""

    def __init__(self, pos_len: int, name: str = "null", max_batch: int = 1024):
        self.name = name
        self.pos_len = pos_len
        self._policy = np.zeros((max_batch, 1, pos_len * pos_len + 1), dtype=np.float32)
        self._value = np.zeros((max_batch, 3), dtype=np.float32)
        self._score = np.zeros(max_batch, dtype=np.float32)

    def evaluate(self, spatial: np.ndarray, glob: np.ndarray) -> EvalOutput:
        b = spatial.shape[0]
        if b > self._policy.shape[0]:
            self.__init__(self.pos_len, self.name, 2 * b)
        return EvalOutput(self._policy[:b], self._value[:b], self._score[:b])


class RandomEvaluator:
    """Gaussian policy logits (sd 1) and value logits (sd 0.2): bootstrap play."""

    def __init__(self, pos_len: int, seed: int | None = None, name: str = RANDOM_MODEL_NAME):
        self.name = name
        self.pos_len = pos_len
        self._rng = np.random.default_rng(seed)

    def evaluate(self, spatial: np.ndarray, glob: np.ndarray) -> EvalOutput:
        b = spatial.shape[0]
        area = self.pos_len * self.pos_len + 1
        policy = self._rng.standard_normal((b, 1, area), dtype=np.float32)
        value = self._rng.standard_normal((b, 3), dtype=np.float32) * np.float32(0.2)
        return EvalOutput(policy, value, np.zeros(b, dtype=np.float32))


class NetSearchEvaluator:
    """A loaded model through the nn helper's batched NetEvaluator."""

    def __init__(self, net_evaluator, name: str, pos_len: int):
        self.net = net_evaluator
        self.name = name
        self.pos_len = pos_len

    def evaluate(self, spatial: np.ndarray, glob: np.ndarray) -> EvalOutput:
        out = self.net.evaluate(spatial, glob)
        return EvalOutput(_f32(out.policy), _f32(out.value), _f32(out.score))


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)
