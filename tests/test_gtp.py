"""`zeroloop gtp`: the protocol, the random player, and play against GNU Go."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from conftest import cli, cli_env, run_cli
from zeroloop.go import board as B
from zeroloop.go.game import BLACK, WHITE, Game
from zeroloop.go.rules import Rules
from zeroloop.gtp import GtpEngine, clean_line
from zeroloop.gtp_client import GtpClient, GtpFailure
from zeroloop.player import RandomPlayer, own_eyes

REQUIRED = ["protocol_version", "name", "version", "known_command", "list_commands", "boardsize", "clear_board",
            "komi", "play", "genmove", "undo", "showboard", "final_score", "loadsgf", "quit", "list_stones",
            "is_legal", "captures"]


@pytest.fixture
def engine() -> GtpEngine:
    return GtpEngine(RandomPlayer(seed=1), size=9, rules=Rules())


def ask(engine: GtpEngine, line: str) -> str:
    return engine.handle(line)


def test_required_commands_known(engine):
    listed = ask(engine, "list_commands")[2:-2].split("\n")
    for name in REQUIRED:
        assert name in listed
        assert ask(engine, f"known_command {name}") == "= true\n\n"
    assert ask(engine, "known_command frobnicate") == "= false\n\n"
    assert ask(engine, "protocol_version") == "= 2\n\n"
    assert ask(engine, "name") == "= zeroloop\n\n"


def test_ids_are_echoed_on_success_and_failure(engine):
    assert ask(engine, "12 protocol_version") == "=12 2\n\n"
    assert ask(engine, "13 frobnicate") == "?13 unknown command\n\n"
    assert ask(engine, "14 play b A1") == "=14 \n\n"
    assert ask(engine, "15 play w A1") == "?15 illegal move\n\n"


def test_preprocessing_comments_blank_lines_and_control_characters(engine):
    assert ask(engine, "") is None
    assert ask(engine, "   \t  ") is None
    assert ask(engine, "# a comment") is None
    assert ask(engine, "name # trailing comment") == "= zeroloop\n\n"
    assert ask(engine, "\tboard\x01size\t9\r") == "= \n\n"  # control characters dropped, tab is a space
    assert clean_line("play\tb\tD4 # x") == "play b D4"


@pytest.mark.parametrize("line,error", [
    ("boardsize 1", "unacceptable size"), ("boardsize 20", "unacceptable size"), ("boardsize x", "syntax error"),
    ("boardsize", "syntax error"), ("play b", "syntax error"), ("play x D4", "syntax error"),
    ("play b D44", "illegal move"), ("play b Z1", "illegal move"), ("play b I1", "syntax error"), ("play b 44", "syntax error"),
    ("komi x", "syntax error"), ("komi 7.3", "unacceptable komi"), ("komi 1e9", "unacceptable komi"),
    ("komi nan", "unacceptable komi"), ("genmove", "syntax error"), ("genmove red", "syntax error"),
    ("undo", "cannot undo"), ("list_stones", "syntax error"), ("is_legal b", "syntax error"),
    ("captures purple", "syntax error"), ("loadsgf", "syntax error"), ("PLAY b D4", "unknown command"),
    ("\xff\xfe garbage", "unknown command"),
])
def test_errors_follow_the_spec_and_the_engine_keeps_serving(engine, line, error):
    assert ask(engine, line) == f"? {error}\n\n"
    assert ask(engine, "play b E5") == "= \n\n"  # still serving, state intact
    assert ask(engine, "list_stones black") == "= E5\n\n"


def test_play_undo_captures_list_stones_is_legal(engine):
    for line in ("play b A2", "play w A1", "play b B1"):
        assert ask(engine, line) == "= \n\n"
    assert ask(engine, "captures b") == "= 1\n\n" and ask(engine, "captures white") == "= 0\n\n"
    assert ask(engine, "list_stones b") == "= A2 B1\n\n"
    assert ask(engine, "list_stones w") == "= \n\n"
    assert ask(engine, "is_legal w A1") == "= 0\n\n"  # suicide
    assert ask(engine, "is_legal b A1") == "= 1\n\n"
    assert ask(engine, "is_legal b A2") == "= 0\n\n"  # occupied
    assert ask(engine, "is_legal b Z9") == "= 0\n\n"  # off this board
    assert ask(engine, "is_legal w pass") == "= 1\n\n"
    assert ask(engine, "undo") == "= \n\n"
    assert ask(engine, "list_stones w") == "= A1\n\n" and ask(engine, "captures b") == "= 0\n\n"


def test_boardsize_clear_board_komi_and_final_score(engine):
    assert ask(engine, "boardsize 2") == "= \n\n"
    assert ask(engine, "komi 0.5") == "= \n\n"
    assert ask(engine, "play b A1") == "= \n\n"
    assert ask(engine, "final_score") == "= B+3.5\n\n"
    assert ask(engine, "komi 4") == "= \n\n"
    assert ask(engine, "final_score") == "= 0\n\n"
    assert ask(engine, "clear_board") == "= \n\n"
    assert ask(engine, "list_stones b") == "= \n\n"
    assert ask(engine, "final_score") == "= W+4\n\n"
    assert ask(engine, "boardsize 19") == "= \n\n" and ask(engine, "play w T19") == "= \n\n"


def test_showboard_is_one_response_without_blank_lines(engine):
    ask(engine, "play b C3")
    text = ask(engine, "showboard")
    assert text.startswith("= \n") and text.endswith("\n\n")
    body = text[:-2]
    assert "\n\n" not in body
    assert " 3 . . X . . . . . .  3" in body


def test_genmove_plays_for_either_colour(engine):
    for colour in ("b", "w", "w", "black"):
        reply = ask(engine, f"genmove {colour}")
        assert reply.startswith("= ") and reply[2:-2] != "pass"
    assert len(engine.game.moves) == 4
    assert [c for c, _ in engine.game.moves] == [BLACK, WHITE, WHITE, BLACK]


def test_random_player_never_fills_own_eyes_and_passes_at_the_end():
    rng_seeds = range(20)
    for seed in rng_seeds:
        g = Game(5, Rules("positional"))
        player = RandomPlayer(seed)
        while not g.is_over:
            c = g.to_move
            eyes = own_eyes(g, c)
            move = player.genmove(g, c)
            if move is not None:
                assert not eyes[move[1] * 5 + move[0]], "filled its own eye"
                assert g.is_legal(c, move)
            g.play(c, move)
        # At the end neither side has a sensible move left.
        mask = np.zeros(26, dtype=np.int64)
        for c in (BLACK, WHITE):
            B.legal_mask(g.board, g.hist, c, mask)
            assert not (mask[:-1].astype(bool) & ~own_eyes(g, c)).any()


def test_random_player_is_uniform_over_sensible_moves():
    g = Game(3)
    counts = np.zeros(9)
    player = RandomPlayer(seed=4)
    for _ in range(1800):
        x, y = player.genmove(g, BLACK)
        counts[y * 3 + x] += 1
    assert counts.min() > 140 and counts.max() < 260  # 200 expected each


def test_loadsgf_matches_gnugo(engine, gnugo, tmp_path):
    path = tmp_path / "g.sgf"
    path.write_bytes(b"(;GM[1]FF[4]SZ[9]KM[6.5];B[ee];W[cc];B[gg];W[cg];B[dc];W[cd];B[bc])")
    script = [f"loadsgf {path} 5", "list_stones black", "list_stones white", f"loadsgf {path} D7",
              "list_stones white", f"loadsgf {path}", "list_stones black", "list_stones white", "captures b",
              f"loadsgf {path} 2"]
    with GtpClient(f"{gnugo} --mode gtp") as ref:
        for line in script:
            assert ask(engine, line) == f"= {ref.send(line)}\n\n", line
    assert engine.game.rules.komi == 6.5
    assert ask(engine, f"loadsgf {tmp_path / 'missing.sgf'}").startswith("? cannot load")
    bad = tmp_path / "bad.sgf"
    bad.write_bytes(b"(;GM[1]SZ[9];B[ee];W[ee])")
    assert ask(engine, f"loadsgf {bad}") == f"? cannot load {bad}: move 2 (W E5) is illegal: occupied\n\n"
    assert ask(engine, "list_stones w") == "= \n\n"  # the game from before the failed load is kept


def test_fixed_handicap_matches_gnugo_on_every_size(engine, gnugo):
    """fixed_handicap places GNU Go's stones (the same set; none where GNU Go has none) for sizes 2-19, 1-10 stones."""
    with GtpClient(f"{gnugo} --mode gtp") as ref:
        for size in range(2, 20):
            for stones in range(1, 11):
                assert ask(engine, f"boardsize {size}") == "= \n\n"  # both boards empty again
                ref.send(f"boardsize {size}")
                ours = ask(engine, f"fixed_handicap {stones}")
                try:
                    theirs = set(ref.send(f"fixed_handicap {stones}").split())
                except GtpFailure:
                    assert ours == "? invalid number of stones\n\n", (size, stones)
                    continue
                assert set(ours[2:].split()) == theirs, (size, stones)
                assert ask(engine, "list_stones black")[2:].split() == ref.send("list_stones black").split()


