"""A run's progress from its pods' Prometheus metrics: models, games, rows, samples, gating.

Why metrics and not a JSON file on the volume: the operator serves every run
in the cluster and mounts none of their volumes (a run's claim may be
ReadWriteOnce, in another zone, or an EFS access point for another user), so
it cannot read BASEDIR. Every stage already serves its numbers on its metrics
port, named in one catalogue (``zeroloop.metrics``) that the dashboards
share, so the operator reads those, from each pod of the run, and needs no
new file format, no extra writes on the shared volume and no sidecar.

What each field is, and how resets are handled (a pod's counters start at
zero whenever its container starts):
- ``samples``: the trainer's samples counter (restored from its checkpoint,
  so it survives restarts);
- ``rows``: the largest total of data rows that the shuffler or trainer last
  saw on disk (a gauge counted from the files, also restart-proof);
- ``games``, ``acceptedModels``, ``rejectedModels``: sums over pods of
  counter increases, computed the way Prometheus' ``increase()`` does: per
  pod, the last scraped value is kept in ``status.progress.pods``; a value
  below it means the container restarted, so all of it is new. Games a pod
  finishes after its last scrape and before it is deleted are not counted,
  so ``games`` is a lower bound (the dashboards, fed by Prometheus, are the
  exact record);
- ``latestModel``: the newest model the self-play pods report using (they
  switch to each accepted model between games; the info metric's ``name``
  key, ``model`` also accepted), ordered by the samples in its name;
- ``lastGating``: accepted or rejected, with the candidate's score rate,
  when a gatekeeper counter moved since the last scrape.

Everything here is pure: scraping is in ``scrape``; ``merge`` takes the
previous progress and this round's samples and returns the new progress.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

# The catalogue series the operator reads (a test checks they are exported).
GAMES = "zeroloop_selfplay_games_total"
MODEL_INFO = "zeroloop_selfplay_model_info"
TRAIN_SAMPLES = "zeroloop_train_samples_total"
TRAIN_ROWS = "zeroloop_train_data_rows"
SHUFFLE_ROWS = "zeroloop_shuffle_data_rows"
ACCEPTED = "zeroloop_gatekeeper_models_accepted_total"
REJECTED = "zeroloop_gatekeeper_models_rejected_total"
WIN_RATE = "zeroloop_gatekeeper_candidate_win_rate"
SERIES_READ = (GAMES, MODEL_INFO, TRAIN_SAMPLES, TRAIN_ROWS, SHUFFLE_ROWS, ACCEPTED, REJECTED, WIN_RATE)

RANDOM_MODEL = "random"
_SAMPLES_IN_NAME = re.compile(r"-s(\d+)-d(\d+)")


@dataclass(frozen=True)
class PodMetrics:
    """One pod's scrape: series name -> [(labels, value)]."""

    pod: str
    component: str
    series: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)

    def total(self, name: str) -> float | None:
        values = self.series.get(name)
        return None if not values else sum(v for _, v in values)


def parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text exposition -> series name -> [(labels, value)], only the series read here."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in SERIES_READ:
                out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return out


def model_order(name: str) -> tuple[int, int, str]:
    """Sort key of model names: by samples and rows in the name (-s<samples>-d<rows>), then by name."""
    m = _SAMPLES_IN_NAME.search(name)
    return (int(m.group(1)), int(m.group(2)), name) if m else (-1, -1, name)


def _models(pod: PodMetrics) -> list[str]:
    out = []
    for labels, value in pod.series.get(MODEL_INFO, []):
        name = labels.get("model") or labels.get("name")
        if name and value > 0 and name != RANDOM_MODEL:
            out.append(name)
    return out


def _increase(previous: float | None, current: float) -> float:
    """Counter increase since the last scrape; a drop means the counter restarted."""
    if previous is None or current < previous:
        return current
    return current - previous


def merge(old: dict[str, Any] | None, scrapes: list[PodMetrics], live_pods: set[str], now: str) -> dict[str, Any]:
    """New progress from the previous progress and this round's scrapes.

    live_pods names the run's pods that exist now: remembered counters of
    other pods are forgotten; those of live pods that could not be scraped
    this round are kept, so they are not counted twice later.
    """
    old = dict(old or {})
    remembered = {p["name"]: p for p in old.get("pods") or [] if p.get("name") in live_pods}
    games = int(old.get("games") or 0)
    accepted = int(old.get("acceptedModels") or 0)
    rejected = int(old.get("rejectedModels") or 0)
    rows = int(old.get("rows") or 0)
    samples = old.get("samples")
    latest = old.get("latestModel") or ""
    last_gating = old.get("lastGating")
    pods = dict(remembered)

    for pod in scrapes:
        before = remembered.get(pod.pod, {})
        entry: dict[str, Any] = {"name": pod.pod, "component": pod.component}
        if (g := pod.total(GAMES)) is not None:
            games += int(_increase(before.get("games"), g))
            entry["games"] = int(g)
        moved = {}
        for key, series in (("accepted", ACCEPTED), ("rejected", REJECTED)):
            if (v := pod.total(series)) is not None:
                moved[key] = int(_increase(before.get(key), v))
                entry[key] = int(v)
        accepted += moved.get("accepted", 0)
        rejected += moved.get("rejected", 0)
        if moved.get("accepted") or moved.get("rejected"):
            last_gating = {"result": "accepted" if moved.get("accepted") else "rejected", "time": now}
            if (rate := pod.total(WIN_RATE)) is not None:
                last_gating["winRate"] = round(rate, 4)
        models = _models(pod)
        if models:
            entry["model"] = max(models, key=model_order)
            if not latest or model_order(entry["model"]) > model_order(latest):
                latest = entry["model"]
        for series in (SHUFFLE_ROWS, TRAIN_ROWS):
            if (r := pod.total(series)) is not None:
                rows = max(rows, int(r))
        if (s := pod.total(TRAIN_SAMPLES)) is not None:
            samples = int(s)
        pods[pod.pod] = entry

    out: dict[str, Any] = {
        "games": games,
        "rows": rows,
        "samples": int(samples or 0),
        "acceptedModels": accepted,
        "rejectedModels": rejected,
        "updateTime": now,
        "pods": [pods[name] for name in sorted(pods)],
    }
    if latest:
        out["latestModel"] = latest
    if last_gating:
        out["lastGating"] = last_gating
    return out
