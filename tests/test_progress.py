"""progress.merge: counters summed over pods, restarts and vanished pods handled, as Prometheus' increase() does."""

from __future__ import annotations

from zeroloop_operator import progress


def pod(name: str, component: str, text: str) -> progress.PodMetrics:
    return progress.PodMetrics(name, component, progress.parse(text))


def test_parse_keeps_only_the_series_read_and_their_labels():
    series = progress.parse(
        "# TYPE zeroloop_selfplay_games_total counter\nzeroloop_selfplay_games_total 12.0\n"
        'zeroloop_selfplay_model_info{name="r-b6c96-s10-d5"} 1.0\n'
        'zeroloop_train_loss{term="policy"} 2.5\n')
    assert series == {"zeroloop_selfplay_games_total": [({}, 12.0)],
                      "zeroloop_selfplay_model_info": [({"name": "r-b6c96-s10-d5"}, 1.0)]}


def test_games_accumulate_across_rounds_restarts_and_pods():
    first = progress.merge(None, [pod("a", "selfplay", "zeroloop_selfplay_games_total 10"),
                                  pod("b", "selfplay", "zeroloop_selfplay_games_total 4")], {"a", "b"}, "t1")
    assert first["games"] == 14
    same = progress.merge(first, [pod("a", "selfplay", "zeroloop_selfplay_games_total 10")], {"a", "b"}, "t2")
    assert same["games"] == 14  # b unreachable this round: remembered, not recounted
    restarted = progress.merge(same, [pod("a", "selfplay", "zeroloop_selfplay_games_total 3"),
                                      pod("b", "selfplay", "zeroloop_selfplay_games_total 6")], {"a", "b"}, "t3")
    assert restarted["games"] == 14 + 3 + 2
    gone = progress.merge(restarted, [pod("c", "selfplay", "zeroloop_selfplay_games_total 1")], {"c"}, "t4")
    assert gone["games"] == 20 and [p["name"] for p in gone["pods"]] == ["c"]
    back = progress.merge(gone, [pod("a", "selfplay", "zeroloop_selfplay_games_total 3")], {"a", "c"}, "t5")
    assert back["games"] == 23, "a pod forgotten and seen again counts from zero"


def test_latest_model_rows_samples_and_gating():
    scrapes = [
        pod("a", "selfplay", 'zeroloop_selfplay_model_info{name="r-b6c96-s900-d100"} 1'),
        pod("b", "selfplay", 'zeroloop_selfplay_model_info{name="r-b6c96-s1200-d90"} 1'),
        pod("c", "selfplay", 'zeroloop_selfplay_model_info{name="random"} 1'),
        pod("t", "trainer", "zeroloop_train_samples_total 5000\nzeroloop_train_data_rows 800"),
        pod("s", "shuffler", "zeroloop_shuffle_data_rows 950"),
        pod("g", "gatekeeper", "zeroloop_gatekeeper_models_accepted_total 0\n"
                               "zeroloop_gatekeeper_models_rejected_total 2\n"
                               "zeroloop_gatekeeper_candidate_win_rate 0.3125"),
    ]
    out = progress.merge(None, scrapes, {"a", "b", "c", "t", "s", "g"}, "t1")
    assert out["latestModel"] == "r-b6c96-s1200-d90"
    assert out["rows"] == 950 and out["samples"] == 5000
    assert out["rejectedModels"] == 2 and out["lastGating"] == {"result": "rejected", "time": "t1", "winRate": 0.3125}
    later = progress.merge(out, [pod("g", "gatekeeper", "zeroloop_gatekeeper_models_accepted_total 1\n"
                                                        "zeroloop_gatekeeper_models_rejected_total 2")],
                           {"g"}, "t2")
    assert later["acceptedModels"] == 1 and later["lastGating"]["result"] == "accepted"
    assert later["rows"] == 950 and later["samples"] == 5000 and later["latestModel"] == "r-b6c96-s1200-d90"


def test_model_order_uses_samples_in_the_name():
    names = ["r-b6c96-s100-d9", "r-b6c96-s20-d99", "r-b6c96-s1000-d1"]
    assert max(names, key=progress.model_order) == "r-b6c96-s1000-d1"
