"""`zeroloop bench learning`: a tiny two-arm benchmark end to end (budgets kept, JSON complete), the
arms' validation, and the match's random openings it plays from."""

from __future__ import annotations

import io
import json

import pytest

from conftest import GNUGO, run_cli
from zeroloop.bench import learning as L
from zeroloop.errors import UserError
from zeroloop.go.game import Game
from zeroloop.go.rules import Rules
from zeroloop.loop.settings import LoopSettings
from zeroloop.loop.sync import LoopState, SyncLoop, selfplay_nn_evals
from zeroloop.storage import BaseDir
from zeroloop.match import opening_for_game, random_openings

GAMES_PER_CYCLE = 16
BUDGET = 100  # less than any cycle of 16 games uses: each arm runs a random cycle and one with its net
# 5x5, b1c16, 8 visits, no gating (fewer processes): every stage runs for a second or two.
COMMON = ["model_kind=\"b1c16\"", "board_size=5", "visits=8", f"games_per_cycle={GAMES_PER_CYCLE}",
          "games_at_once=8", "gating=false", "shuffle_min_rows=40", "keep_target_rows=2000",
          "taper_window_scale=500", "batch_size=32", "samples_per_epoch=128", "max_train_samples_per_cycle=512",
          "lr_warmup_samples=0", "threads=1"]


