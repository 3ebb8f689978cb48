"""The loop's settings are one typed dataclass: each field's doc and range make its flag, help and check."""

from __future__ import annotations

import dataclasses
import re

import pytest

from zeroloop import cliflags
from zeroloop.errors import UserError
from zeroloop.loop import settings as S


def parse(*flags: str) -> S.LoopSettings:
    parser = cliflags.ArgumentParser()
    parser.add_argument("--name-prefix", default="t")
    S.add_flags(parser)
    return S.resolve(parser.parse_args(list(flags)), None)


def test_every_setting_has_a_doc_and_a_flag():
    parser = cliflags.ArgumentParser()
    S.add_flags(parser)
    helps = {a.dest: a.help for a in parser._actions if a.option_strings}
    for f in dataclasses.fields(S.LoopSettings):
        assert f.metadata.get("doc"), f.name
        if f.name != "name_prefix":
            assert f.metadata["doc"] in helps[f.name], f.name


@pytest.mark.parametrize("flags, message", [
    (("--visits", "0"), "--visits 0: must be at least 1"),
    (("--board-size", "25"), "--board-size 25: must be in 2..19"),
    (("--gating-win-prop", "1.5"), "--gating-win-prop 1.5: must be in 0.0..1.0"),
    (("--full-search-prob", "0"), "--full-search-prob 0.0: must be positive"),
    (("--komi", "7.3"), "--komi 7.3: must be a multiple of 0.5"),
    (("--komi", "500"), "--komi 500.0: must be in -150.0..150.0"),
    (("--lr-warmup-samples", "-1"), "--lr-warmup-samples -1: must be at least 0"),
    (("--samples-per-epoch", "64", "--batch-size", "128"), "--samples-per-epoch 64 is less than one batch "
                                                            "(--batch-size 128)"),
])
def test_a_bad_value_is_refused_with_its_flag(flags, message):
    with pytest.raises(UserError, match=re.escape(message)):
        parse(*flags)


def test_every_bad_selfplay_key_is_named_and_a_problem_across_keys_names_the_flag():
    with pytest.raises(UserError) as err:
        parse("--selfplay-key", "cpuct=-1", "--selfplay-key", "max_visit=3")
    assert str(err.value) == ("--selfplay-key: cpuct = -1.0 is below the minimum 0.0; --selfplay-key: unknown key "
                              "max_visit (did you mean max_visits? `zeroloop selfplay --help-config` lists every key)")
    with pytest.raises(UserError) as err:
        parse("--visits", "32", "--selfplay-key", "reduce_visits=true", "--selfplay-key", "reduced_visits_min=40")
    assert str(err.value) == ("--selfplay-key: reduced_visits_min 40 is more than max_visits 32 "
                              "(max_visits is --visits)")
    assert parse("--visits", "48", "--selfplay-key", "reduce_visits=true",
                 "--selfplay-key", "reduced_visits_min=40").check() is None


def test_an_unknown_net_is_refused_by_its_flag():
    with pytest.raises(SystemExit):
        parse("--model-kind", "b99c999")


def test_defaults_pass_and_a_flag_changes_one():
    s = parse("--visits", "32")
    assert s.visits == 32 and s.komi == S.fair_komi(7) and s.check() is None


def test_a_config_file_gives_settings_and_flags_override_it(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('name_prefix = "f"\nvisits = 48\ngating = false\nlr_warmup_samples = 500\n'
                    'train_flags = {lookahead-alpha = 0.5}\n')
    parser = cliflags.ArgumentParser()
    parser.add_argument("--name-prefix", default=None)
    S.add_flags(parser)
    from_file = S.read_config(str(path))
    s = S.resolve(parser.parse_args(["--visits", "32"]), None, from_file)
    assert (s.name_prefix, s.visits, s.gating, s.lr_warmup_samples) == ("f", 32, False, 500)
    assert s.train_flags == {"lookahead-alpha": 0.5}
    with pytest.raises(UserError, match="cannot change to 9"):  # the run's shape, from a file too
        S.resolve(parser.parse_args([]), {**dataclasses.asdict(s), "board_size": 7}, {**from_file, "board_size": 9})


@pytest.mark.parametrize("text, message", [
    ("visits = 64\nvisist = 3\n", "unknown key visist"),
    ("visits = 0\n", "visits = 0 is below the minimum 1"),
    ("lr_scale = 0.0\n", "lr_scale = 0.0 must be positive"),
    ('selfplay_keys = "x"\n', "selfplay_keys = 'x' is not a table of keys"),
])
def test_a_bad_config_file_is_refused_by_key_and_file(tmp_path, text, message):
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(UserError) as e:
        S.read_config(str(path))
    assert str(path) in str(e.value) and message in str(e.value), str(e.value)


def test_help_config_lists_every_setting_with_its_doc(capsys):
    from zeroloop import cli

    assert cli.main(["loop", "--help-config"]) == 0
    text = capsys.readouterr().out
    for f in dataclasses.fields(S.LoopSettings):
        assert f"# {f.metadata['doc']}\n" in text and f"{f.name} = " in text, f.name


def test_loop_refuses_a_bad_config_file_before_touching_basedir(tmp_path):
    from conftest import run_cli

    path = tmp_path / "run.yaml"
    path.write_text("name_prefix: r\nboard_size: 30\n")
    r = run_cli("loop", str(tmp_path / "base"), "--config", str(path), timeout=120)
    assert r.returncode == 2 and "board_size = 30 is above the maximum 19" in r.stderr, r.stderr
    assert not (tmp_path / "base").exists()
