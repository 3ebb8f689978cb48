"""Feature version 2 (KataGo's inputs v7): ladder and area planes on positions of known status.

Ladders: a working ladder (its stones and both working moves), the same
chain in atari, broken by a ladder breaker (one way, then both), the
breaker played as an escape (gone now, still there one move ago), and an
atari escaped by capturing. Area: the pass-alive positions of
tests/test_passalive.py, which v7 extends by one-colour regions and stones.
tests/test_katago_features.py checks the same planes against KataGo's own.
"""

import numpy as np
import pytest

from zeroloop import features as F
from zeroloop.go.game import BLACK, WHITE, Game
from zeroloop.go.rules import Rules

LADDER_NOW, LADDER_1, LADDER_2, WORKING, AREA_MINE, AREA_THEIRS = 14, 15, 16, 17, 18, 19


def setup(diagram: str, to_move: int = BLACK, suicide: bool = False) -> Game:
    """A game of rows of X (Black), O (White), . (empty), top row first."""
    rows = diagram.split()
    game = Game(len(rows), Rules("simple", suicide, 7.0))
    game.setup([(x, y) for y, r in enumerate(rows) for x, c in enumerate(r) if c == "X"],
               [(x, y) for y, r in enumerate(rows) for x, c in enumerate(r) if c == "O"], to_move)
    return game


def planes(game: Game) -> tuple[np.ndarray, np.ndarray]:
    return F.encode(game.board, game.hist, 7.0, game.size, F.KATAGO_V7, game.recent_boards())


def points(plane: np.ndarray) -> set[tuple[int, int]]:
    return {(int(x), int(y)) for y, x in zip(*np.nonzero(plane))}


# White's stone at (2,2) with two liberties, (3,2) and (2,3): Black ataris on either and the ladder runs
# to an edge. A White stone at (1,4) breaks the ladder started at (3,2), one at (4,1) the one at (2,3).
LADDER = "......... ..X...... .XO...... ...X..... ......... ......... ......... ......... ........."
BREAK_ONE = "......... ..X...... .XO...... ...X..... .O....... ......... ......... ......... ........."
BREAK_BOTH = "......... ..X.O.... .XO...... ...X..... .O....... ......... ......... ......... ........."


def test_working_ladder_marks_the_chain_and_both_working_moves():
    s, _ = planes(setup(LADDER, BLACK))
    assert points(s[LADDER_NOW]) == {(2, 2)}
    assert points(s[WORKING]) == {(3, 2), (2, 3)}
    # with White to move the chain is still ladderable, but working moves are only shown against the opponent
    s, _ = planes(setup(LADDER, WHITE))
    assert points(s[LADDER_NOW]) == {(2, 2)} and not s[WORKING].any()


def test_chain_in_atari_in_a_ladder_is_captured_and_was_ladderable_a_move_ago():
    game = setup(LADDER, BLACK)
    game.play(BLACK, (3, 2))
    s, _ = planes(game)
    assert points(s[LADDER_NOW]) == {(2, 2)} and points(s[LADDER_1]) == {(2, 2)}
    game.play(WHITE, (2, 3))
    game.play(BLACK, (2, 4))
    s, _ = planes(game)
    assert points(s[LADDER_NOW]) == {(2, 2), (2, 3)}
    assert points(s[LADDER_1]) == {(2, 2), (2, 3)}  # in atari before Black's move too
    assert points(s[LADDER_2]) == {(2, 2)}  # before White extended


def test_ladder_breaker_leaves_one_working_move_then_none():
    s, _ = planes(setup(BREAK_ONE, BLACK))
    assert points(s[LADDER_NOW]) == {(2, 2)} and points(s[WORKING]) == {(2, 3)}
    s, _ = planes(setup(BREAK_BOTH, BLACK))
    assert (2, 2) not in points(s[LADDER_NOW]) and not s[WORKING].any()
    # the breaker stone's atari escapes too: Black at (3,2) then White extends and runs free
    game = setup(BREAK_BOTH, BLACK)
    game.play(BLACK, (3, 2))
    s, _ = planes(game)
    assert (2, 2) not in points(s[LADDER_NOW])


