"""When a gating match is decided: fixed-length with early stopping, or SPRT.

Pure functions over a tally of candidate results, used by the gatekeeper.

- Fixed length (KataGo's gatekeeper): N games; the candidate is accepted if
  its points (win 1, draw 1/2) reach ``required * games played`` (ties go to
  the candidate). The match stops as soon as the remaining games cannot
  change the outcome.
- SPRT (Leela Zero's gating): a sequential probability ratio test of
  H0: Elo = elo0 against H1: Elo = elo1 on the candidate's score, with the
  normal approximation of the log-likelihood ratio used by Fishtest's GSPRT
  (draws count through the score variance). It stops when the LLR leaves
  [log(beta/(1-alpha)), log((1-beta)/alpha)]; if the game cap is reached
  first, the fixed-length rule decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ACCEPT, REJECT, CONTINUE = "accept", "reject", "continue"


@dataclass(frozen=True)
class Tally:
    """Candidate results so far."""

    wins: int = 0
    losses: int = 0
    draws: int = 0

    @property
    def games(self) -> int:
        return self.wins + self.losses + self.draws

    @property
    def points(self) -> float:
        return self.wins + 0.5 * self.draws

    def add(self, result: str) -> "Tally":
        """result: 'win', 'loss' or 'draw' (from the candidate's side)."""
        if result == "win":
            return Tally(self.wins + 1, self.losses, self.draws)
        if result == "loss":
            return Tally(self.wins, self.losses + 1, self.draws)
        if result == "draw":
            return Tally(self.wins, self.losses, self.draws + 1)
        raise ValueError(f"unknown result {result!r}")


@dataclass(frozen=True)
class SprtParams:
    elo0: float = 0.0
    elo1: float = 35.0
    alpha: float = 0.05
    beta: float = 0.05

    def __post_init__(self):
        if not self.elo1 > self.elo0:
            raise ValueError(f"SPRT needs elo1 > elo0 (got {self.elo0}, {self.elo1})")
        for name in ("alpha", "beta"):
            v = getattr(self, name)
            if not 0 < v < 0.5:
                raise ValueError(f"SPRT {name} = {v} must be in (0, 0.5)")

    @property
    def bounds(self) -> tuple[float, float]:
        return math.log(self.beta / (1 - self.alpha)), math.log((1 - self.beta) / self.alpha)


def accepted(t: Tally, required: float) -> bool:
    """The final rule: candidate points reach the required share (ties pass)."""
    return t.points + 1e-10 >= required * t.games


def fixed_decision(t: Tally, total_games: int, required: float) -> str:
    """ACCEPT/REJECT once the remaining games cannot change it, else CONTINUE."""
    remaining = total_games - t.games
    if remaining <= 0:
        return ACCEPT if accepted(t, required) else REJECT
    need = required * total_games
    if t.points + 1e-10 >= need:
        return ACCEPT
    if t.points + remaining + 1e-10 < need:
        return REJECT
    return CONTINUE


def elo_to_score(elo: float) -> float:
    return 1.0 / (1.0 + 10.0 ** (-elo / 400.0))


def sprt_llr(t: Tally, p: SprtParams) -> float:
    """Log-likelihood ratio of H1 over H0 for the tally (0 with no information)."""
    n = t.games
    if n == 0:
        return 0.0
    s = t.points / n
    var = (t.wins * (1 - s) ** 2 + t.draws * (0.5 - s) ** 2 + t.losses * s**2) / n
    if var <= 0:
        # All results identical: regularise with one virtual draw.
        return sprt_llr(Tally(t.wins, t.losses, t.draws + 1), p)
    s0, s1 = elo_to_score(p.elo0), elo_to_score(p.elo1)
    return n * (s1 - s0) * (2 * s - s0 - s1) / (2 * var)


def sprt_decision(t: Tally, p: SprtParams, max_games: int, required: float) -> str:
    """SPRT verdict; at max_games without one, the fixed-length rule decides."""
    lower, upper = p.bounds
    llr = sprt_llr(t, p)
    if llr >= upper:
        return ACCEPT
    if llr <= lower:
        return REJECT
    if t.games >= max_games:
        return ACCEPT if accepted(t, required) else REJECT
    return CONTINUE
