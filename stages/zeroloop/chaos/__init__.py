"""Fault injection: the asynchronous loop under SIGKILL, SIGTERM, SIGSTOP and restarts.

``harness`` runs the loop's stages as supervised processes on a tiny
configuration and injects faults into each in turn; ``invariants`` checks
a BASEDIR afterwards (no game lost or duplicated, no file corrupt or
half-published, training never going back, models consistent). The test
suite (``tests/chaos``) and ``zeroloop bench chaos`` both use them.
"""
