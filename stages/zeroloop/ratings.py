"""Elo ratings of many players from pairwise game results (Bradley-Terry).

The ladder plays models against each other and against fixed GNU Go levels;
this fits one Elo scale to all the results at once, as Minigo rated its
models. Each pair's record is wins, losses and draws (a draw counts half to
each side). A perfect record would push a rating to infinity, so every
pair that met gets one virtual draw (a weak prior that shrinks ratings
toward each other). The fit is Hunter's minorise-maximise iteration on
strengths gamma = 10**(elo/400); standard errors come from the inverse
Hessian of the log-likelihood with the anchor held fixed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

ELO_PER_NAT = 400.0 / np.log(10.0)


@dataclass(frozen=True)
class Rating:
    name: str
    elo: float
    stderr: float  # 0 for the anchor, inf when unconnected


def fit(results: Iterable[tuple[str, str, float, float]], anchor: str | None = None,
        anchor_elo: float = 0.0, prior_draws: float = 1.0, iters: int = 2000) -> dict[str, Rating]:
    """Ratings from (a, b, points_a, games) records; anchor's rating is fixed.

    points_a counts a's wins plus half its draws against b over ``games``.
    Without an anchor, the ratings are centred on mean 0.
    """
    names: list[str] = []
    index: dict[str, int] = {}
    records = []
    for a, b, points, games in results:
        if games <= 0:
            continue
        if not 0 <= points <= games:
            raise ValueError(f"{a} vs {b}: {points} points out of {games} games")
        for n in (a, b):
            if n not in index:
                index[n] = len(names)
                names.append(n)
        records.append((index[a], index[b], float(points), float(games)))
    if anchor is not None and anchor not in index:
        raise ValueError(f"anchor {anchor!r} played no games")
    k = len(names)
    if k == 0:
        return {}
    wins = np.zeros((k, k))  # wins[i, j]: points i scored against j
    for i, j, pts, g in records:
        wins[i, j] += pts + prior_draws / 2
        wins[j, i] += g - pts + prior_draws / 2
    games = wins + wins.T
    gamma = np.ones(k)
    total_wins = wins.sum(axis=1)
    for _ in range(iters):
        denom = (games / (gamma[:, None] + gamma[None, :])).sum(axis=1)
        new = np.where(denom > 0, total_wins / np.maximum(denom, 1e-300), gamma)
        new /= np.exp(np.mean(np.log(new)))
        if np.max(np.abs(np.log(new) - np.log(gamma))) < 1e-10:
            gamma = new
            break
        gamma = new
    elo = np.log(gamma) * ELO_PER_NAT
    fixed = index[anchor] if anchor is not None else None
    elo = elo - (elo[fixed] - anchor_elo if fixed is not None else np.mean(elo))
    stderr = _stderr(gamma, games, fixed)
    return {n: Rating(n, float(elo[i]), float(stderr[i])) for n, i in index.items()}


def _stderr(gamma: np.ndarray, games: np.ndarray, fixed: int | None) -> np.ndarray:
    # Observed information of the log-strengths, one parameter held fixed.
    k = len(gamma)
    p = gamma[:, None] / (gamma[:, None] + gamma[None, :])
    w = games * p * p.T
    h = np.diag(w.sum(axis=1)) - w
    keep = [i for i in range(k) if i != (fixed if fixed is not None else 0)]
    out = np.full(k, np.inf)
    if fixed is not None:
        out[fixed] = 0.0
    try:
        cov = np.linalg.inv(h[np.ix_(keep, keep)])
    except np.linalg.LinAlgError:
        return out
    out[keep] = np.sqrt(np.maximum(np.diag(cov), 0.0)) * ELO_PER_NAT
    if fixed is None:
        out[0] = np.nan  # the centring leaves the reference's error undefined
    return out


def records_from_tallies(tallies: Mapping[tuple[str, str], tuple[int, int, int]]) -> list[tuple[str, str, float, float]]:
    """(a, b) -> (a's wins, a's losses, draws) into fit()'s records."""
    return [(a, b, w + d / 2, w + l + d) for (a, b), (w, l, d) in tallies.items()]
