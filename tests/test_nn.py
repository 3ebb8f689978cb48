"""The net: shapes, masking (padding invariance, no off-board leaks), symmetry plumbing, configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zeroloop import features, symmetry
from zeroloop.errors import ConfigError
from zeroloop.go.game import Game
from zeroloop.nn import configs
from zeroloop.nn.model import OFF_BOARD_LOGIT, build_model, random_init_model

TOL = dict(rtol=1e-4, atol=1e-4)


def random_positions(size: int, count: int, seed: int, moves: int = 12) -> list[Game]:
    """Games of random legal moves (captures and ko included when they happen)."""
    rng = np.random.default_rng(seed)
    games = []
    for _ in range(count):
        g = Game(size)
        for _ in range(int(rng.integers(0, moves + 1))):
            legal = [(x, y) for x in range(size) for y in range(size) if g.is_legal(g.to_move, (x, y))]
            move = legal[rng.integers(len(legal))] if legal and rng.random() > 0.05 else None
            g.play(g.to_move, move)
        games.append(g)
    return games


def encode(games: list[Game], pos_len: int, komi: float = 7.5) -> tuple[torch.Tensor, torch.Tensor]:
    enc = [features.encode(g.board, g.hist, komi, pos_len) for g in games]
    return torch.from_numpy(np.stack([s for s, _ in enc])), torch.from_numpy(np.stack([q for _, q in enc]))


@pytest.fixture(scope="module")
def net9():
    return random_init_model("b1c16", 9, seed=1)


@pytest.mark.parametrize("pos_len,sizes", [(5, [5]), (7, [5, 7]), (9, [5, 7, 9])])
def test_output_shapes(pos_len, sizes):
    net = random_init_model("b1c16", pos_len, seed=0)
    games = [g for n in sizes for g in random_positions(n, 2, seed=n)]
    x, q = encode(games, pos_len)
    for mode in (net.train, net.eval):
        mode()
        out = net(x, q)
        n = len(games)
        assert out.policy.shape == (n, 2, pos_len * pos_len + 1)
        assert out.value.shape == (n, 3)
        assert out.score.shape == (n,)
        assert out.ownership.shape == (n, pos_len, pos_len)
        for t in out:
            assert t.dtype == torch.float32 and torch.isfinite(t).all()


def test_padding_invariance(net9):
    """A 7x7 position at pos_len 9 equals the same position at pos_len 7."""
    games = random_positions(7, 6, seed=3)
    x7, q7 = encode(games, 7)
    x9, q9 = encode(games, 9)
    with torch.no_grad():
        a, b = net9(x7, q7), net9(x9, q9)
    pol9 = b.policy[:, :, :81]
    on9 = pol9.reshape(-1, 2, 9, 9)[:, :, :7, :7].reshape(-1, 2, 49)
    torch.testing.assert_close(on9, a.policy[:, :, :49], **TOL)
    torch.testing.assert_close(b.policy[:, :, 81], a.policy[:, :, 49], **TOL)  # pass
    torch.testing.assert_close(b.value, a.value, **TOL)
    torch.testing.assert_close(b.score, a.score, **TOL)
    torch.testing.assert_close(b.ownership[:, :7, :7], a.ownership, **TOL)
    # Nothing off board: fixed policy logit, zero ownership.
    off = x9[:, 0] == 0
    assert (pol9.reshape(-1, 2, 9, 9).permute(1, 0, 2, 3)[:, off] == OFF_BOARD_LOGIT).all()
    assert (b.ownership[off] == 0).all()


def test_padding_invariance_in_training_mode():
    """Batchnorm statistics count only on-board points: padded and unpadded batches train alike."""
    games = random_positions(7, 8, seed=4)
    outs = []
    for pos_len in (7, 9):
        net = random_init_model("b1c16", 9, seed=2).train()
        x, q = encode(games, pos_len)
        out = net(x, q)
        outs.append((out, net.blocks[0].norm1.running_mean.clone()))
    (a, ra), (b, rb) = outs
    torch.testing.assert_close(b.value, a.value, **TOL)
    torch.testing.assert_close(b.ownership[:, :7, :7], a.ownership, **TOL)
    torch.testing.assert_close(rb, ra, **TOL)


def test_off_board_inputs_do_not_leak(net9):
    """Junk in the off-board part of any input plane changes nothing."""
    games = random_positions(7, 4, seed=5)
    x, q = encode(games, 9)
    junk = x.clone()
    noise = torch.rand_like(junk[:, 1:])
    junk[:, 1:] = torch.where(x[:, :1] > 0, junk[:, 1:], noise)
    with torch.no_grad():
        a, b = net9(x, q), net9(junk, q)
    for ta, tb in zip(a, b):
        torch.testing.assert_close(ta, tb, rtol=0, atol=0)


def test_all_zero_padding_rows_stay_finite(net9):
    """A batch padded with all-zero rows (no board) gives finite outputs and leaves real rows alone."""
    x, q = encode(random_positions(7, 2, seed=9), 9)
    padded_x = torch.cat([x, torch.zeros_like(x)])
    padded_q = torch.cat([q, torch.zeros_like(q)])
    with torch.no_grad():
        a, b = net9(x, q), net9(padded_x, padded_q)
    for ta, tb in zip(a, b):
        assert torch.isfinite(tb).all()
        torch.testing.assert_close(tb[:2], ta, **TOL)


def symmetric_kernels(net: torch.nn.Module) -> None:
    """Make every 3x3 kernel invariant under the 8 symmetries (so the net is equivariant)."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3):
                w = m.weight
                w.copy_(sum(symmetry.apply_planes(w, s) for s in range(8)) / 8)


