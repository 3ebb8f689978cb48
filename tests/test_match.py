"""`zeroloop match`: tallies and Elo (pure), and refereed games between engines."""

from __future__ import annotations

import json
import math
import shlex
import sys
import textwrap

import pytest

from conftest import cli, cli_env, run_cli
from zeroloop.errors import UserError
from zeroloop.go.sgf import read_sgf
from zeroloop.gtp_client import GtpClient
from zeroloop.match import (GameResult, MatchConfig, count_disagreements, elo_estimate, elo_from_score, format_summary,
                            parse_result, run_match, tally, wilson_interval)

# --- pure functions ------------------------------------------------------------


def results(spec: str) -> list[GameResult]:
    """'AB:A AB:B BA:- ...': black then white label, then the winner (- draw)."""
    out = []
    for item in spec.split():
        pair, winner = item.split(":")
        out.append(GameResult(pair[0], pair[1], None if winner == "-" else winner, "?", "score", 10))
    return out


def test_tally_by_engine_and_colour():
    games = results("AB:A AB:B BA:A BA:- AB:A")
    a, b = tally(games, "A"), tally(games, "B")
    assert (a.wins, a.losses, a.draws, a.points) == (3, 1, 1, 3.5)
    assert (b.wins, b.losses, b.draws) == (1, 3, 1)
    assert a.by_colour == {"black": [2, 1, 0], "white": [1, 0, 1]}
    assert b.by_colour == {"black": [0, 1, 1], "white": [1, 2, 0]}
    assert tally(games, "C").games == 0


def test_parse_result():
    assert (parse_result("B+3.5"), parse_result("W+2"), parse_result("0"), parse_result(" w+40.0 ")) == (
        3.5, -2.0, 0.0, -40.0)
    assert [parse_result(t) for t in ("B+R", "W+F", "W+T", "", "B+", "X+3", "B3", "? failed")] == [None] * 8


def test_own_counts_that_disagree_with_the_referee_are_counted():
    games = [GameResult("A", "B", "A", "B+4", "score", 50, {"A": "B+4", "B": "B+4"}),  # agree
             GameResult("B", "A", "A", "W+16", "score", 46, {"A": "W+16", "B": "B+2"}),  # B: another winner
             GameResult("A", "B", "A", "B+5", "score", 56, {"B": "B+8"}),  # B: a bigger margin
             GameResult("A", "B", "B", "W+R", "resign", 20, {}),  # not scored: not asked
             GameResult("A", "B", None, "0", "score", 60, {"B": "W+1"})]  # a draw the engine counts as a loss
    assert count_disagreements(games, "B") == {"games": 4, "score_differs": 3, "winner_differs": 2}
    assert count_disagreements(games, "A") == {"games": 2, "score_differs": 0, "winner_differs": 0}


def test_elo_from_score():
    assert elo_from_score(0.5) == 0
    assert elo_from_score(0.75) == pytest.approx(190.85, abs=0.01)  # 400*log10(3)
    assert elo_from_score(0.25) == pytest.approx(-190.85, abs=0.01)
    assert elo_from_score(1.0) == math.inf and elo_from_score(0.0) == -math.inf
    with pytest.raises(ValueError):
        elo_from_score(1.5)


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    lo, hi = wilson_interval(10, 10)
    assert lo == pytest.approx(0.7225, abs=1e-4) and hi == 1.0
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_elo_interval_contains_estimate_and_shrinks_with_games():
    elo, lo, hi = elo_estimate(6, 4, 0)
    assert lo < elo < hi and elo == pytest.approx(70.44, abs=0.01)
    elo2, lo2, hi2 = elo_estimate(600, 400, 0)
    assert elo2 == pytest.approx(elo) and hi2 - lo2 < (hi - lo) / 5
    elo, lo, hi = elo_estimate(10, 0, 0)
    assert elo == math.inf and hi == math.inf and lo == pytest.approx(elo_from_score(0.7225), abs=0.5)
    assert elo_estimate(0, 0, 4)[0] == 0
    assert elo_estimate(0, 0, 0) == (0.0, -math.inf, math.inf)


# --- engines -----------------------------------------------------------------

