"""The loop's settings are one typed dataclass: each field's doc and range make its flag, help and check."""

from __future__ import annotations

import dataclasses

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
    (("--samples-per-epoch", "64", "--batch-size", "128"), "is less than one batch"),
])
def test_a_bad_value_is_refused_with_its_flag(flags, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse(*flags)


def test_an_unknown_net_is_refused_by_its_flag():
    with pytest.raises(SystemExit):
        parse("--model-kind", "b99c999")


def test_defaults_pass_and_a_flag_changes_one():
    s = parse("--visits", "32")
    assert s.visits == 32 and s.komi == S.fair_komi(7) and s.check() is None
