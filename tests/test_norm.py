"""layer_norm and batch_norm against PyTorch: values, gradients, running stats, double backward."""

import numpy as np
import pytest
from oracle import compare, needs_torch, rand, torch

import deltaprop as dp
from deltaprop.errors import DTypeError, ShapeError
from deltaprop.nn import functional as F
from deltaprop.ops.norm import BatchNormFunction, LayerNormFunction

TF = torch.nn.functional if torch is not None else None

# ----------------------------------------------------------------------------------------------
# layer norm
# ----------------------------------------------------------------------------------------------

LN_CASES = [((4, 5), 5), ((4, 5), (5,)), ((2, 3, 4), (4,)), ((2, 3, 4), [3, 4]),
            ((2, 3, 4, 5), (3, 4, 5)), ((6,), 6)]  # fmt: skip


@needs_torch
@pytest.mark.parametrize("shape, normalized", LN_CASES)
@pytest.mark.parametrize("affine", ["none", "weight", "bias", "both"])
@pytest.mark.parametrize("eps", [1e-5, 0.1])
def test_layer_norm_matches_torch(shape, normalized, affine, eps):
    ns = (normalized,) if isinstance(normalized, int) else tuple(normalized)
    arrays = [rand(*shape, seed=1) * 3 + 1]
    if affine in ("weight", "both"):
        arrays.append(rand(*ns, seed=2))
    if affine in ("bias", "both"):
        arrays.append(rand(*ns, seed=3))

    def call(lib_fn, normalized):
        def fn(x, *p):
            w = p[0] if affine in ("weight", "both") else None
            b = p[-1] if affine in ("bias", "both") else None
            return lib_fn(x, normalized, w, b, eps)

        return fn

    # deltaprop also accepts an int normalized_shape (as nn.LayerNorm); torch's F wants a tuple
    compare(call(F.layer_norm, normalized), call(TF.layer_norm, ns), arrays)


def test_layer_norm_extreme_scale():
    x = rand(3, 8) * 1e4 + 300.0  # large offset and spread
    compare(lambda a: F.layer_norm(a, (8,)), lambda a: TF.layer_norm(a, (8,)), [x], atol=1e-6)


def test_layer_norm_float32():
    x = dp.tensor(rand(4, 6).astype(np.float32), requires_grad=True)
    w = dp.ones(6, requires_grad=True)
    b = dp.zeros(6, requires_grad=True)
    y = F.layer_norm(x, 6, w, b)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data.mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(y.data.var(axis=1), 1, atol=1e-3)
    (y * dp.tensor(rand(4, 6, seed=5).astype(np.float32))).sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32


def test_layer_norm_gradcheck():
    x = dp.tensor(rand(2, 3, 4), dtype=dp.float64, requires_grad=True)
    w = dp.tensor(rand(3, 4, seed=2), dtype=dp.float64, requires_grad=True)
    b = dp.tensor(rand(3, 4, seed=3), dtype=dp.float64, requires_grad=True)
    assert dp.gradcheck(lambda a, c, d: F.layer_norm(a, (3, 4), c, d, eps=1e-3), (x, w, b))


def test_layer_norm_fused_matches_twin():
    x = dp.tensor(rand(3, 2, 5), dtype=dp.float64, requires_grad=True)
    w = dp.tensor(rand(5, seed=2), dtype=dp.float64, requires_grad=True)
    r = dp.tensor(rand(3, 2, 5, seed=4), dtype=dp.float64)
    y = F.layer_norm(x, 5, w)
    assert isinstance(y.grad_fn, LayerNormFunction)
    y2 = y.grad_fn.twin(x, w)
    g1 = dp.autograd.grad((y * r).sum(), [x, w])
    g2 = dp.autograd.grad((y2 * r).sum(), [x, w])
    np.testing.assert_allclose(y.data, y2.data, rtol=1e-12, atol=1e-12)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-10, atol=1e-12)


@needs_torch
def test_layer_norm_double_backward_matches_torch():
    x, w, b = rand(3, 4, seed=1), rand(4, seed=2), rand(4, seed=3)
    v = [rand(3, 4, seed=6), rand(4, seed=7), rand(4, seed=8)]

    def run(lib, fn):
        ps = [lib.tensor(a, requires_grad=True) for a in (x, w, b)]
        loss = (fn(ps[0], (4,), ps[1], ps[2]) ** 3).sum()
        gs = lib.autograd.grad(loss, ps, create_graph=True)
        dot = sum((g * lib.tensor(vi)).sum() for g, vi in zip(gs, v))
        return [np.asarray(h.detach().numpy()) for h in lib.autograd.grad(dot, ps)]

    for a, t in zip(run(dp, F.layer_norm), run(torch, TF.layer_norm)):
        np.testing.assert_allclose(a, t, rtol=1e-7, atol=1e-9)