def through_symmetry(net, x, q, sym: int, pos_len: int):
    """The net's outputs for x, computed on the transformed x and mapped back."""
    with torch.no_grad():
        out = net(symmetry.apply_planes(x, sym), q)
    inv = symmetry.inverse(sym)
    return (symmetry.apply_policy(out.policy, inv, pos_len), out.value, out.score,
            symmetry.apply_planes(out.ownership, inv))


def test_symmetry_plumbing_round_trips():
    """Transform inputs, evaluate, invert outputs: an equivariant net gives its own outputs back."""
    net = random_init_model("b1c16", 9, seed=6)
    symmetric_kernels(net)
    x, q = encode(random_positions(7, 3, seed=7), 9)
    with torch.no_grad():
        base = net(x, q)
    for sym in range(8):
        pol, val, score, own = through_symmetry(net, x, q, sym, 9)
        torch.testing.assert_close(pol, base.policy, **TOL)
        torch.testing.assert_close(val, base.value, **TOL)
        torch.testing.assert_close(score, base.score, **TOL)
        torch.testing.assert_close(own, base.ownership, **TOL)


def test_symmetry_plumbing_test_has_teeth():
    """Without symmetric kernels, or with the wrong inverse, outputs differ: the test above can fail."""
    net = random_init_model("b1c16", 9, seed=6)
    x, q = encode(random_positions(7, 3, seed=7), 9)
    with torch.no_grad():
        base = net(x, q)
    pol, *_ = through_symmetry(net, x, q, 1, 9)
    assert not torch.allclose(pol, base.policy, atol=1e-3)
    symmetric_kernels(net)
    with torch.no_grad():
        base = net(x, q)
        out = net(symmetry.apply_planes(x, 5), q)  # 5 is not its own inverse: use it as one
    assert symmetry.inverse(5) != 5
    wrong = symmetry.apply_policy(out.policy, 5, 9)
    assert not torch.allclose(wrong, base.policy, atol=1e-3)


def test_fresh_net_is_stem_plus_heads():
    """A fresh net's residual branches start at zero (and it still runs in both modes)."""
    net = build_model("b2c32", 7)
    assert all(not b.conv2.weight.detach().any() for b in net.blocks)
    x, q = encode(random_positions(7, 2, seed=8), 7)
    net.train()(x, q)
    assert torch.isfinite(net.eval()(x, q).policy).all()


def test_configs_table():
    for name in ("b1c16", "b4c64", "b6c96", "b10c128", "b20c256"):
        cfg = configs.get_config(name)
        assert cfg.name == name
        assert cfg.num_blocks == int(name[1:name.index("c")])
        assert cfg.trunk == int(name[name.index("c") + 1:])
        assert configs.NetConfig.from_dict(cfg.to_dict()) == cfg
    assert configs.DEFAULT_CONFIG == "b6c96"
    assert configs.get_config("b6c96").blocks.count("gpool") == 2


def test_unknown_config_lists_known_names():
    with pytest.raises(ConfigError, match="unknown net config 'b7c7'.*b1c16.*b6c96"):
        configs.get_config("b7c7")


@pytest.mark.parametrize("change,match", [
    ({"blocks": ["regular", "dilated"]}, "unknown block kinds"),
    ({"trunk": 0}, "trunk must be a positive integer"),
    ({"gpool": 16}, "gpool .* must be less than mid"),
    ({"extra": 1}, "unknown keys"),
])
def test_bad_config_dicts(change, match):
    d = {**configs.get_config("b1c16").to_dict(), **change}
    with pytest.raises(ConfigError, match=match):
        configs.NetConfig.from_dict(d)
    d = configs.get_config("b1c16").to_dict()
    del d["policy"]
    with pytest.raises(ConfigError, match="missing keys"):
        configs.NetConfig.from_dict(d)