def test_escape_move_clears_the_ladder_but_not_the_planes_of_earlier_moves():
    game = setup(BREAK_ONE, WHITE)
    game.play(WHITE, (4, 1))  # the second breaker, played as White's escape
    s, _ = planes(game)
    assert (2, 2) not in points(s[LADDER_NOW]) and not s[WORKING].any()
    assert points(s[LADDER_1]) == {(2, 2)} and points(s[LADDER_2]) == {(2, 2)}  # no move before: as one ago


def test_atari_escaped_by_capturing_an_attacker_in_atari():
    # White (2,2) in atari (liberty (2,3)); Black's (3,2) is in atari too: White captures it at (3,3).
    game = setup("......... ..XO..... .XOXO.... ......... ......... ......... ......... ......... .........", WHITE)
    s, _ = planes(game)
    assert (2, 2) not in points(s[LADDER_NOW])
    # without White's (4,2) the capture is gone and the atari is a ladder
    game = setup("......... ..XO..... .XOX..... ...X..... ......... ......... ......... ......... .........", WHITE)
    s, _ = planes(game)
    assert (2, 2) in points(s[LADDER_NOW])


AREA_CHARS = {(1, 0): "m", (0, 1): "t", (0, 0): "."}


def area_rows(s: np.ndarray) -> str:
    n = int(s[0].sum() ** 0.5)
    return " ".join("".join(AREA_CHARS[(int(s[AREA_MINE, y, x]), int(s[AREA_THEIRS, y, x]))] for x in range(n))
                    for y in range(n))


@pytest.mark.parametrize("diagram, to_move, expected, suicide", [
    # Black's dead stone in White's eye... White's area (pass-alive), seen by Black (to move) as the opponent's
    (".XO.O XXOOO .XO.O OXOOO .XO.O", BLACK, "mmttt mmttt mmttt mmttt mmttt", False),
    # Black alive with three eyes; the open area below is bordered by Black only: Black's too
    (".X.X. XXXXX ..... ..... .....", WHITE, "ttttt ttttt ttttt ttttt ttttt", False),
    # one eye only, and a White stone: the stones are each side's, the region touching both is no one's
    (".X... XX... ..... ..... ..O..", BLACK, "mm... mm... ..... ..... ..t..", False),
    # both alive with a dame point between them
    (".X.O. XXXOO .XOO. XXO.O .XOOO", BLACK, "mm.tt mmmtt mmttt mmttt mmttt", False),
    # a lone stone: its stone and the empty region it alone borders
    ("..... ..... ..X.. ..... .....", WHITE, "ttttt ttttt ttttt ttttt ttttt", False),
    # an empty board: no one's
    ("..... ..... ..... ..... .....", BLACK, "..... ..... ..... ..... .....", False),
])
def test_area_planes_on_positions_of_known_status(diagram, to_move, expected, suicide):
    s, _ = planes(setup(diagram, to_move, suicide))
    assert area_rows(s) == expected


def test_pass_would_end_the_game_after_a_pass():
    game = setup(LADDER, BLACK)
    assert planes(game)[1][14] == 0.0
    game.play(BLACK, None)
    assert planes(game)[1][14] == 1.0
    game.play(WHITE, (5, 5))
    assert planes(game)[1][14] == 0.0


def test_version_2_holds_version_1_at_katagos_indices():
    rng = np.random.default_rng(3)
    game = Game(7, Rules("positional", False, 6.5))
    colour = BLACK
    for _ in range(30):
        legal = [(x, y) for x in range(7) for y in range(7) if game.is_legal(colour, (x, y))]
        game.play(colour, legal[rng.integers(len(legal))])
        colour = WHITE if colour == BLACK else BLACK
    v1, g1 = F.encode(game.board, game.hist, 6.5, 9)
    v2, g2 = F.encode(game.board, game.hist, 6.5, 9, F.KATAGO_V7, game.recent_boards())
    np.testing.assert_array_equal(v2[[0, 1, 2, 3, 4, 5, 6, 9, 10, 11, 12, 13]], v1)
    np.testing.assert_array_equal(g2[[0, 1, 2, 3, 4, 5, 6, 7, 8, 18]], g1)
    assert not v2[[7, 8, 20, 21]].any() and not g2[[9, 10, 11, 12, 13, 15, 16, 17]].any()
    assert not v2[:, 7:, :].any() and not v2[:, :, 7:].any()  # nothing off the 7x7 board


