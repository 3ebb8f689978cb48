"""The synchronous loop gives up, with the reason, when training can never start.

Until the first net exists self-play plays random games, whose rows count
toward the shuffle window only up to --shuffle-min-rows; if an epoch never
fits in such a shuffle, the loop would play random games for ever (and a
--max-nn-evals budget, which counts net evaluations only, would never run
out). Settings that make this certain are refused when the loop starts
(``settings.training_can_start``); otherwise the loop stops after
``MAX_CYCLES_WITHOUT_TRAINING`` cycles that shuffled and trained nothing.
The steps are stand-ins here (no stage processes): what is tested is the
loop's bookkeeping of cycles, state.json and the error.
"""

from __future__ import annotations

import json

import pytest

from zeroloop import cliflags, layout
from zeroloop.errors import UserError
from zeroloop.loop import settings as S
from zeroloop.loop import sync
from zeroloop.storage import BaseDir

TRAIN_STOP = "not enough unused shuffled rows for an epoch of 5000 samples at batch 128 (--no-repeat-files)"


def parse(*flags: str) -> S.LoopSettings:
    parser = cliflags.ArgumentParser()
    parser.add_argument("--name-prefix", default="t")
    S.add_flags(parser)
    return S.resolve(parser.parse_args(list(flags)), None)


def test_settings_where_an_epoch_never_fits_a_shuffle_are_refused_by_name():
    # docs/learning.md's abl2: files of at most 1,000 rows, so a shuffle of random rows holds at most 4,999
    with pytest.raises(UserError, match=r"--shuffle-min-rows 4000 .* --samples-per-epoch 5000: .*random games for ever"):
        parse("--shuffle-min-rows", "4000")
    with pytest.raises(UserError, match=r"--keep-target-rows 4000 is below --samples-per-epoch 5000"):
        parse("--keep-target-rows", "4000")
    # one more row per file, or a larger minimum, and an epoch can fit
    assert parse("--shuffle-min-rows", "4001").shuffle_min_rows == 4001
    assert parse("--shuffle-min-rows", "4000", "--samples-per-epoch", "4096").samples_per_epoch == 4096
    with pytest.raises(UserError, match=r"--shuffle-min-rows 4000 with self-play files of at most 2000 rows"):
        parse("--shuffle-min-rows", "4000", "--samples-per-epoch", "6000", "--selfplay-key", "max_rows_per_file=2000")
    assert parse("--shuffle-min-rows", "4000", "--selfplay-key", "max_rows_per_file=2000").check() is None


class StandIn(sync.SyncLoop):
    """The loop with its five steps replaced: self-play plays, the shuffle writes (or not), training trains
    nothing except in the cycles listed."""

    def __init__(self, base, settings, shuffles: bool, trains_in: set[int], **kw):
        super().__init__(base, settings, report=False, **kw)
        self.shuffles, self.trains_in, self.samples = shuffles, trains_in, 0
        self.stats.samples_trained = lambda: self.samples

    def step_gatekeeper(self, state):
        return "no candidate"

    def step_selfplay(self, state):
        return "24 games with the random evaluator"

    def step_shuffle(self, state):
        state.shuffled = self.shuffles
        return "shuffled" if self.shuffles else "not enough rows yet"

    def step_train(self, state):
        if state.cycle in self.trains_in:
            self.samples += 5000
            return "5,000 samples"
        state.train_stop = TRAIN_STOP
        return f"trained nothing: {TRAIN_STOP}"

    def step_export(self, state):
        return "no new model"


def run_loop(tmp_path, shuffles=True, trains_in=(), **kw):
    base = BaseDir.open(str(tmp_path / "run"))
    settings = parse("--shuffle-min-rows", "5000")
    for d in (base.selfplay, base.models, base.modelstobetested, layout.loop(base.root)):
        base.storage.makedirs(d)
    out = (tmp_path / "out.txt").open("w")
    loop = StandIn(base, settings, shuffles, set(trains_in), out=out, **kw)
    try:
        return loop.run()
    finally:
        out.close()


def state_of(tmp_path) -> dict:
    return json.loads((tmp_path / "run" / "loop" / "state.json").read_text())


def test_a_budgeted_loop_whose_training_never_starts_stops_with_the_reason(tmp_path):
    with pytest.raises(UserError) as e:
        run_loop(tmp_path, max_nn_evals=1000)
    text = str(e.value)
    assert f"{sync.MAX_CYCLES_WITHOUT_TRAINING} cycles in a row" in text and TRAIN_STOP in text
    assert "--shuffle-min-rows 5000" in text and "--samples-per-epoch 5000" in text
    state = state_of(tmp_path)
    # it stopped at the boundary after the third such cycle; the next cycle starts clean
    assert (state["cycle"], state["step"]) == (sync.MAX_CYCLES_WITHOUT_TRAINING + 1, "gatekeeper")
    assert state["cycles_without_training"] == sync.MAX_CYCLES_WITHOUT_TRAINING
    cycles = (tmp_path / "run" / "loop" / "cycles.jsonl").read_text().splitlines()
    assert len(cycles) == sync.MAX_CYCLES_WITHOUT_TRAINING
    # rerun unchanged: one more fruitless cycle, and the same error
    with pytest.raises(UserError, match="cycles in a row"):
        run_loop(tmp_path, max_nn_evals=1000)
    assert state_of(tmp_path)["cycle"] == sync.MAX_CYCLES_WITHOUT_TRAINING + 2


def test_cycles_below_the_shuffle_minimum_or_that_train_do_not_count(tmp_path):
    # not enough rows to shuffle yet: the loop keeps playing (the rows grow with every cycle)
    assert run_loop(tmp_path / "a", shuffles=False, cycles=5) == 0
    assert state_of(tmp_path / "a")["cycles_without_training"] == 0
    # a cycle that trains resets the count
    assert run_loop(tmp_path / "b", trains_in={3}, cycles=5) == 0
    assert state_of(tmp_path / "b")["cycles_without_training"] == 2