FAKE_ENGINE = textwrap.dedent('''
    import sys, time
    mode = sys.argv[1]
    size, moves = 9, 0
    cols = "ABCDEFGHJ"
    def reply(text=""):
        sys.stdout.write("= " + text + "\\n\\n"); sys.stdout.flush()
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd = words[0]
        if cmd == "quit":
            reply(); break
        if cmd == "name":
            reply("fake-" + mode)
        elif cmd == "genmove":
            moves += 1
            if mode == "crash" and moves == 3:
                sys.stderr.write("fake engine: segmentation fault\\n"); sys.exit(139)
            if mode == "slow" and moves == 2:
                time.sleep(30)
            if mode == "garbage" and moves == 2:
                sys.stdout.write("hello there\\n\\n"); sys.stdout.flush(); continue
            if mode == "resign" and moves == 2:
                reply("resign"); continue
            if mode == "illegal" and moves == 2:
                reply("A1"); continue  # played already: occupied
            if mode == "unreadable" and moves == 2:
                reply("Q99"); continue
            reply("A1" if moves == 1 and words[1].lower().startswith("b") else "pass")
        elif cmd == "clear_board":
            moves = 0
            reply()
        elif cmd == "play" and mode == "refuse":
            sys.stdout.write("? illegal move\\n\\n"); sys.stdout.flush()
        else:
            reply()
''')


@pytest.fixture
def fake(tmp_path):
    path = tmp_path / "fake_engine.py"
    path.write_text(FAKE_ENGINE)
    return lambda mode: f"{shlex.quote(sys.executable)} {shlex.quote(str(path))} {mode}"


