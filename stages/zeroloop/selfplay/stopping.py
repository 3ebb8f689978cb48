"""Which searches in progress a stopping self-play lets finish, and which it cuts at once.

At SIGTERM the engine starts nothing new and steps on until the searches
in progress have made their moves, for at most
``inprogress_stop_search_seconds``; the search tree is not saved, so a
search cut short loses its visits (its game is saved and, resumed, searches
that move again from a fresh tree). Stepping on is worth it only for
searches near their end:

- a search whose remaining visits exceed those it already has is cut at
  once: finishing it would hold the stop for more steps (each a whole
  batched evaluation, in a batch that empties) than it has visits to lose
  (evaluated a full batch at a time); redone after the restart, it costs
  those visits again, at full batches;
- a search that cannot finish in the time left, at the last step's pace,
  would be cut at the deadline anyway: cut now, its slot leaves the batch
  and the others finish sooner.

Every step of the stop therefore serves a search that will make its move,
and the stop lasts about as long as the longest of them needs.
"""

from __future__ import annotations

import math

import numpy as np


def searches_to_cut(visits: np.ndarray, targets: np.ndarray, searching: np.ndarray, step_seconds: float | None,
                    seconds_left: float) -> np.ndarray:
    """Indices of the searches to cut now (see the module docstring).

    visits, targets: each slot's root visits and visit budget; searching: a
    mask of the slots still searching; step_seconds: the last batch step's
    duration (None before the first: only the evaluation rule applies).
    """
    remaining = targets - visits
    cut = remaining > visits
    if seconds_left <= 0:
        cut[:] = True
    elif step_seconds is not None and step_seconds > 0:
        cut |= remaining > math.floor(seconds_left / step_seconds)
    return np.flatnonzero(searching & cut)
