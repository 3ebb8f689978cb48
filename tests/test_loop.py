"""`zeroloop loop`: two tiny cycles end to end, resuming after SIGKILL in every step, async mode,
then the ladder and the report of the tiny run (b1c16, 5x5)."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import GNUGO, cli, cli_env, run_cli
from zeroloop import exits

GAMES_PER_CYCLE = 24
# Tiny and fast: every stage runs for a second or two. --gating-win-prop 0 accepts every candidate, so that
# "a model is accepted" does not depend on a few hundred samples of training beating the random evaluator.
# One epoch of 64 samples per cycle: 24 games on 5x5, ended once settled (end_when_pass_alive), make about
# 100-200 rows.
TINY = ["--model-kind", "b1c16", "--board-size", "5", "--visits", "8", "--games-per-cycle", str(GAMES_PER_CYCLE),
        "--games-at-once", "12", "--gating-games", "4", "--gating-win-prop", "0", "--shuffle-min-rows", "50",
        "--keep-target-rows", "2000", "--taper-window-scale", "500", "--batch-size", "32",
        "--samples-per-epoch", "64", "--max-train-samples-per-cycle", "64", "--lr-warmup-samples", "0",
        "--threads", "1", "--seed", "5"]


def loop_argv(basedir: Path, *extra: str) -> list[str]:
    return cli("loop", str(basedir), "--name-prefix", "tiny", "--cycles", "2", *TINY, *extra)


def check_finished_run(b: Path) -> dict:
    state = json.loads((b / "loop" / "state.json").read_text())
    assert (state["cycle"], state["step"]) == (3, "gatekeeper")
    cycles = [json.loads(x) for x in (b / "loop" / "cycles.jsonl").read_text().splitlines()]
    assert sorted({c["cycle"] for c in cycles}) == [1, 2]
    # self-play: random games first, then games of the model accepted in cycle 2
    assert glob.glob(str(b / "selfplay" / "random" / "tdata" / "*.npz"))
    models = sorted(os.listdir(b / "models"))
    assert len(models) == 1 and models[0].startswith("tiny-b1c16-s")
    assert glob.glob(str(b / "selfplay" / models[0] / "tdata" / "*.npz"))
    games = sum(len(Path(f).read_text().splitlines()) for f in glob.glob(str(b / "selfplay" / "*" / "sgfs" / "*")))
    assert games == 2 * GAMES_PER_CYCLE  # exactly the cycles' games, however often the loop was killed
    assert [d for d in os.listdir(b / "shuffleddata") if not d.endswith(".tmp")]
    assert (b / "train" / "b1c16" / "checkpoint.ckpt").exists()
    assert (b / "train" / "b1c16" / "metrics_train.jsonl").exists()
    # cycle 2 exported a second model, queued for cycle 3's gatekeeper
    assert len(os.listdir(b / "modelstobetested")) == 1
    record = json.loads((b / "gatekeepersgf" / models[0] / "result.json").read_text())
    assert record["decision"] == "accepted" and record["baseline"] == "random" and record["games"] >= 1
    assert glob.glob(str(b / "gatekeepersgf" / models[0] / "*.sgfs"))
    assert (b / "report" / "report.md").exists() and (b / "report" / "losses.png").exists()
    assert (b / "loop" / "init-model" / "model.safetensors").exists()
    return {"cycles": cycles, "record": record}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    b = tmp_path_factory.mktemp("loop") / "run"
    p = subprocess.run(loop_argv(b), env=cli_env(), capture_output=True, text=True, timeout=300)
    return b, p


def test_two_cycles_end_to_end(tiny_run):
    b, p = tiny_run
    assert p.returncode == 0, p.stderr + p.stdout
    facts = check_finished_run(b)
    out = p.stdout
    for step in ("gatekeeper", "selfplay", "shuffle", "train", "export"):
        assert f"cycle 2/2 · {step}:" in out
    assert "cycle 1/2 · selfplay: 24 games" in out and "with the random evaluator" in out
    # Why training stopped comes from the trainer's stop record (zeroloop.exits), not from its log.
    trains = [line.rsplit(" · ", 1)[0] for line in out.splitlines() if "· train: " in line and "started" not in line]
    assert len(trains) == 2 and all(line.split("; stopped: ")[-1] in exits.STOP_REASONS.values()
                                    or "trained nothing: " in line for line in trains), trains
    assert f"accepted {facts['record']['candidate']} vs random" in out
    assert "== cycle 1 done" in out and "== cycle 2 done" in out and "report:" in out
    c2 = facts["cycles"][-1]
    assert c2["games"] == GAMES_PER_CYCLE and c2["total_games"] == 2 * GAMES_PER_CYCLE
    assert c2["samples"] > 0 and c2["losses"] and c2["gating"][0]["decision"] == "accepted"
    # self-play's NN evaluations, from its logs: the compute budget of --max-nn-evals (the random
    # evaluator's of cycle 1 are counted apart)
    c1 = facts["cycles"][0]
    assert c1["nn_evals"] == 0 and c1["random_evals"] > 0 and c2["nn_evals"] > 0
    assert c2["total_nn_evals"] == c2["nn_evals"] and c2["random_evals"] == c1["random_evals"]
    assert json.loads((b / "loop" / "state.json").read_text())["nn_evals"] == c2["total_nn_evals"]
    # The stage configs the loop wrote are what the stages read.
    assert "board_sizes = [5]" in (b / "loop" / "selfplay.toml").read_text()
    # A rerun with the cycles done has nothing to do.
    p2 = run_cli("loop", str(b), "--name-prefix", "tiny", "--cycles", "2", timeout=60)
    assert p2.returncode == 0 and "2 cycles already done" in p2.stdout


def test_the_run_shape_cannot_change_and_one_loop_per_basedir(tiny_run, tmp_path):
    b, _ = tiny_run
    p = run_cli("loop", str(b), "--name-prefix", "tiny", "--board-size", "7", timeout=60)
    assert p.returncode == 2 and "--board-size 5" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("loop", str(tmp_path / "x"), "--name-prefix", "bad name", timeout=60)
    assert p.returncode == 2 and "--name-prefix" in p.stderr
    # A device this machine lacks is refused before settings.json could keep it for every rerun.
    p = run_cli("loop", str(tmp_path / "y"), "--name-prefix", "ok", "--device", "cuda:63", timeout=60)
    assert p.returncode == 2 and "--device cuda:63" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "y" / "loop" / "settings.json").exists()
    # Methods passed through to the stages are checked against the stages' own keys and flags.
    p = run_cli("loop", str(tmp_path / "z"), "--name-prefix", "ok", "--selfplay-key", "no_such_key=1",
                "--train-flag", "batch-size=3", "--train-flag", "soft-policy-weight=x", timeout=60)
    assert p.returncode == 2 and "no_such_key" in p.stderr and "batch-size: set by the loop itself" in p.stderr
    assert "soft-policy-weight=x" in p.stderr and not (tmp_path / "z" / "loop" / "settings.json").exists()
    import fcntl

    with open(b / "loop" / "lock", "a+") as f:  # held as a loop holds it (a POSIX lock: forked stages lack it)
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        p = run_cli("loop", str(b), "--name-prefix", "tiny", "--cycles", "3", timeout=60)
    assert p.returncode == 2 and "another zeroloop loop is running" in p.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _kill_during(b: Path, step: str, cycle: int, timeout: float = 120) -> None:
    """Start the loop; SIGKILL it and its stage while the stage runs `step` of `cycle`."""
    proc = subprocess.Popen(loop_argv(b), env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"loop ended before {step} of cycle {cycle}: {proc.communicate()}"
            try:
                running = json.loads((b / "loop" / "running.json").read_text())
            except (OSError, ValueError):
                running = {}
            if running.get("step") == step and running.get("cycle") == cycle and running.get("loop_pid") == proc.pid \
                    and _alive(running["pid"]):
                os.kill(proc.pid, signal.SIGKILL)
                os.kill(running["pid"], signal.SIGKILL)
                proc.wait(10)
                return
            time.sleep(0.02)
        raise AssertionError(f"never saw {step} of cycle {cycle} running")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_resumes_after_sigkill_in_every_step(tmp_path):
    b = tmp_path / "run"
    for step, cycle in (("selfplay", 1), ("shuffle", 1), ("train", 1), ("export", 1), ("gatekeeper", 2)):
        _kill_during(b, step, cycle)
        state = json.loads((b / "loop" / "state.json").read_text())
        assert (state["cycle"], state["step"]) == (cycle, step)
    p = subprocess.run(loop_argv(b), env=cli_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr + p.stdout
    assert "resuming cycle 2 at gatekeeper" in p.stdout
    check_finished_run(b)


def test_sigint_stops_the_loop_and_its_stage_cleanly(tmp_path):
    b = tmp_path / "run"
    proc = subprocess.Popen(loop_argv(b), env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (b / "loop" / "running.json").exists() or \
            json.loads((b / "loop" / "running.json").read_text()).get("step") != "selfplay":
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped (SIGINT) in cycle 1 at selfplay" in out
    child = json.loads((b / "loop" / "running.json").read_text())["pid"]
    assert not _alive(child)


def test_async_mode_runs_every_stage_until_interrupted(tmp_path):
    b = tmp_path / "run"
    proc = subprocess.Popen(cli("loop", str(b), "--name-prefix", "tiny", "--async", "--selfplay-processes", "2",
                                "--status-seconds", "2", "--poll-seconds", "1", *TINY),
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (os.path.isdir(b / "models") and os.listdir(b / "models")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no model accepted in async mode"
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err + out
    for name in ("selfplay-0", "selfplay-1", "shuffle-export-loop", "train", "gatekeeper"):
        assert f"started {name}" in out
    assert "stopping every stage (SIGINT)" in out
    model = os.listdir(b / "models")[0]
    assert json.loads((b / "gatekeepersgf" / model / "result.json").read_text())["decision"] == "accepted"
    assert (b / "report" / "report.md").exists()


@pytest.mark.skipif(GNUGO is None, reason="GNU Go is not installed")
def test_ladder_and_report_of_the_tiny_run(tiny_run):
    b, p = tiny_run
    assert p.returncode == 0
    args = ("ladder", str(b), "--games", "4", "--visits", "4", "--gnugo-games", "2", "--gnugo", GNUGO,
            "--threads", "1", "--seed", "1")
    p = run_cli(*args, timeout=300)
    assert p.returncode == 0, p.stderr
    ladder = json.loads((b / "ladder" / "ladder.json").read_text())
    model = os.listdir(b / "models")[0]
    assert set(ladder["players"]) == {"tiny-init", model, "gnugo-l1"}
    assert ladder["anchor"] == "gnugo-l1" and ladder["players"]["gnugo-l1"]["elo"] == 0.0
    assert ladder["players"][model]["games"] == 4 + 2
    pair = [r for r in ladder["results"].values() if {r["a"], r["b"]} == {"tiny-init", model}][0]
    assert pair["wins"] + pair["losses"] + pair["draws"] == 4
    assert "gnugo-l1" in p.stdout and model in p.stdout
    # A rerun plays nothing new: the cache holds every pair.
    mtimes = {f: os.path.getmtime(f) for f in glob.glob(str(b / "ladder" / "sgf" / "*" / "*.sgf"))}
    p = run_cli(*args, timeout=300)
    assert p.returncode == 0 and "vs gnugo-l1:" not in p.stderr
    assert {f: os.path.getmtime(f) for f in glob.glob(str(b / "ladder" / "sgf" / "*" / "*.sgf"))} == mtimes
    p = run_cli("report", str(b), timeout=120)
    assert p.returncode == 0, p.stderr
    report = Path(p.stdout.strip())
    text = report.read_text()
    for part in ("## Totals", "## Last cycles", "## Gating matches", "## Ladder", "elo.png", "losses.png"):
        assert part in text
    for png in ("losses.png", "data.png", "models.png", "elo.png"):
        assert (report.parent / png).read_bytes()[:4] == b"\x89PNG"
