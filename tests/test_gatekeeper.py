"""The gatekeeper: decisions on scripted match results, and real batched matches (b1c16, 5x5)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import cli, cli_env, run_cli
from zeroloop import decisions
from zeroloop.errors import ConfigError
from zeroloop.gatekeeper import ArenaMatch, CandidateUnusable, Dirs, Gatekeeper, Judge
from zeroloop.gatekeeper import config as gkconfig
from zeroloop.gatekeeper.config import GatekeeperConfig
from zeroloop.gating import ACCEPT, CONTINUE, REJECT
from zeroloop.nn.model import random_init_model
from zeroloop.nn.modelfile import WEIGHTS_FILE, ModelInfo, save_model
from zeroloop.storage import open_location

OUTCOME = {"w": "win", "l": "loss", "d": "draw"}


def save(parent: Path, name: str, seed: int = 0, mtime: float | None = None, pos_len: int = 5) -> Path:
    net = random_init_model("b1c16", pos_len, seed=seed)
    storage, path = open_location(str(parent / name))
    save_model(storage, path, net, ModelInfo.for_model(net, name, samples_trained=100 * seed))
    if mtime is not None:
        os.utime(parent / name / WEIGHTS_FILE, (mtime, mtime))
    return parent / name


class Scripted:
    """A match that replays scripted results ('wld' strings) per candidate name."""

    def __init__(self, scripts: dict[str, str]):
        self.scripts = scripts
        self.calls: list[tuple[str, str | None, int]] = []

    def __call__(self, candidate: str, baseline: str | None, judge: Judge, sgf_dir: str) -> bool:
        name = os.path.basename(candidate)
        script = self.scripts[name]
        if script == "unusable":
            raise CandidateUnusable("scripted")
        played = 0
        for r in script:
            if r == "!":  # stop requested mid-match
                self.calls.append((name, baseline and os.path.basename(baseline), played))
                return False
            played += 1
            if judge.add(OUTCOME[r]) != CONTINUE:
                break
        self.calls.append((name, baseline and os.path.basename(baseline), played))
        assert judge.decision() != CONTINUE, "script too short for a decision"
        return True


def keeper(tmp_path: Path, scripts: dict[str, str], **config) -> tuple[Gatekeeper, Scripted]:
    storage, root = open_location(str(tmp_path))
    dirs = Dirs(f"{root}/modelstobetested", f"{root}/models", f"{root}/rejectedmodels", f"{root}/gatekeepersgf",
                f"{root}/selfplay")
    match = Scripted(scripts)
    cfg = GatekeeperConfig(**{"num_games_per_gating": 10, "board_sizes": [5], **config})
    return Gatekeeper(storage, dirs, cfg, match), match


def record(tmp_path: Path, name: str) -> dict:
    return json.loads((tmp_path / "gatekeepersgf" / name / "result.json").read_text())


def test_accepts_against_random_and_precreates_selfplay_dirs(tmp_path):
    gk, match = keeper(tmp_path, {"c1": "wwwlwlwlww"})
    save(tmp_path / "modelstobetested", "c1", seed=3)
    assert gk.run(quit_if_no_nets=True) == 0
    assert (tmp_path / "models" / "c1" / WEIGHTS_FILE).exists()
    assert not (tmp_path / "modelstobetested" / "c1").exists()
    assert (tmp_path / "selfplay" / "c1" / "tdata").is_dir() and (tmp_path / "selfplay" / "c1" / "sgfs").is_dir()
    # 5 points of 10 decide it after the 5th win (game 7): the rest is not played.
    assert match.calls == [("c1", None, 7)]
    r = record(tmp_path, "c1")
    assert (r["decision"], r["baseline"], r["reason"], r["method"]) == ("accepted", "random", "match", "fixed")
    assert (r["wins"], r["losses"], r["draws"], r["games"]) == (5, 2, 0, 7)
    assert r["samples_trained"] == 300


def test_rejects_and_stops_early(tmp_path):
    gk, match = keeper(tmp_path, {"c1": "llllllwwww"})
    save(tmp_path / "models", "m0", seed=1, mtime=1000.0)
    save(tmp_path / "modelstobetested", "c1", seed=2, mtime=2000.0)
    gk.run(quit_if_no_nets=True)
    assert (tmp_path / "rejectedmodels" / "c1").is_dir() and not (tmp_path / "models" / "c1").exists()
    assert not (tmp_path / "selfplay" / "c1").exists()
    assert match.calls == [("c1", "m0", 6)]  # 6 losses: 4 points at most are left, 5 needed
    r = record(tmp_path, "c1")
    assert (r["decision"], r["baseline"], r["losses"], r["games"]) == ("rejected", "m0", 6, 6)


def test_ties_and_draws_go_to_the_candidate(tmp_path):
    gk, _ = keeper(tmp_path, {"c1": "wlwlwlwldd"})
    save(tmp_path / "modelstobetested", "c1")
    gk.run(quit_if_no_nets=True)
    assert record(tmp_path, "c1")["decision"] == "accepted"


def test_required_win_prop(tmp_path):
    gk, _ = keeper(tmp_path, {"c1": "wwwwwwllll"})
    gk.required = 0.7
    save(tmp_path / "modelstobetested", "c1")
    gk.run(quit_if_no_nets=True)
    r = record(tmp_path, "c1")
    assert (r["decision"], r["required"], r["games"]) == ("rejected", 0.7, 10)


def test_newest_first_then_older_candidates_auto_rejected(tmp_path):
    gk, match = keeper(tmp_path, {"c1": "wwwww", "c2": "wwwww", "c3": "wwwww"})
    save(tmp_path / "models", "m0", mtime=1000.0)
    for i, t in ((1, 2000.0), (2, 3000.0), (3, 4000.0)):
        save(tmp_path / "modelstobetested", f"c{i}", seed=i, mtime=t)
    gk.run(quit_if_no_nets=True)
    assert match.calls == [("c3", "m0", 5)]  # only the newest is played
    assert sorted(os.listdir(tmp_path / "models")) == ["c3", "m0"]
    assert sorted(os.listdir(tmp_path / "rejectedmodels")) == ["c1", "c2"]
    for name in ("c1", "c2"):
        r = record(tmp_path, name)
        assert (r["decision"], r["games"]) == ("rejected", 0)
        assert r["reason"] == "older than the accepted model c3"
    recs = decisions.read_all(*open_location(str(tmp_path / "gatekeepersgf")))
    assert [r.candidate for r in recs][0] == "c3" and {r.candidate for r in recs} == {"c1", "c2", "c3"}


def test_after_a_reject_the_next_candidate_plays_the_same_model(tmp_path):
    gk, match = keeper(tmp_path, {"c1": "wwwww", "c2": "llllll"})
    save(tmp_path / "models", "m0", mtime=1000.0)
    save(tmp_path / "modelstobetested", "c1", seed=1, mtime=2000.0)
    save(tmp_path / "modelstobetested", "c2", seed=2, mtime=3000.0)
    gk.run(quit_if_no_nets=True)
    assert match.calls == [("c2", "m0", 6), ("c1", "m0", 5)]
    assert sorted(os.listdir(tmp_path / "models")) == ["c1", "m0"]


def test_no_autoreject_plays_old_candidates(tmp_path):
    gk, match = keeper(tmp_path, {"c1": "wwwww"})
    gk.autoreject = False
    save(tmp_path / "models", "m0", mtime=5000.0)
    save(tmp_path / "modelstobetested", "c1", mtime=1000.0)
    gk.run(quit_if_no_nets=True)
    assert match.calls == [("c1", "m0", 5)]
    assert (tmp_path / "models" / "c1").is_dir()


def test_sprt_decides_with_fewer_games(tmp_path):
    # Leela Zero's bounds (elo 0 vs 35, alpha = beta = 0.05): LLR bounds -2.94 / +2.94.
    wins = "wlwwwwlwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww"
    gk, match = keeper(tmp_path, {"c1": wins, "c2": "l" * 100}, num_games_per_gating=400, sprt=True)
    save(tmp_path / "modelstobetested", "c1", mtime=1000.0)
    gk.run(quit_if_no_nets=True)
    r = record(tmp_path, "c1")
    assert r["decision"] == "accepted" and r["method"] == "sprt"
    assert r["llr"] >= np.log(0.95 / 0.05) and r["games"] < 40
    # A fixed-length 400-game match would need 200 points: SPRT decided long before.
    save(tmp_path / "modelstobetested", "c2", mtime=2000.0)
    gk.run(quit_if_no_nets=True)
    r = record(tmp_path, "c2")
    assert r["decision"] == "rejected" and r["llr"] <= np.log(0.05 / 0.95) and r["games"] < 20


def test_sprt_falls_back_to_the_fixed_rule_at_the_game_cap(tmp_path):
    gk, _ = keeper(tmp_path, {"c1": "wlwlwlwlwl"}, num_games_per_gating=10, sprt=True)
    save(tmp_path / "modelstobetested", "c1")
    gk.run(quit_if_no_nets=True)
    r = record(tmp_path, "c1")
    assert (r["decision"], r["games"], r["method"]) == ("accepted", 10, "sprt")


def test_abandoned_match_decides_nothing(tmp_path):
    gk, match = keeper(tmp_path, {"c1": "www!"})
    save(tmp_path / "modelstobetested", "c1")
    assert gk.step() is None
    assert (tmp_path / "modelstobetested" / "c1").is_dir()
    assert not (tmp_path / "gatekeepersgf" / "c1" / "result.json").exists()


def test_unusable_candidate_is_rejected(tmp_path):
    gk, _ = keeper(tmp_path, {"c1": "unusable"})
    save(tmp_path / "modelstobetested", "c1")
    gk.run(quit_if_no_nets=True)
    assert (tmp_path / "rejectedmodels" / "c1").is_dir()
    assert record(tmp_path, "c1")["reason"].startswith("unusable")


def test_waits_for_candidates_until_stopped(tmp_path):
    gk, match = keeper(tmp_path, {"c1": "wwwww"}, poll_seconds=0.05)
    t = threading.Thread(target=gk.run)
    t.start()
    time.sleep(0.2)
    save(tmp_path / "modelstobetested", "c1")
    deadline = time.monotonic() + 10
    while not (tmp_path / "models" / "c1").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    gk.stop.set()
    t.join(5)
    assert not t.is_alive() and match.calls == [("c1", None, 5)]


def test_judge_rules():
    j = Judge(4, 0.5)
    assert [j.add(o) for o in ("win", "loss", "win")] == [CONTINUE, CONTINUE, ACCEPT]
    j = Judge(4, 0.5)
    assert [j.add(o) for o in ("loss", "loss", "loss")] == [CONTINUE, CONTINUE, REJECT]


def test_config_checks_and_packaged_files():
    for name in ("cpu", "gpu"):
        c = gkconfig.load(name)
        assert c.num_games_per_gating >= 1 and c.arena().max_visits == c.max_visits
    with pytest.raises(ConfigError, match="board_size_weights"):
        GatekeeperConfig(board_sizes=[9, 13], board_size_weights=[1.0])
    with pytest.raises(ConfigError, match="sprt_elo1"):
        GatekeeperConfig(sprt=True, sprt_elo0=10.0, sprt_elo1=5.0)


def test_the_operators_config_file_loads(tmp_path):
    from zeroloop_operator import spec as opspec
    from zeroloop_operator import stageconfig

    run = opspec.parse({"image": "zeroloop:test", "boardSizes": [9, 13], "komi": 6.5,
                        "storage": {"existingClaim": "c"},
                        "gatekeeper": {"games": 40, "visits": 20, "sprt": {"enabled": True}}}, "demo")
    (tmp_path / "gk.yaml").write_text(stageconfig.render(stageconfig.gatekeeper_config(run)))
    c = gkconfig.load(str(tmp_path / "gk.yaml"))
    assert (c.board_sizes, c.komi_mean, c.num_games_per_gating, c.max_visits, c.sprt) == ([9, 13], 6.5, 40, 20, True)


# --- real batched matches -------------------------------------------------------------------


def test_arena_match_plays_two_nets_and_writes_sgfs(tmp_path):
    save(tmp_path / "models", "m0", seed=1)
    save(tmp_path / "modelstobetested", "c1", seed=2)
    storage, root = open_location(str(tmp_path))
    cfg = GatekeeperConfig(num_games_per_gating=6, num_games_at_once=4, board_sizes=[5], komi_mean=0.5,
                           max_visits=8)
    match = ArenaMatch(storage, cfg, "cpu", np.random.default_rng(0), lambda: False)
    judge = Judge(6, 0.5)
    assert match(f"{root}/modelstobetested/c1", f"{root}/models/m0", judge, f"{root}/gatekeepersgf/c1")
    assert judge.decision() != CONTINUE and 3 <= judge.tally.games <= 6
    lines = [ln for f in (tmp_path / "gatekeepersgf" / "c1").glob("*.sgfs") for ln in f.read_text().splitlines()]
    assert len(lines) == judge.tally.games
    from sgfmill import sgf

    players = {(g.get_root().get("PB"), g.get_root().get("PW")) for g in map(sgf.Sgf_game.from_string, lines)}
    assert players <= {("c1", "m0"), ("m0", "c1")}


def test_cli_gates_a_real_candidate_against_random(tmp_path):
    save(tmp_path / "modelstobetested", "c1", seed=4)
    (tmp_path / "gk.toml").write_text("num_games_per_gating = 4\nnum_games_at_once = 4\nboard_sizes = [5]\n"
                                      "komi_mean = 0.5\nmax_visits = 4\n")
    b = str(tmp_path)
    p = run_cli("gatekeeper", "--test-models-dir", f"{b}/modelstobetested", "--accepted-models-dir", f"{b}/models",
                "--rejected-models-dir", f"{b}/rejectedmodels", "--sgf-output-dir", f"{b}/gatekeepersgf",
                "--selfplay-dir", f"{b}/selfplay", "--config", f"{b}/gk.toml", "--quit-if-no-nets-to-test",
                "--seed", "1", "--threads", "1", "-device", "cpu", timeout=120)
    assert p.returncode == 0, p.stderr
    r = record(tmp_path, "c1")
    assert r["baseline"] == "random" and r["games"] >= 2
    assert (tmp_path / ("models" if r["decision"] == "accepted" else "rejectedmodels") / "c1").is_dir()
    assert ("accepted" if r["decision"] == "accepted" else "rejected") + " c1" in p.stderr


def test_cli_sigterm_abandons_the_match(tmp_path):
    save(tmp_path / "modelstobetested", "c1", seed=4)
    (tmp_path / "gk.toml").write_text("num_games_per_gating = 100000\nnum_games_at_once = 2\nboard_sizes = [5]\n"
                                      "max_visits = 200\nresign_consec_turns = 0\n")
    b = str(tmp_path)
    proc = subprocess.Popen(cli("gatekeeper", "--test-models-dir", f"{b}/modelstobetested", "--accepted-models-dir",
                                f"{b}/models", "--rejected-models-dir", f"{b}/rejectedmodels", "--sgf-output-dir",
                                f"{b}/gatekeepersgf", "--config", f"{b}/gk.toml", "--threads", "1"),
                            env=cli_env(), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        seen = ""
        while "testing c1" not in seen and time.monotonic() < deadline:
            seen += proc.stderr.readline()
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "abandoned" in err
    assert (tmp_path / "modelstobetested" / "c1").is_dir()
    assert not (tmp_path / "gatekeepersgf" / "c1" / "result.json").exists()


def test_cli_bad_flags_are_one_line_errors(tmp_path):
    p = run_cli("gatekeeper", "--test-models-dir", str(tmp_path), timeout=60)
    assert p.returncode == 2 and "missing --accepted-models-dir" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "bad.toml").write_text("num_games_per_gatin = 3\n")
    p = run_cli("gatekeeper", "--test-models-dir", str(tmp_path), "--accepted-models-dir", str(tmp_path),
                "--rejected-models-dir", str(tmp_path), "--sgf-output-dir", str(tmp_path), "--config",
                str(tmp_path / "bad.toml"), timeout=60)
    assert p.returncode == 2 and "num_games_per_gatin" in p.stderr and "Traceback" not in p.stderr
