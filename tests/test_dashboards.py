"""The Grafana dashboards query only metrics the stages export (the one catalogue).

Each panel's PromQL is reduced to the metric names it selects (label
matchers, strings, ranges, functions and grouping clauses stripped); every
``zeroloop_*`` name must be a series of ``zeroloop.metrics.CATALOGUE`` and
anything else must be a standard series (``up``). The operator's progress
reader is held to the same catalogue.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from zeroloop import metrics
from zeroloop_operator import progress

DASHBOARDS = Path(__file__).resolve().parents[1] / "charts" / "zeroloop" / "dashboards"
STANDARD_SERIES = {"up"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan"}
EXPORTED = {name for spec in metrics.CATALOGUE for name in metrics.exported_series(spec)}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        rest = text[match.end():].lstrip()
        word = match.group()
        if rest.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def dashboards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(board: dict) -> list[dict]:
    return [p for p in board["panels"] if p.get("type") != "row"]


def test_the_name_extractor():
    expr = ('histogram_quantile(0.9, sum by (le) (rate(zeroloop_selfplay_game_length_moves_bucket'
            '{run=~"$run", le!="x"}[$__rate_interval]))) / on (run) group_left max(up{job="a"})')
    assert metric_names(expr) == {"zeroloop_selfplay_game_length_moves_bucket", "up"}
    assert metric_names('sum(rate(foo_total[5m])) * 3600') == {"foo_total"}


def test_every_dashboard_metric_is_exported_by_a_stage():
    seen = set()
    for name, board in dashboards().items():
        for panel in panels(board):
            for target in panel["targets"]:
                for metric in metric_names(target["expr"]):
                    seen.add(metric)
                    if metric.startswith("zeroloop_"):
                        assert metric in EXPORTED, f"{name}/{panel['title']}: {metric} is not in the catalogue"
                    else:
                        assert metric in STANDARD_SERIES, f"{name}/{panel['title']}: unknown series {metric}"
    assert len({m for m in seen if m.startswith("zeroloop_")}) >= 25


# Series no pod in a cluster serves: `zeroloop ladder` writes them to a file on the machine it runs on.
OFFLINE_ONLY = {"zeroloop_ladder_elo"}


def test_no_panel_depends_on_a_series_no_pod_serves():
    for name, board in dashboards().items():
        for panel in panels(board):
            for target in panel["targets"]:
                assert not metric_names(target["expr"]) & OFFLINE_ONLY, f"{name}/{panel['title']}"


def test_the_operator_reads_only_catalogue_series():
    assert set(progress.SERIES_READ) <= EXPORTED


@pytest.mark.parametrize("board, titles", [
    ("selfplay", ["Games per hour", "Training rows per second", "NN evaluations per second, per pod",
                  "Batch fill (mean batch / max batch)", "Game length (moves)", "Current model per pod"]),
    ("training", ["Loss per term", "Learning rate (per sample)", "Samples per second",
                  "Train bucket (samples allowed)", "Samples per data row"]),
    ("gating", ["Gating games per hour by result", "Accepted and rejected per hour", "Models accepted",
                "Models rejected", "Candidate Elo over the accepted model"]),
])
def test_dashboards_have_the_panels_the_issue_asks_for(board, titles):
    present = {p["title"] for p in panels(dashboards()[board])}
    assert set(titles) <= present, set(titles) - present


def test_dashboards_are_well_formed():
    boards = dashboards()
    assert sorted(boards) == ["gating", "selfplay", "training"]
    assert len({b["uid"] for b in boards.values()}) == 3
    for board in boards.values():
        variables = {v["name"] for v in board["templating"]["list"]}
        assert {"datasource", "run"} <= variables
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids))
        for panel in panels(board):
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"] and all(t["expr"] for t in panel["targets"])
            pos = panel["gridPos"]
            assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24
            # Series are filtered by run, except the standard `up` series' own filter.
            assert all('run=~"$run"' in t["expr"] for t in panel["targets"]), panel["title"]