@pytest.fixture
def random_engine(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", cli_env()["PYTHONPATH"])
    return shlex.join(cli("gtp", "--random", "--seed", "9"))


@pytest.mark.parametrize("mode,reason,code", [
    ("crash", "crash", "F"), ("slow", "timeout", "T"), ("garbage", "crash", "F"), ("resign", "resign", "R"),
    ("illegal", "illegal move", "F"), ("unreadable", "unreadable move", "F"), ("refuse", "refused", "F"),
])
def test_misbehaving_engine_loses_and_the_match_goes_on(fake, mode, reason, code, caplog):
    config = MatchConfig(fake(mode), fake("normal"), games=2, board_size=9, move_timeout=2.0, alternate=False)
    caplog.set_level("INFO")
    match = run_match(config)
    assert len(match.games) == 2
    for g in match.games:
        assert g.winner == "B" and g.reason.startswith(reason) and g.result == f"W+{code}"
    if mode in ("crash", "slow", "garbage"):
        assert sum("restarting engine A" in r.getMessage() for r in caplog.records) == 1
    if mode == "crash":
        assert any("segmentation fault" in r.getMessage() for r in caplog.records)  # its stderr is quoted
    assert tally(match.games, "A").losses == 2


def test_both_passing_engines_are_scored_by_area(fake):
    config = MatchConfig(fake("normal"), fake("normal"), games=2, board_size=9, komi=7.5)
    match = run_match(config)
    # Black's A1 stone owns the whole empty board: 81 - 7.5.
    assert [g.result for g in match.games] == ["B+73.5", "B+73.5"]
    assert [g.winner for g in match.games] == ["A", "B"]  # colours alternate
    assert all(g.reason == "score" for g in match.games)


def test_parallel_games_keep_their_numbers_colours_and_restarts(fake, tmp_path, caplog):
    """--parallel 3 over 7 games: every game once, in order, colours by game number, crashes restarted per pair."""
    caplog.set_level("INFO")
    seen = []
    config = MatchConfig(fake("crash"), fake("normal"), games=7, board_size=9, komi=7.5, parallel=3,
                         sgf_dir=str(tmp_path / "sgf"))
    match = run_match(config, on_game=lambda i, r: seen.append(i))
    assert sorted(seen) == list(range(7)) and len(match.games) == 7
    # Game i has A as black when i is even. As black, A crashes at its third genmove (in the cleanup after
    # both pass); as white it passes twice and loses on the score. B wins every game.
    assert [g.black for g in match.games] == ["A", "B", "A", "B", "A", "B", "A"]
    assert [g.reason.split(":")[0] for g in match.games] == ["crash", "score"] * 3 + ["crash"]
    assert all(g.winner == "B" for g in match.games)
    restarts = sum("restarting engine A" in r.getMessage() for r in caplog.records)
    assert 1 <= restarts <= 4  # a pair restarts its crashed A before its next game, if it gets one
    numbers = sorted(p.name.rsplit("-", 1)[1] for p in (tmp_path / "sgf").iterdir())
    assert numbers == [f"{i:04d}.sgf" for i in range(1, 8)]  # each game's SGF once
    with pytest.raises(UserError, match="--parallel 0"):
        run_match(MatchConfig(fake("normal"), fake("normal"), games=1, board_size=9, parallel=0))


def test_parallel_match_stops_when_a_pair_fails(fake):
    """An error in one pair's game stops the others after their current game, and reaches the caller."""
    seen = []

    def on_game(i, result):
        seen.append(i)
        if len(seen) == 1:
            raise RuntimeError("scoreboard broke")

    config = MatchConfig(fake("normal"), fake("normal"), games=10, board_size=9, parallel=2)
    with pytest.raises(RuntimeError, match="scoreboard broke"):
        run_match(config, on_game=on_game)
    assert len(seen) <= 2  # the other pair's game in progress, at most


def test_move_cap(random_engine):
    config = MatchConfig(random_engine, random_engine, games=1, board_size=9, max_moves=20)
    match = run_match(config)
    assert match.games[0].reason == "move cap" and match.games[0].moves == 20


def test_unstartable_engine_is_a_user_error(fake):
    with pytest.raises(UserError, match="cannot start engine"):
        run_match(MatchConfig("/no/such/engine --gtp", fake("normal"), games=1, board_size=9))
    with pytest.raises(UserError, match="--games 0"):
        run_match(MatchConfig(fake("normal"), fake("normal"), games=0, board_size=9))


def test_random_against_gnugo_with_sgfs(gnugo, random_engine, tmp_path):
    sgf_dir = tmp_path / "sgf"
    config = MatchConfig(random_engine, f"{gnugo} --mode gtp --level 1 --chinese-rules --positional-superko",
                         games=2, board_size=7, komi=7.5, sgf_dir=str(sgf_dir))
    match = run_match(config)
    summary = match.summary()
    assert summary["engines"]["B"]["name"] == "GNU Go 3.8"
    assert summary["engines"]["B"]["wins"] == 2  # the random player loses (dead stones are cleaned up)
    assert summary["elo_a_minus_b"] is None and summary["elo_95_high"] is not None
    files = sorted(sgf_dir.iterdir())
    assert len(files) == 2
    records = [read_sgf(f) for f in files]
    assert records[0].black_name.startswith("zeroloop") and records[1].white_name.startswith("zeroloop")
    assert [r.result for r in records] == [g.result for g in match.games]
    assert "Elo A - B: -inf" in format_summary(summary)
    # Both engines were asked for their own count of each final position: zeroloop's is the referee's
    # (Tromp-Taylor), GNU Go's is what a fresh GNU Go counts from the game's SGF.
    assert summary["engines"]["A"]["own_count"] == {"games": 2, "score_differs": 0, "winner_differs": 0}
    assert summary["engines"]["B"]["own_count"]["games"] == 2
    fresh = GtpClient(f"{gnugo} --mode gtp --level 1 --chinese-rules --positional-superko", 60, "check")
    fresh.start()
    try:
        for path, g in zip(files, match.games):
            assert g.engine_counts["A"] == g.result
            fresh.send(f"loadsgf {path}")
            assert g.engine_counts["B"] == fresh.send("final_score")
    finally:
        fresh.close()


def test_cli_json(random_engine, tmp_path):
    proc = run_cli("match", "--black", random_engine, "--white", random_engine, "--games", "2", "--board-size", "5",
                   "--json", env={"PYTHONPATH": cli_env()["PYTHONPATH"]}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["games"] == 2
    a = summary["engines"]["A"]
    assert a["wins"] + a["losses"] + a["draws"] == 2
    assert "game 2/2" in proc.stderr


def test_cli_bad_flags():
    proc = run_cli("match", "--black", "x", "--white", "y", "--games", "1", "--board-size", "30")
    assert proc.returncode == 2 and "--board-size 30" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("match", "--black", "", "--white", "y", "--games", "1")
    assert proc.returncode == 2 and "empty engine command" in proc.stderr
