"""Gating decisions on scripted match results."""

import pytest

from zeroloop.gating import (ACCEPT, CONTINUE, REJECT, SprtParams, Tally, accepted, fixed_decision,
                             sprt_decision, sprt_llr)


def tally(results: str) -> Tally:
    t = Tally()
    for r in results:
        t = t.add({"w": "win", "l": "loss", "d": "draw"}[r])
    return t


def test_tie_goes_to_candidate():
    assert accepted(tally("wl"), 0.5)
    assert accepted(tally("dd"), 0.5)
    assert not accepted(tally("wll"), 0.5)


def test_fixed_length_stops_once_decided():
    # 10 games at 0.5: 5 points accept whatever follows.
    assert fixed_decision(tally("wwww"), 10, 0.5) == CONTINUE
    assert fixed_decision(tally("wwwww"), 10, 0.5) == ACCEPT
    # 6 losses: at most 4 points left, 4 < 5.
    assert fixed_decision(tally("lllll"), 10, 0.5) == CONTINUE
    assert fixed_decision(tally("llllll"), 10, 0.5) == REJECT
    # Draws count half.
    assert fixed_decision(tally("dddddddddd"), 10, 0.5) == ACCEPT
    assert fixed_decision(tally("ddddddddd") .add("loss"), 10, 0.5) == REJECT


def test_fixed_length_with_higher_bar():
    t = tally("wwwwwwlll")  # 6/9 so far, 0.6 of 10 needs 6
    assert fixed_decision(t, 10, 0.6) == ACCEPT
    assert fixed_decision(tally("wwwwwllll"), 10, 0.6) == CONTINUE
    assert fixed_decision(tally("wwwwwlllll"), 10, 0.6) == REJECT


def test_sprt_accepts_a_clearly_stronger_candidate_early():
    p = SprtParams(elo0=0, elo1=35)
    t = Tally()
    decisions = []
    for i in range(400):
        t = t.add("win" if i % 5 else "loss")  # 80% score
        d = sprt_decision(t, p, 400, 0.5)
        decisions.append(d)
        if d != CONTINUE:
            break
    assert decisions[-1] == ACCEPT
    assert t.games < 100


def test_sprt_rejects_a_weaker_candidate():
    p = SprtParams()
    t = Tally()
    for i in range(400):
        t = t.add("loss" if i % 3 else "win")  # 33% score
        if sprt_decision(t, p, 400, 0.5) != CONTINUE:
            break
    assert sprt_decision(t, p, 400, 0.5) == REJECT
    assert t.games < 100


def test_sprt_undecided_falls_back_to_fixed_rule_at_cap():
    p = SprtParams(elo0=0, elo1=35)
    even = tally("wl" * 10)
    assert sprt_decision(even, p, 100, 0.5) == CONTINUE
    assert sprt_decision(even, p, 20, 0.5) == ACCEPT
    assert sprt_decision(tally("wl" * 9 + "ll"), p, 20, 0.5) == REJECT


def test_llr_sign_follows_score():
    p = SprtParams(0, 35)
    assert sprt_llr(tally("wwwwwwwwl"), p) > 0
    assert sprt_llr(tally("llllllllw"), p) < 0
    assert sprt_llr(Tally(), p) == 0
    # All wins: finite and positive (variance regularised).
    assert 0 < sprt_llr(tally("w" * 20), p) < float("inf")


@pytest.mark.parametrize("kw", [dict(elo0=10, elo1=5), dict(alpha=0), dict(beta=0.7)])
def test_bad_sprt_params_rejected(kw):
    with pytest.raises(ValueError):
        SprtParams(**kw)