def test_layer_norm_errors():
    with pytest.raises(ShapeError, match=r"normalized_shape=\[5\].*\(3, 4\)"):
        F.layer_norm(dp.zeros(3, 4), (5,))
    with pytest.raises(ShapeError, match=r"weight of shape \(5,\)"):
        F.layer_norm(dp.zeros(3, 4), 4, weight=dp.ones(5))
    with pytest.raises(RuntimeError):  # ShapeError is a RuntimeError too, as torch raises
        F.layer_norm(dp.zeros(3, 4), (2, 4))
    with pytest.raises(DTypeError):
        F.layer_norm(dp.zeros(3, 4), 4, bias=dp.zeros(4, dtype=dp.float64))
    with pytest.raises(TypeError, match="normalized_shape"):
        F.layer_norm(dp.zeros(3, 4), "4")


# ----------------------------------------------------------------------------------------------
# batch norm
# ----------------------------------------------------------------------------------------------

BN_SHAPES = [(5, 3), (4, 3, 6), (2, 3, 4, 5)]


def _bn_pair(shape, affine, training, momentum, eps, seed=0):
    """Run F.batch_norm in deltaprop and torch on the same data; return both outputs + stats."""
    c = shape[1]
    x = rand(*shape, seed=seed) * 2 + 0.5
    rm0, rv0 = rand(c, seed=11), rand(c, seed=12, low=0.5, high=2.0)
    w, b = rand(c, seed=13), rand(c, seed=14)
    dp_stats = [dp.tensor(rm0, dtype=dp.float64), dp.tensor(rv0, dtype=dp.float64)]
    th_stats = [torch.tensor(rm0), torch.tensor(rv0)]
    arrays = [x] + ([w, b] if affine else [])

    def dp_fn(xx, *p):
        return F.batch_norm(xx, *dp_stats, *(p or (None, None)), training=training,
                            momentum=momentum, eps=eps)  # fmt: skip

    def th_fn(xx, *p):
        return TF.batch_norm(xx, *th_stats, *(p or (None, None)), training=training,
                             momentum=momentum, eps=eps)  # fmt: skip

    return arrays, dp_fn, th_fn, dp_stats, th_stats


@needs_torch
@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("momentum", [0.1, 0.5])
def test_batch_norm_matches_torch(shape, training, affine, momentum):
    arrays, dp_fn, th_fn, dp_stats, th_stats = _bn_pair(shape, affine, training, momentum, 1e-5)
    compare(dp_fn, th_fn, arrays)
    # the running statistics were updated in place (training) or left alone (eval), as torch
    for d, t in zip(dp_stats, th_stats):
        np.testing.assert_allclose(d.data, t.numpy(), rtol=1e-12, atol=1e-14)


@needs_torch
def test_batch_norm_running_stats_over_several_steps():
    rm, rv = dp.zeros(3), dp.ones(3)  # float32 buffers, as a module holds them
    trm, trv = torch.zeros(3), torch.ones(3)
    for step in range(4):
        x = (rand(8, 3, 2, seed=step) * (step + 1)).astype(np.float32)
        F.batch_norm(dp.tensor(x), rm, rv, training=True, momentum=0.3)
        TF.batch_norm(torch.tensor(x), trm, trv, training=True, momentum=0.3)
    assert rm.dtype == rv.dtype == np.float32
    np.testing.assert_allclose(rm.data, trm.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv.data, trv.numpy(), rtol=1e-5, atol=1e-6)


def test_batch_norm_unbiased_running_var_biased_normalisation():
    x = np.array([[1.0], [3.0]])
    rm, rv = dp.zeros(1, dtype=dp.float64), dp.ones(1, dtype=dp.float64)
    y = F.batch_norm(dp.tensor(x), rm, rv, training=True, momentum=1.0, eps=0.0)
    np.testing.assert_allclose(y.data, [[-1.0], [1.0]])  # biased batch variance 1
    np.testing.assert_allclose(rv.data, [2.0])  # unbiased variance 2
    np.testing.assert_allclose(rm.data, [2.0])


@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batch_norm_training_without_running_stats(shape):
    x, w, b = rand(*shape), rand(shape[1], seed=2), rand(shape[1], seed=3)
    compare(lambda a, c, d: F.batch_norm(a, None, None, c, d, training=True),
            lambda a, c, d: TF.batch_norm(a, None, None, c, d, training=True),
            [x, w, b])  # fmt: skip