def test_handicap_commands(engine):
    assert ask(engine, "fixed_handicap 4") == "= G7 C3 C7 G3\n\n"
    assert engine.game.to_move == WHITE and ask(engine, "list_stones white") == "= \n\n"
    assert ask(engine, "fixed_handicap 2") == "? board not empty\n\n"
    assert ask(engine, "undo") == "? cannot undo\n\n"  # handicap stones are the start position
    assert ask(engine, "genmove w").startswith("= ")
    assert ask(engine, "clear_board") == "= \n\n"
    for bad, reply in [("C3 C3", "bad vertex list"), ("C3 pass", "bad vertex list"), ("C3 Z9", "bad vertex list"),
                       ("C3", "invalid number of stones"), ("C3 3C", "syntax error")]:
        assert ask(engine, f"set_free_handicap {bad}") == f"? {reply}\n\n", bad
    assert ask(engine, "list_stones black") == "= \n\n"  # nothing placed by a refused command
    assert ask(engine, "set_free_handicap D4 F6 E5") == "= \n\n"
    assert sorted(ask(engine, "list_stones black")[2:].split()) == ["D4", "E5", "F6"]
    assert engine.game.to_move == WHITE
    assert ask(engine, "place_free_handicap 3") == "? board not empty\n\n"
    assert ask(engine, "fixed_handicap 1") == "? invalid number of stones\n\n"
    ask(engine, "boardsize 9")
    assert ask(engine, "place_free_handicap 5") == "= G7 C3 C7 G3 E5\n\n"


