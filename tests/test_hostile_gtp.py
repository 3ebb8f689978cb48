"""Hostile GTP input: whatever a controller sends, the engine answers and keeps its game.

One `zeroloop gtp` process gets a script of malformed and hostile lines
(megabyte lines, NUL bytes, invalid UTF-8, unknown commands, vertices off the
board or in other scripts' digits, absurd board sizes and komis, SGF "files"
that are devices, pipes or directories); each gets a `?` response, the
legal moves around them are kept, and the process ends only on `quit`.
"""

from __future__ import annotations

import os
import subprocess

from conftest import cli, cli_env

# (line sent, expected response) in order; None: the line gets no response (GTP ignores it).
SCRIPT: list[tuple[bytes, str | None]] = [
    (b"1 boardsize 5", "=1 "),
    (b"2 play b C3", "=2 "),
    (b"play b " + b"A" * 3_000_000, "? command too long"),
    (b"\x00\x00\x00", None),
    (b"na\x00me", "= zeroloop"),  # control characters are dropped, as GTP 2 says
    (b"\xff\xfe play b A1", "? unknown command"),
    (b"rm -rf /", "? unknown command"),
    (b"3 foo bar baz", "?3 unknown command"),
    (b"\xc2\xb2 name", "? unknown command"),  # '²' is not a command id
    (b"play b Z99", "? illegal move"),  # a vertex, but not on this board
    (b"play b A0", "? illegal move"),
    (b"play b A-1", "? syntax error"),
    (b"play b I3", "? syntax error"),  # GTP has no column I
    (b"play b F1", "? illegal move"),  # off a 5x5 board
    (b"play b A\xef\xbc\x91", "? syntax error"),  # fullwidth 1
    (b"play b C3", "? illegal move"),  # occupied
    (b"play purple A1", "? syntax error"),
    (b"play b", "? syntax error"),
    (b"is_legal b Q" + b"9" * 400, "= 0"),
    (b"boardsize 1000000000000000000000000000000", "? unacceptable size"),
    (b"boardsize -7", "? unacceptable size"),
    (b"boardsize \xd9\xa1\xd9\xa2", "? syntax error"),  # Arabic-Indic 12
    (b"komi nan", "? unacceptable komi"),
    (b"komi inf", "? unacceptable komi"),
    (b"komi -1e308", "? unacceptable komi"),
    (b"komi 1e400", "? unacceptable komi"),
    (b"komi seven", "? syntax error"),
    (b"4 komi -6.5", "=4 "),  # a negative komi in range is fine
    (b"loadsgf /dev/zero", "? cannot load /dev/zero: /dev/zero is not a regular file"),
    (b"loadsgf /", "? cannot load /: cannot read /: Is a directory"),
    (b"loadsgf /no/such/file.sgf", "? cannot load /no/such/file.sgf: cannot read /no/such/file.sgf: "
                                   "No such file or directory"),
    (b"99999999999999999999999999 list_stones black", "=99999999999999999999999999 C3"),
    (b"final_score", "= B+31.5"),  # the one stone kept owns all 25 points; komi is -6.5
    (b"5 quit", "=5 "),
    (b"name", None),  # nothing after quit
]


def test_hostile_lines_each_get_an_answer_and_the_game_survives(tmp_path):
    fifo = tmp_path / "pipe.sgf"
    os.mkfifo(fifo)  # a pipe no one writes: loading it must not block the engine
    script = [(f"loadsgf {fifo}".encode(), f"? cannot load {fifo}: {fifo} is not a regular file")] + SCRIPT
    proc = subprocess.run(cli("gtp", "--random", "--seed", "1", "--komi", "7"), env=cli_env(),
                          input=b"\n".join(line for line, _ in script) + b"\n", capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr
    responses = proc.stdout.decode().split("\n\n")[:-1]
    assert responses == [r for _, r in script if r is not None]
