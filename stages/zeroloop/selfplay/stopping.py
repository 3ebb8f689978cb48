"""Which searches in progress a stopping self-play lets finish, and which it cuts at once.

At SIGTERM the engine starts nothing new and steps on until the searches
in progress have made their moves, for at most
``inprogress_stop_search_seconds``; the search tree is not saved, so a
search cut short loses its visits (its game is saved and, resumed, searches
that move again from a fresh tree, at full batches). The stop weighs the
two costs in evaluations at the full batch's pace:

- a stop step evaluates only the searches still open, yet costs a step:
  its waste is the time of the step less that of its evaluations in a full
  batch. With a step costing ``fixed + per_eval * batch`` seconds, a step
  of batch b wastes ``fixed * (full - b) / (fixed + per_eval * full)``
  evaluations: next to nothing where the evaluations dominate (a CPU, whose
  step time grows with its batch: finish everything), nearly a full batch
  where the step's cost is fixed (a GPU below its capacity: cut nearly
  everything at once);
- a search cut loses the visits it has.

So the stop keeps the searches within H steps of their end, H chosen to
make the waste of H steps (at the batches left) plus the visits of the
searches beyond H least, and steps on; the step costs are fitted from the
last steps' durations and batches, before and during the stop (until their
batches differ enough to tell the fixed part, nothing is cut for it). A
search that cannot finish in the time left, at the last step's pace, would
be cut at the deadline anyway: it is cut now, so no step goes to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StepCost:
    """A batched step's seconds: ``fixed + per_eval * batch``, for a full batch of ``full`` evaluations."""

    fixed: float
    per_eval: float
    full: int

    def waste(self, batch: np.ndarray) -> np.ndarray:
        """Evaluations a step of each batch size wastes against a full batch's pace."""
        full_seconds = self.fixed + self.per_eval * self.full
        if full_seconds <= 0:
            return np.zeros(len(batch))
        return self.fixed * (self.full - np.asarray(batch, dtype=np.float64)) / full_seconds


def fit_step_cost(batches: np.ndarray, seconds: np.ndarray, full: int) -> StepCost | None:
    """Least squares of seconds against batch; None while the batches span under a quarter of a full one."""
    b = np.asarray(batches, dtype=np.float64)
    t = np.asarray(seconds, dtype=np.float64)
    if len(b) < 3 or b.max() - b.min() < full / 4:
        return None
    per_eval, fixed = np.polyfit(b, t, 1)
    if per_eval <= 0:  # noise (a loaded machine): no per-evaluation cost seen, all of a step is fixed
        return StepCost(max(float(np.mean(t)), 0.0), 0.0, full)
    if fixed < 0:
        return StepCost(0.0, float(np.mean(t / np.maximum(b, 1))), full)
    return StepCost(float(fixed), float(per_eval), full)


def steps_to_keep(remaining: np.ndarray, visits: np.ndarray, cost: StepCost | None) -> int:
    """The horizon H (steps) whose stop waste plus the visits of the searches needing more is least.

    remaining, visits: of the searches still open. A search gets one visit a
    step, so the batch of step s is the number of kept searches with at
    least s visits to go. Without a cost fit, nothing is cut for waste.
    """
    if len(remaining) == 0:
        return 0
    if cost is None:
        return int(remaining.max())
    order = np.sort(remaining)
    best_h, best = 0, float(visits.sum())  # H = 0: cut every search
    for h in np.unique(order[order > 0]):
        steps = np.arange(1, h + 1)
        kept = order[order <= h]
        batch = len(kept) - np.searchsorted(kept, steps, side="left")  # kept searches with >= s to go
        total = float(cost.waste(batch).sum()) + float(visits[remaining > h].sum())
        if total < best:
            best_h, best = int(h), total
    return best_h


def searches_to_cut(visits: np.ndarray, targets: np.ndarray, searching: np.ndarray, cost: StepCost | None,
                    step_seconds: float | None, seconds_left: float) -> np.ndarray:
    """Indices of the searches to cut now (see the module docstring).

    visits, targets: each slot's root visits and visit budget; searching: a
    mask of the slots still searching; cost: the fitted step cost (None: not
    known yet); step_seconds: the last batch step's duration (None before
    the first stop step: only the cost rule applies).
    """
    remaining = targets - visits
    open_ = np.flatnonzero(searching)
    if seconds_left <= 0:
        return open_
    horizon = steps_to_keep(remaining[open_], visits[open_], cost)
    if step_seconds is not None and step_seconds > 0:
        horizon = min(horizon, math.floor(seconds_left / step_seconds))
    return open_[remaining[open_] > horizon]