def test_batch_norm_float32():
    x = dp.tensor(rand(6, 4, 3).astype(np.float32), requires_grad=True)
    w, b = dp.ones(4, requires_grad=True), dp.zeros(4, requires_grad=True)
    rm, rv = dp.zeros(4), dp.ones(4)
    for training in (True, False):
        y = F.batch_norm(x, rm, rv, w, b, training=training)
        assert y.dtype == np.float32
        (y * y).sum().backward()
        assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32
    assert rm.dtype == rv.dtype == np.float32


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck(training):
    x = dp.tensor(rand(3, 2, 4), dtype=dp.float64, requires_grad=True)
    w = dp.tensor(rand(2, seed=2), dtype=dp.float64, requires_grad=True)
    b = dp.tensor(rand(2, seed=3), dtype=dp.float64, requires_grad=True)
    rm, rv = dp.zeros(2, dtype=dp.float64), dp.ones(2, dtype=dp.float64)

    def fn(a, c, d):  # running stats are passed only in eval, so gradcheck's calls don't move them
        stats = (None, None) if training else (rm, rv)
        return F.batch_norm(a, *stats, c, d, training=training, eps=1e-3)

    assert dp.gradcheck(fn, (x, w, b))


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_fused_matches_twin(training):
    x = dp.tensor(rand(4, 3, 5), dtype=dp.float64, requires_grad=True)
    w = dp.tensor(rand(3, seed=2), dtype=dp.float64, requires_grad=True)
    b = dp.tensor(rand(3, seed=3), dtype=dp.float64, requires_grad=True)
    rm, rv = dp.tensor(rand(3, seed=4), dtype=dp.float64), dp.ones(3, dtype=dp.float64) * 2
    r = dp.tensor(rand(4, 3, 5, seed=5), dtype=dp.float64)
    y = F.batch_norm(x, rm, rv, w, b, training=training)
    assert isinstance(y.grad_fn, BatchNormFunction)
    y2 = y.grad_fn.twin(x, w, b)
    g1 = dp.autograd.grad((y * r).sum(), [x, w, b])
    g2 = dp.autograd.grad((y2 * r).sum(), [x, w, b])
    np.testing.assert_allclose(y.data, y2.data, rtol=1e-12, atol=1e-12)
    for a, c in zip(g1, g2):
        np.testing.assert_allclose(a.data, c.data, rtol=1e-10, atol=1e-12)


@needs_torch
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_double_backward_matches_torch(training):
    x, w, b = rand(4, 2, 3, seed=1), rand(2, seed=2), rand(2, seed=3)
    v = [rand(4, 2, 3, seed=6), rand(2, seed=7), rand(2, seed=8)]

    def run(lib, fn):
        ps = [lib.tensor(a, requires_grad=True) for a in (x, w, b)]
        rm, rv = lib.tensor(rand(2, seed=9)), lib.tensor(rand(2, seed=10, low=1, high=2))
        loss = (fn(ps[0], rm, rv, ps[1], ps[2], training=training) ** 3).sum()
        gs = lib.autograd.grad(loss, ps, create_graph=True)
        dot = sum((g * lib.tensor(vi)).sum() for g, vi in zip(gs, v))
        return [np.asarray(h.detach().numpy()) for h in lib.autograd.grad(dot, ps)]

    for a, t in zip(run(dp, F.batch_norm), run(torch, TF.batch_norm)):
        np.testing.assert_allclose(a, t, rtol=1e-7, atol=1e-9)


def test_batch_norm_errors():
    with pytest.raises(ValueError, match="more than 1 value per channel.*\\(1, 3\\)"):
        F.batch_norm(dp.zeros(1, 3), None, None, training=True)
    with pytest.raises(RuntimeError, match="running_mean and running_var must be given"):
        F.batch_norm(dp.zeros(2, 3), None, None, training=False)
    with pytest.raises(ShapeError, match=r"running_mean should contain 3 elements.*\(4,\)"):
        F.batch_norm(dp.zeros(2, 3), dp.zeros(4), dp.ones(4), training=True)
    with pytest.raises(ShapeError, match="weight"):
        F.batch_norm(dp.zeros(2, 3), None, None, dp.ones(2), training=True)
    with pytest.raises(ShapeError, match=r"\(N, C\)"):
        F.batch_norm(dp.zeros(3), dp.zeros(3), dp.ones(3), training=True)


def test_batch_norm_eval_does_not_touch_stats_and_single_sample_ok():
    rm, rv = dp.tensor([1.0, 2.0]), dp.tensor([4.0, 9.0])
    y = F.batch_norm(dp.tensor([[3.0, 5.0]]), rm, rv, training=False, eps=0.0)
    np.testing.assert_allclose(y.data, [[1.0, 1.0]])
    np.testing.assert_array_equal(rm.data, [1.0, 2.0])
    np.testing.assert_array_equal(rv.data, [4.0, 9.0])
