"""The shuffle stage: the recent window of self-play rows, uniformly shuffled.

``main`` is the command (`zeroloop shuffle`); ``window`` the pure choice of
rows (KataGo's window formula); ``inputs`` finds the tdata files;
``scatter`` the bounded-memory two-phase shuffle; ``cleanup`` removes old
shuffles safely. The output format is ``zeroloop.shuffled``.
"""

from zeroloop.shuffle.main import add_arguments, run, shuffle_once

__all__ = ["add_arguments", "run", "shuffle_once"]