def test_engine_process_handles_garbage_and_long_lines():
    huge = "play b " + "A" * 200_000
    script = (b"1 name\n\xff\xfe\x00garbage\n" + huge.encode() + b"\n2 protocol_version\n\n# c\n"
              b"3 boardsize 5\r\n4 genmove b\n5 quit\n6 name\n")
    proc = subprocess.run(cli("gtp", "--random", "--seed", "3"), input=script, env=cli_env(), capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    responses = out.split("\n\n")[:-1]
    assert responses[0] == "=1 zeroloop"
    assert responses[1] == "? unknown command"
    assert responses[2] == "? command too long"
    assert responses[3:6] == ["=2 2", "=3 ", responses[5]] and responses[5].startswith("=4 ")
    assert responses[6] == "=5 " and len(responses) == 7  # nothing after quit
    assert b"Traceback" not in proc.stderr


def test_random_engine_against_gnugo_all_moves_accepted(gnugo):
    # Our engine picks every move of a 9x9 game; GNU Go (positional superko)
    # must accept each one, and the stones must agree at the end.
    env_cmd = f"env PYTHONPATH={cli_env()['PYTHONPATH']} " + " ".join(cli("gtp", "--random", "--seed", "5"))
    with GtpClient(env_cmd) as ours, GtpClient(f"{gnugo} --mode gtp --positional-superko") as ref:
        for c in (ours, ref):
            c.send("boardsize 9")
            c.send("clear_board")
        passes, colour, moves = 0, "b", 0
        while passes < 2:
            move = ours.send(f"genmove {colour}")
            ref.send(f"play {colour} {move}")  # raises GtpFailure if GNU Go disagrees
            passes = passes + 1 if move == "pass" else 0
            colour = "w" if colour == "b" else "b"
            moves += 1
        assert moves > 60
        for command in ("list_stones black", "list_stones white", "captures b", "captures w"):
            assert set(ours.send(command).split()) == set(ref.send(command).split()), command


def test_model_flag_fails_clearly_for_a_missing_model():
    proc = run_cli("gtp", "--model", "/tmp/none.ckpt", input="name\n", timeout=120)
    assert proc.returncode == 2
    assert "/tmp/none.ckpt" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("flags,message", [(["--board-size", "25"], "--board-size 25"),
                                           (["--komi", "6.3"], "komi 6.3"), (["--visits", "0"], "--visits 0")])
def test_bad_flags_one_line_error(flags, message):
    proc = run_cli("gtp", *flags, input="", timeout=120)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_gtp_client_reports_failures(gnugo):
    with GtpClient(f"{gnugo} --mode gtp") as ref:
        with pytest.raises(GtpFailure, match="unknown command"):
            ref.send("frobnicate")
        assert ref.send("name") == "GNU Go"
