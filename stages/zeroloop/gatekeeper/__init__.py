"""The gatekeeper stage: candidates play the accepted model; the better one is kept.

``main`` is the command (`zeroloop gatekeeper`) with the polling loop and
the decision; ``config`` its typed settings. The games themselves are
played by the shared ``zeroloop.arena``, the decision rules are
``zeroloop.gating``, and the records it leaves are ``zeroloop.decisions``.
"""

from zeroloop.gatekeeper.main import (ArenaMatch, CandidateUnusable, Dirs, Gatekeeper, Judge, add_arguments,
                                      run)

__all__ = ["ArenaMatch", "CandidateUnusable", "Dirs", "Gatekeeper", "Judge", "add_arguments", "run"]