def test_feature_names_and_versions_are_validated():
    assert F.parse("katago-v7") == F.KATAGO_V7 and F.parse("zeroloop") == F.FEATURE_VERSION and F.parse(2) == 2
    assert F.shape(F.KATAGO_V7) == (22, 19)
    with pytest.raises(ValueError, match="unknown feature set 'v8'"):
        F.parse("v8")
    with pytest.raises(ValueError, match="unknown feature version 3"):
        F.parse(3)


# --- the stages: search leaves and self-play rows carry version 2's inputs, earlier boards included ----------


def _path_moves(bs, g: int, node: int) -> list[int]:
    """Policy indices from the root to a node of game g's tree."""
    from zeroloop.search import tree

    moves = []
    while node != 0:
        parent = int(bs.node_i[g, node, tree.N_PARENT])
        first, count = bs.node_i[g, parent, tree.N_FIRST], bs.node_i[g, parent, tree.N_COUNT]
        j = first + int(np.flatnonzero(bs.e_child[g, first:first + count] == node)[0])
        moves.append(int(bs.e_move[g, j]))
        node = parent
    return moves[::-1]


def test_search_leaves_get_the_features_of_their_position_with_its_earlier_boards():
    from zeroloop.search.batch import BatchSearch, SearchParams
    from zeroloop.search.evaluators import RandomEvaluator

    n = 7
    opening = [(2, 2), (2, 1), (1, 2), (3, 3), (3, 2)]  # a White stone in atari next to ladders
    bs = BatchSearch(1, n, n, 40, 200, SearchParams(random_symmetry=False), feature_version=F.KATAGO_V7)
    bs.new_game(0, n, 0, False, 7.0, 200)
    game = Game(n, Rules("simple", False, 7.0))
    for i, (x, y) in enumerate(opening):
        bs.play(0, y * n + x, reuse=False)
        game.play(BLACK if i % 2 == 0 else WHITE, (x, y))
    evaluator = RandomEvaluator(n, seed=3, feature_version=F.KATAGO_V7)
    checked = 0
    bs.start_search(0, 40)
    while bs.searching(0):
        k = bs.step(lambda s, g, _games: evaluator.evaluate(s, g))
        for i in range(k):
            leaf = bs.leaves[i]
            replay = Game(n, Rules("simple", False, 7.0))
            for j, (x, y) in enumerate(opening):
                replay.play(BLACK if j % 2 == 0 else WHITE, (x, y))
            for m in _path_moves(bs, int(leaf[0]), int(leaf[1])):
                replay.play(replay.to_move, None if m == n * n else (m % n, m // n))
            want_s, want_g = F.encode(replay.board, replay.hist, 7.0, n, F.KATAGO_V7, replay.recent_boards())
            np.testing.assert_array_equal(bs.spatial[i], want_s)
            np.testing.assert_array_equal(bs.glob[i], want_g)
            checked += 1
    assert checked >= 30


def test_selfplay_rows_of_a_version_2_model_hold_version_2_inputs(tmp_path):
    import copy
    import glob as globmod

    from fsspec.implementations.local import LocalFileSystem

    from zeroloop import config as cfgmod
    from zeroloop import rows
    from zeroloop.go import board as B
    from zeroloop.search.evaluators import RandomEvaluator
    from zeroloop.selfplay import config as spconfig
    from zeroloop.selfplay.engine import SelfplayEngine
    from zeroloop.selfplay.models import FixedModel, LoadedModel
    from zeroloop.storage import Storage

    finished = {}

    class Recording(SelfplayEngine):
        def _finish_game(self, g, *args):
            finished[self.slots[g].game_id] = copy.deepcopy(self.slots[g])
            super()._finish_game(g, *args)

    B.seed(5)
    cfg = cfgmod.from_dict(spconfig.SelfplayConfig, dict(
        num_games=2, board_sizes=[5], board_size_weights=[1.0], data_board_len=5, max_visits=8, cheap_visits=2,
        full_search_prob=0.5, max_moves_per_area=2.0, features="katago-v7"))
    model = LoadedModel("rnd", RandomEvaluator(5, seed=1, feature_version=F.KATAGO_V7))
    storage = Storage(LocalFileSystem())
    Recording(cfg, storage, str(tmp_path / "sp"), FixedModel(model), np.random.default_rng(2), max_games_total=2).run()
    files = sorted(globmod.glob(str(tmp_path / "sp" / "rnd" / "tdata" / "*.npz")))
    data = rows.concat([rows.read(storage, f) for f in files])
    assert rows.feature_version_of(data) == F.KATAGO_V7 and data["globalInputNC"].shape[1] == 19
    planes = rows.unpack_planes(data["binaryInputNCHWPacked"], 5)
    checked = 0
    for i in range(len(data["gameIdN"])):
        state = finished[int(data["gameIdN"][i])]
        game = Game(5, Rules(state.rules.ko_rule, state.rules.multi_stone_suicide, state.komi))
        for j, m in enumerate(state.moves[:int(data["metaNC"][i, rows.META_TURN])]):
            game.play(BLACK if j % 2 == 0 else WHITE, None if m == 25 else (m % 5, m // 5))
        want_s, want_g = F.encode(game.board, game.hist, state.komi, 5, F.KATAGO_V7, game.recent_boards())
        np.testing.assert_array_equal(planes[i], want_s)
        np.testing.assert_array_equal(data["globalInputNC"][i], want_g)
        checked += 1
    assert checked >= 5 and planes[:, 14:20].any()
    with pytest.raises(Exception, match="feature version 2, expected version 1"):
        rows.validate(data, "rows", feature_version=1)


def test_loop_setting_reaches_selfplay_and_training_and_is_fixed_for_a_run():
    from zeroloop import plan
    from zeroloop.loop import settings as S

    v7 = S.LoopSettings("r", features="katago-v7")
    assert S.selfplay_config(v7)["features"] == "katago-v7"
    args = plan.train_args(S.describe(v7), S.placement(None, v7), synchronous=True)
    assert args[args.index("--features") + 1] == "katago-v7"
    default = S.LoopSettings("r")
    assert "features" not in S.selfplay_config(default)  # the default's stage configs are as before
    assert "--features" not in plan.train_args(S.describe(default), S.placement(None, default), synchronous=True)
    assert "features" in S.LoopSettings.SHAPE


def test_trainer_refuses_a_model_of_other_inputs_than_asked(tmp_path):
    from zeroloop.errors import ModelFileError
    from zeroloop.nn import modelfile
    from zeroloop.nn.model import random_init_model
    from zeroloop.storage import BaseDir
    from zeroloop.train.loop import Trainer
    from zeroloop.train.options import TrainOptions

    base = BaseDir.open(str(tmp_path / "run"))
    net = random_init_model("b1c16", 5, seed=1)  # feature version 1
    path = str(tmp_path / "m1")
    modelfile.save_model(base.storage, path, net, modelfile.ModelInfo.for_model(net, "m1"))
    opts = dict(name="t", model_kind="b1c16", features="katago-v7", batch_size=4, export_mode="main", device="cpu")
    trainer = Trainer(base, TrainOptions(**opts, initial_checkpoint=path))
    with pytest.raises(ModelFileError, match="reads input feature version 1, this training was asked for version 2"):
        trainer._start_fresh(5)
    fresh = Trainer(base, TrainOptions(**opts))
    fresh._start_fresh(5)
    assert fresh.model.config.features == F.KATAGO_V7 and fresh.model.conv_spatial.weight.shape[1] == 22
