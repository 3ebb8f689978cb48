"""The batched evaluator: folded / channels_last / traced forms equal the plain model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zeroloop.nn.evaluator import NetEvaluator, board_policy, measure_throughput, random_inputs
from zeroloop.nn.fold import fold
from zeroloop.nn.model import random_init_model


def mixed_batch(pos_len: int, sizes: list[int], per_size: int = 3) -> tuple[np.ndarray, np.ndarray]:
    parts = [random_inputs(per_size, pos_len, n, seed=n) for n in sizes]
    return np.concatenate([s for s, _ in parts]), np.concatenate([g for _, g in parts])


def plain(net, spatial, glob):
    """What the evaluator must return, computed with the plain eval-mode model."""
    with torch.no_grad():
        out = net.eval()(torch.from_numpy(spatial), torch.from_numpy(glob))
    return (torch.softmax(out.policy[:, 0], 1).numpy(), torch.softmax(out.value, 1).numpy(),
            out.score.numpy(), torch.tanh(out.ownership).numpy())


SETTINGS = [dict(fold=f, channels_last=c, jit=j) for f in (True, False) for c in (True, False) for j in (True, False)]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(k for k, v in s.items() if v) or "plain")
def test_evaluator_equals_plain_model(settings):
    net = random_init_model("b2c32", 9, seed=11)
    spatial, glob = mixed_batch(9, [5, 7, 9])
    want = plain(net, spatial, glob)
    ev = NetEvaluator(net, "cpu", max_batch=16, **settings)
    got = ev.evaluate(spatial, glob)
    for g, w in zip(got, want):
        assert g.dtype == np.float32 and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(got.policy.sum(1), 1.0, rtol=1e-5)
    off = spatial[:, 0].reshape(len(spatial), -1) == 0
    assert (got.policy[:, :81][off] == 0).all()
    assert (got.ownership[spatial[:, 0] == 0] == 0).all()


def test_full_board_fast_path_is_exact_only_where_used():
    """Chunks whose positions fill the grid skip masking; padded ones must not."""
    net = random_init_model("b2c32", 9, seed=12)
    spatial, glob = mixed_batch(9, [9, 9, 7, 9], per_size=4)  # chunks of 4: full, full, padded, full
    ev = NetEvaluator(net, max_batch=16, chunk=4)
    got = ev.evaluate(spatial, glob)
    for g, w in zip(got, plain(net, spatial, glob)):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=2e-5)
    # The unmasked form really differs on padded boards, so the check above matters.
    padded = torch.from_numpy(spatial[8:12]), torch.from_numpy(glob[8:12])
    with torch.no_grad():
        a, b = fold(net)(*padded), fold(net, masked=False)(*padded)
    assert not torch.allclose(a.value, b.value, atol=1e-3)


def test_folding_leaves_the_net_alone():
    net = random_init_model("b1c16", 7, seed=1).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fold(net)
    NetEvaluator(net, max_batch=4)
    assert net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])


def test_any_batch_size_and_chunking():
    """Traced at one batch size, the evaluator serves others; big inputs go in max_batch chunks."""
    net = random_init_model("b1c16", 7, seed=2)
    ev = NetEvaluator(net, max_batch=8)
    spatial, glob = mixed_batch(7, [5, 7], per_size=10)  # 20 positions, 3 chunks
    whole = ev.evaluate(spatial, glob)
    for a, b in zip(whole, plain(net, spatial, glob)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)
    one = ev.evaluate(spatial[:1], glob[:1])
    np.testing.assert_allclose(one.policy, whole.policy[:1], rtol=1e-4, atol=2e-5)


def test_bad_inputs_are_refused():
    ev = NetEvaluator(random_init_model("b1c16", 7), max_batch=4, jit=False)
    spatial, glob = random_inputs(2, 7)
    with pytest.raises(ValueError, match="spatial input has shape"):
        ev.evaluate(spatial[:, :, :5, :5], glob)
    with pytest.raises(ValueError, match="global input has shape"):
        ev.evaluate(spatial, glob[:1])
    with pytest.raises(ValueError, match="precision"):
        NetEvaluator(random_init_model("b1c16", 7), precision="fp8")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_is_close(precision):
    """bf16 and fp16 (options where they are faster: AVX512_BF16 CPUs, CUDA) stay close to fp32."""
    net = random_init_model("b2c32", 9, seed=3)
    spatial, glob = mixed_batch(9, [7, 9])
    want = plain(net, spatial, glob)
    got = NetEvaluator(net, max_batch=8, precision=precision).evaluate(spatial, glob)
    np.testing.assert_allclose(got.policy, want[0], atol=0.03)
    np.testing.assert_allclose(got.value, want[1], atol=0.03)
    assert got.score.dtype == np.float32


def test_board_policy_matches_board_indexing():
    """Net index y*P+x maps to the board's y*n+x (zeroloop.go.board.move_of_index order); pass stays last."""
    pos_len, n = 9, 7
    net_policy = np.arange(pos_len * pos_len + 1, dtype=np.float32)
    bp = board_policy(net_policy[None], n, pos_len)[0]
    assert bp.shape == (n * n + 1,)
    for y in range(n):
        for x in range(n):
            assert bp[y * n + x] == y * pos_len + x
    assert bp[-1] == pos_len * pos_len


def test_measure_throughput_counts_whole_batches():
    ev = NetEvaluator(random_init_model("b1c16", 5), max_batch=8)
    t = measure_throughput(ev, batch_size=4, seconds=0.05, warmup=1)
    assert t.batch_size == 4 and t.batches >= 2
    assert t.positions_per_s == pytest.approx(t.batches * 4 / t.seconds)


def test_bench_nn_cli_prints_one_json_object():
    """`zeroloop bench nn --json` (flags after the name) reports every variant and its ratio to eager."""
    import json

    from conftest import run_cli

    r = run_cli("bench", "nn", "--json", "--nets", "b1c16", "--batch-sizes", "4", "--seconds", "0.05",
                "--rounds", "1", "--board-size", "5", "--threads", "1", timeout=120)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["threads"] == 1 and d["board_size"] == 5
    for v in ("eager", "channels_last", "folded", "default", "bf16"):
        assert d[f"b1c16_{v}_b4"] > 0
    assert d["b1c16_default_b4_vs_eager"] == pytest.approx(d["b1c16_default_b4"] / d["b1c16_eager_b4"], rel=1e-2)
    bad = run_cli("bench", "nn", "--variants", "turbo", timeout=60)
    assert bad.returncode == 2 and "unknown turbo" in bad.stderr and "Traceback" not in bad.stderr
