"""Rules of a game: ko rule, suicide and komi (KataGo's meanings).

- ko rule ``simple``: only immediate recapture of a single stone is banned;
  ``positional`` superko: no move may recreate an earlier board position;
  ``situational`` superko: nor one with the same player to move next.
- ``multi_stone_suicide``: a move that kills its own group of two or more
  stones is legal (single-stone suicide never is).
- Area scoring (Tromp-Taylor) with komi; an integer komi can draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from zeroloop.errors import ConfigError
from zeroloop.go import KO_RULE_NAMES, MAX_KOMI, board

# Bumped whenever a rules field changes meaning (ko codes, scoring, suicide): saved
# games in progress (zeroloop.selfplay.snapshot) from another version are refused.
RULES_VERSION = 1
KO_RULES = dict(zip(KO_RULE_NAMES, (board.KO_SIMPLE, board.KO_POSITIONAL, board.KO_SITUATIONAL)))


@dataclass(frozen=True)
class Rules:
    ko_rule: str = "positional"
    multi_stone_suicide: bool = False
    komi: float = 7.0

    def __post_init__(self):
        if self.ko_rule not in KO_RULES:
            raise ConfigError(f"ko rule {self.ko_rule!r}: expected one of {', '.join(KO_RULES)}")
        check_komi(self.komi)

    @property
    def ko_code(self) -> int:
        return KO_RULES[self.ko_rule]

    def with_komi(self, komi: float) -> "Rules":
        return Rules(self.ko_rule, self.multi_stone_suicide, komi)

    def sgf_name(self) -> str:
        """The RU property: KataGo's rules string, e.g. koPOSITIONALscoreAREAsui0."""
        return f"ko{self.ko_rule.upper()}scoreAREAsui{int(self.multi_stone_suicide)}"

    @classmethod
    def from_sgf_name(cls, text: str | None, komi: float) -> "Rules":
        """Rules from an RU property (KataGo strings or common names)."""
        t = (text or "").strip().lower()
        if t.startswith("ko"):
            ko = next((k for k in KO_RULES if t.startswith("ko" + k)), "positional")
            return cls(ko, "sui1" in t, komi)
        if t in ("japanese", "korean", "aga", "chinese", "nz", "new zealand", "tromp-taylor", ""):
            # Area scoring is all zeroloop plays; NZ and Tromp-Taylor allow suicide.
            return cls("positional", t in ("nz", "new zealand", "tromp-taylor"), komi)
        return cls("positional", False, komi)


def check_komi(komi: float) -> float:
    """A komi must be finite, a multiple of 0.5 and within +-150."""
    if not isinstance(komi, (int, float)) or not math.isfinite(komi):
        raise ConfigError(f"komi {komi!r} is not a number")
    if abs(komi) > MAX_KOMI:
        raise ConfigError(f"komi {komi} is outside -{MAX_KOMI:g}..{MAX_KOMI:g}")
    if komi * 2 != int(komi * 2):
        raise ConfigError(f"komi {komi} is not a multiple of 0.5")
    return float(komi)