def test_two_arms_on_one_budget(tmp_path):
    arms = tmp_path / "arms.toml"
    arms.write_text("[common]\nmax_train_per_data = 2.0\n\n[arms.base]\n\n[arms.cheap]\ncheap_visits = 1\n")
    argv = ["bench", "learning", "--json", "--dir", str(tmp_path / "b"), "--arms", str(arms),
            "--budget-nn-evals", str(BUDGET), "--head-to-head-games", "2", "--visits", "4", "--parallel", "1",
            "--gnugo-levels", "1", "--gnugo-games", "2" if GNUGO else "0", "--seed", "3"]
    for c in COMMON:
        argv += ["--set", c]
    p = run_cli(*argv, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["budget_nn_evals"] == BUDGET and out["board_size"] == 5 and out["max_train_per_data"] == 2.0
    assert set(out["arms"]) == {"base", "cheap"}
    for name, arm in out["arms"].items():
        # the budget is spent, and the loop stopped at the first cycle boundary after that
        assert arm["nn_evals_before_last_cycle"] < BUDGET <= arm["nn_evals"], arm
        cycles = [json.loads(x) for x in (tmp_path / "b" / name / "loop" / "cycles.jsonl").read_text().splitlines()]
        n = len(cycles)  # random cycles until the first training, then one with the net
        assert n == arm["cycles"] >= 2 and arm["games"] == n * GAMES_PER_CYCLE and arm["rows"] > 0
        # the random evaluator's cycles cost no budget; the net's cycle spends it
        assert all(c["nn_evals"] == 0 for c in cycles[:-1]) and cycles[-1]["model"] != "random"
        assert arm["random_evaluator_evals"] == cycles[-1]["random_evals"] > 0
        assert cycles[-1]["nn_evals"] == arm["nn_evals"] and arm["nn_evals_before_last_cycle"] == 0
        assert 0 < arm["samples"] <= 2.0 * arm["rows"] + 2 * 128  # training held to the samples per row
        assert arm["wall_seconds"] > 0 and arm["cpu_seconds"] > 0 and set(arm["last_losses"]) >= {"policy", "value"}
        assert arm["model"].startswith(f"{name}-b1c16-s")
        other = "cheap" if name == "base" else "base"
        h2h = arm["vs"][other]
        assert h2h["games"] == 2 and h2h["wins"] + h2h["losses"] + h2h["draws"] == 2
        assert h2h["score_95"][0] <= h2h["score"] <= h2h["score_95"][1]
        if GNUGO:
            g = arm["vs"]["gnugo-l1"]
            assert g["games"] == 2 and 0 <= g["score"] <= 1
    cheap = out["arms"]["cheap"]["settings"]
    assert (cheap["cheap_visits"], cheap["visits"], cheap["gating"], cheap["max_train_per_data"]) == (1, 8, False, 2.0)
    assert "cheap_visits" not in out["arms"]["base"]["settings"]
    m = out["head_to_head"]
    assert m["base"]["base"] is None and m["base"]["cheap"] == pytest.approx(1 - m["cheap"]["base"])
    assert out["arms"]["base"]["vs"]["cheap"]["score"] == m["base"]["cheap"]
    assert json.loads((tmp_path / "b" / "learning.json").read_text())["head_to_head"] == m  # written as it goes


def test_the_last_cycle_plays_what_the_budget_pays_for(tmp_path):
    loop = SyncLoop(BaseDir.open(str(tmp_path)), LoopSettings("x", games_per_cycle=500), max_nn_evals=10_000,
                    out=io.StringIO())
    state = LoopState()
    assert loop._cycle_games(state, 0) == 500 and not loop.budget_spent(state)  # nothing known: a full cycle
    state.nn_evals = 2_000  # 20 games of 100 evaluations
    assert loop._cycle_games(state, 20) == 80
    state.nn_evals = 9_950
    assert loop._cycle_games(state, 99) == 1
    state.nn_evals, state.evals_per_game = 2_000, 50.0  # the last step's games were shorter: their rate counts
    assert loop._cycle_games(state, 20) == 160
    state.nn_evals = 10_000
    assert loop.budget_spent(state)
    assert SyncLoop(loop.base, loop.s, out=io.StringIO())._cycle_games(state, 100) == 500  # no budget


def test_nn_evals_come_from_the_last_selfplay_run_in_the_log(tmp_path):
    log = tmp_path / "selfplay.log"
    assert selfplay_nn_evals(str(log)) == 0  # no log yet
    log.write_text("=== 1 cycle 1 selfplay\nINFO selfplay stopped: 500 games written (8000 rows, 8 tdata files), "
                   "123456 NN evals, max games; stop took 0.1 s\n=== 2 cycle 2 selfplay\nINFO starting\n")
    assert selfplay_nn_evals(str(log)) == 0  # the last run logged none (killed)
    with log.open("a") as f:
        f.write("INFO selfplay stopped: 20 games written (300 rows, 1 tdata files), 4321 NN evals, SIGTERM\n")
    assert selfplay_nn_evals(str(log)) == 4321


def test_arms_are_validated(tmp_path):
    with pytest.raises(UserError, match="unknown setting 'visit'"):
        L.arm_from_text("a visit=3")
    with pytest.raises(UserError, match="expected int"):
        L.arm_from_text("a visits=0.5")
    with pytest.raises(UserError, match="board_size must be the same for every arm"):
        L.resolve_arms({}, [L.arm_from_text("a"), L.arm_from_text("b board_size=9")], 1)
    with pytest.raises(UserError, match="two or more arms"):
        L.resolve_arms({}, [L.arm_from_text("a")], 1)
    with pytest.raises(UserError, match="names must differ"):
        L.resolve_arms({}, [L.arm_from_text("a"), L.arm_from_text("a")], 1)
    with pytest.raises(UserError, match="arm b: .*no_such_key"):
        L.resolve_arms({}, [L.arm_from_text("a"), L.arm_from_text("b selfplay.no_such_key=1")], 1)
    with pytest.raises(UserError, match="arm b: --train-flag not-a-flag: no such train flag"):
        L.resolve_arms({}, [L.arm_from_text("a"), L.arm_from_text("b train.not-a-flag=1")], 1)
    f = tmp_path / "arms.yaml"
    f.write_text("common: {board_size: 7}\narm: {}\n")
    with pytest.raises(UserError, match="unknown top-level key arm"):
        L.arms_from_file(str(f))
    f.write_text("common: {board_size: 7}\narms: {x: {visits: 32, selfplay: {cheap_visits: 4}}, y: {}}\n")
    common, arms = L.arms_from_file(str(f))
    resolved = L.resolve_arms(common, arms, 1)
    assert [a.name for a, _ in resolved] == ["x", "y"]
    x, y = (s for _, s in resolved)
    assert (x.visits, x.selfplay_keys, x.board_size, x.run_komi) == (32, {"cheap_visits": 4}, 7, 9.0)
    assert (y.visits, y.selfplay_keys, y.seed) == (32, {}, 1)


def test_flipped_record_is_the_other_side():
    r = {"games": 10, "wins": 6, "losses": 3, "draws": 1, "score": 0.65, "score_95": [0.35, 0.85], "elo": 107.5,
         "elo_95": [-100.0, None], "by_colour": {"black": [4, 0, 1], "white": [2, 3, 0]}}
    f = L.flip_record(r)
    assert (f["wins"], f["losses"], f["score"], f["score_95"]) == (3, 6, 0.35, [0.15, 0.65])
    assert f["elo"] == -107.5 and f["elo_95"] == [None, 100.0]
    assert f["by_colour"] == {"black": [3, 2, 0], "white": [0, 4, 1]}
    counts = {"self": {"games": 9, "score_differs": 0, "winner_differs": 0},
              "opponent": {"games": 9, "score_differs": 2, "winner_differs": 1}}
    f = L.flip_record({**r, "own_counts": counts})
    assert f["own_counts"] == {"self": counts["opponent"], "opponent": counts["self"]}


def test_random_openings_are_legal_repeatable_and_paired():
    ops = random_openings(20, 7, 3, seed=4)
    assert ops == random_openings(20, 7, 3, seed=4) and ops != random_openings(20, 7, 3, seed=5)
    assert len(set(ops)) > 15  # the point: games differ
    for op in ops:
        assert len(op) == 3 and all(0 < x < 6 and 0 < y < 6 for x, y in op)
        g = Game(7, Rules("positional", False, 9.0))
        for move in op:
            assert g.is_legal(g.to_move, move)
            g.play(g.to_move, move)
    assert [opening_for_game(ops, i, True) for i in range(4)] == [ops[0], ops[0], ops[1], ops[1]]
    assert opening_for_game(ops, 3, False) == ops[3] and opening_for_game([], 3, True) == ()


def test_head_to_head_against_one_baseline(tmp_path):
    assert L.head_to_head_pairs(3) == [(0, 1), (0, 2), (1, 2)]
    assert L.head_to_head_pairs(4, baseline=0) == [(0, 1), (0, 2), (0, 3)]
    assert L.head_to_head_pairs(4, baseline=2) == [(0, 2), (1, 2), (2, 3)]  # the pairs' order (and seeds) kept
    # an unknown baseline is refused before any arm trains
    p = run_cli("bench", "learning", "--dir", str(tmp_path / "b"), "--arm", "a", "--arm", "b visits=4",
                "--budget-nn-evals", "10", "--head-to-head-with", "c", timeout=120)
    assert p.returncode != 0 and "--head-to-head-with 'c': no such arm (arms: a, b)" in p.stderr
    assert not (tmp_path / "b" / "a").exists()


def test_an_arm_stopped_before_its_budget_plays_no_matches(tmp_path, monkeypatch):
    """A loop stopped by a signal exits 0: the arm is refused (its matches would judge a half-trained net),
    and its time so far is kept for the rerun that carries on."""
    root = tmp_path / "a"
    s = LoopSettings(board_size=5, name_prefix="a")

    def stopped_loop(argv, **kw):  # what `zeroloop loop` leaves when SIGTERM stops it early
        base = BaseDir.open(str(root))
        LoopState(nn_evals=40).save(base)
        return L.subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(L.subprocess, "run", stopped_loop)
    with pytest.raises(UserError, match="arm a: the loop stopped after 40 of 100 NN evaluations; rerun"):
        L.train_arm(root, s, 100, log=lambda m: None)
    assert L._timing_path(root).exists()  # written before the refusal
    L._timing_path(root).write_text(json.dumps({"wall_seconds": 100.0, "cpu_seconds": 50.0}))  # earlier runs
    with pytest.raises(UserError):
        L.train_arm(root, s, 100, log=lambda m: None)
    timing = json.loads(L._timing_path(root).read_text())
    assert timing["wall_seconds"] >= 100.0 and timing["cpu_seconds"] >= 50.0  # accumulated, not reset


def test_train_only_trains_one_arm_and_plays_nothing(tmp_path, monkeypatch):
    from zeroloop import cliflags
    parser = cliflags.ArgumentParser()
    L.add_arguments(parser)
    cliflags.add_common(parser, device=True)  # as `zeroloop bench` adds them
    argv = ["--dir", str(tmp_path / "b"), "--arm", "a", "--arm", "b visits=4", "--budget-nn-evals", "10"]
    trained = []
    monkeypatch.setattr(L, "train_arm", lambda root, s, budget, log: trained.append(root.name) or {"nn_evals": 10})
    monkeypatch.setattr(L, "play", lambda *a, **kw: pytest.fail("--train-only plays no match"))
    assert L.measure(parser.parse_args(argv + ["--train-only", "b"])) == {"arm": "b", "nn_evals": 10}
    assert trained == ["b"]
    with pytest.raises(UserError, match=r"--train-only 'c': no such arm \(arms: a, b\)"):
        L.measure(parser.parse_args(argv + ["--train-only", "c"]))
    assert trained == ["b"]
