"""Go itself: the numba board, rules, games, SGF, ladders and pass-alive areas.

The limits a setting may name (board sizes, komi, ko rule names) are here, not in a module
that needs numpy or numba, so that stage settings (``zeroloop.selfplay.config``,
``zeroloop.gatekeeper.config``) import without them: the operator checks with them.
"""

MIN_SIZE = 2
MAX_SIZE = 19
MAX_KOMI = 150.0
KO_RULE_NAMES = ("simple", "positional", "situational")  # zeroloop.go.rules gives each its board code
